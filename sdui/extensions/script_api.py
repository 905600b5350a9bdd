"""The class extensions subclass (A1111's `modules.scripts.Script`) and the small argument objects its methods
receive. `modules/scripts.py` re-exports these names; the bridge (sdui.extensions.bridge) calls the methods at our
hook points with A1111's arguments.

A script's `show(is_img2img)` decides what it is: `AlwaysVisible` (runs on every job, with its own controls),
True (one of the "Script" dropdown's choices: `run(p, *args)` replaces the generation), False (not shown).
`*args` are the values of the components its `ui()` returned, in order (from the API: `script_args`, or
`alwayson_scripts[title]["args"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdui.extensions import registry


class _AlwaysVisible:
    def __repr__(self) -> str:
        return "AlwaysVisible"


AlwaysVisible = _AlwaysVisible()


def basedir() -> str:
    """The folder of the extension whose script is being imported (call it at import time, as in A1111)."""
    current = registry.REGISTRY.basedir
    return str(current if current is not None else Path(__file__).resolve().parents[2])


@dataclass
class PostprocessImageArgs:
    image: Any


@dataclass
class PostprocessBatchListArgs:
    images: list


@dataclass
class PostSampleArgs:
    samples: Any


@dataclass
class MaskBlendArgs:
    current_latent: Any
    nmask: Any
    init_latent: Any
    mask: Any
    blended_latent: Any
    denoiser: Any = None
    sigma: Any = None


class Script:
    """Subclass it in an extension's scripts/*.py; override title() and what your script needs."""

    name: str | None = None  # title().lower(), set by the runner
    section: str | None = None
    filename: str | None = None
    args_from: int | None = None
    args_to: int | None = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname: str | None = None
    group = None
    create_group = True
    infotext_fields: list | None = None  # [(component, infotext key or callable), ...]
    paste_field_names: list | None = None
    api_info = None
    setup_for_ui_only = False
    controls = None
    on_before_component_elem_id: list | None = None
    on_after_component_elem_id: list | None = None

    def title(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} must define title()")

    def ui(self, is_img2img):
        """The Gradio components whose values the other methods receive as *args."""
        return []

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        """A selectable script's work; returns a Processed (usually from processing.process_images(p))."""

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def before_hr(self, p, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        self.on_before_component_elem_id = [*(self.on_before_component_elem_id or []), (elem_id, callback)]

    def on_after_component(self, callback, *, elem_id):
        self.on_after_component_elem_id = [*(self.on_after_component_elem_id or []), (elem_id, callback)]

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """A1111's element id for one of this script's components: script_<tab>_<title>_<item>."""
        tab = ("img2img" if self.is_img2img else "txt2img") if self.is_txt2img != self.is_img2img else ""
        title = "".join(c if c.isalnum() or c == "_" else "_" for c in self.title().lower().replace(" ", "_"))
        return f"script_{tab + '_' if tab else ''}{title}_{item_id}"
