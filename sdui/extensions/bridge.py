"""Extensions' scripts and callbacks, run at our hook points with A1111's arguments.

    scripts = ScriptSets.from_registry()          # each Script class, once for txt2img and once for img2img
    ctx.hooks.append(ExtensionHooks(scripts))     # always-on scripts and cfg/image-saved callbacks, every job
    scripts.selectable("txt2img")                 # the "Script" choices, as SelectableScript (API script_name)

A script that raises is reported (log, with its name and traceback) and the job carries on without it, as in
A1111. Always-on scripts take their arguments from the request's `alwayson_scripts[title]["args"]`, the rest
from the defaults of the controls their `ui()` builds.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdui.app.selectable_scripts import SelectableScript
from sdui.core.hooks import GridLayout, ImageSaveParams, PostprocessImage, PostSample, ProcessingHooks
from sdui.errors import InvalidRequestError
from sdui.extensions import registry
from sdui.extensions.processing_view import ProcessingView
from sdui.extensions.script_api import AlwaysVisible, PostprocessImageArgs, PostSampleArgs, Script
from sdui.request import Img2ImgRequest

log = logging.getLogger(__name__)
MODES = ("txt2img", "img2img")


@dataclass
class LoadedScript:
    instance: Script
    mode: str
    title: str
    alwayson: bool
    extension: str
    _controls: list | None = None  # what its ui() made, once it has run
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def build_ui(self) -> list:
        """Call the script's ui() where the caller lays it out (the page), once: its controls' values are the
        script's defaults from then on. A ui() that raises is reported and leaves the script without controls."""
        from sdui.extensions.gradio3 import gradio3

        with self._lock:
            if self._controls is not None:
                return self._controls
            try:
                with gradio3():
                    made = self.instance.ui(self.mode == "img2img")
            except Exception:  # noqa: BLE001 - an extension's UI error is reported; the page still builds
                _report("ui()", self.title)
                made = None
            made = [] if made is None else list(made.values()) if isinstance(made, dict) else list(made)
            self._controls = made
            return made

    @property
    def controls(self) -> list:
        """Its ui() controls (for /sdapi/v1/script-info and the defaults); without a page (--nowebui), ui() runs
        inside a Blocks of its own the first time they are needed."""
        if self._controls is None:
            import gradio as gr

            with gr.Blocks():
                self.build_ui()
        return self._controls

    @property
    def defaults(self) -> list:
        return [getattr(c, "value", None) for c in self.controls]

    def args(self, given: Sequence | None) -> list:
        """The defaults, with the given values in their places (A1111 fills script_args the same way)."""
        values = list(self.defaults)
        for i, value in enumerate(given or ()):
            if i < len(values):
                values[i] = value
            else:
                values.append(value)
        return values


def _report(what: str, script_title: str) -> None:
    log.error("Error running %s of script %r:\n%s", what, script_title, traceback.format_exc())


class ScriptSets:
    def __init__(self, scripts: list[LoadedScript]):
        self.scripts = scripts

    @classmethod
    def from_registry(cls) -> ScriptSets:
        loaded = []
        for entry in registry.REGISTRY.scripts:
            for mode in MODES:
                is_img2img = mode == "img2img"
                try:
                    instance = entry.cls()
                    instance.filename, instance.tabname = str(entry.path), mode
                    instance.is_txt2img, instance.is_img2img = not is_img2img, is_img2img
                    shown = instance.show(is_img2img)
                    if not shown:
                        continue
                    title = str(instance.title())
                    instance.name = title.lower()
                    instance.alwayson = shown is AlwaysVisible
                except Exception:  # noqa: BLE001 - an extension's failure is reported, never the app's
                    log.error(
                        "Extension %s: script %s failed to set up:\n%s",
                        entry.extension,
                        entry.path.name,
                        traceback.format_exc(),
                    )
                    continue
                loaded.append(LoadedScript(instance, mode, title, instance.alwayson, entry.extension))
        return cls(loaded)

    def alwayson(self, mode: str) -> list[LoadedScript]:
        return [s for s in self.scripts if s.mode == mode and s.alwayson]

    def selectable(self, mode: str) -> list[LoadedScript]:
        return [s for s in self.scripts if s.mode == mode and not s.alwayson]

    def check_alwayson_names(self, names, mode: str) -> None:
        """A1111's 422 for an always-on script the server does not have."""
        known = {s.title.lower() for s in self.alwayson(mode)}
        for name in names:
            if str(name).lower() not in known:
                offered = ", ".join(sorted(map(repr, known))) or "none"
                raise InvalidRequestError(f"Always-on script {name!r} not found for {mode}; this server has: {offered}")

    def as_selectable(self, runner_for: Callable[[LoadedScript, Sequence], Callable]) -> list[SelectableScript]:
        """The selectable scripts in the form the API and the Script dropdown use."""
        found = []
        for script in self.scripts:
            if script.alwayson:
                continue
            found.append(
                SelectableScript(
                    title=script.title,
                    modes=(script.mode,),
                    args=tuple(_arg_info(c) for c in script.controls),
                    make_runner=lambda args, script=script: runner_for(script, args),
                )
            )
        return found


def _arg_info(control) -> dict:
    """A1111's ScriptArg for /sdapi/v1/script-info."""
    choices = getattr(control, "choices", None)
    if choices:
        choices = [c[0] if isinstance(c, (tuple, list)) else c for c in choices]
    return {
        "label": getattr(control, "label", None),
        "value": getattr(control, "value", None),
        "minimum": getattr(control, "minimum", None),
        "maximum": getattr(control, "maximum", None),
        "step": getattr(control, "step", None),
        "choices": choices or None,
    }


# ------------------------------------------------------------------------------------------- during a generation

PENDING: dict[int, ProcessingView] = {}  # request id -> the view a selectable script is running it through


def mode_of(request) -> str:
    return "img2img" if isinstance(request, Img2ImgRequest) else "txt2img"


@dataclass
class ImageGridLoopParams:
    """What on_image_grid callbacks get (A1111's names); they may change all three."""

    imgs: list
    cols: int
    rows: int


class _SaveParams:
    """A1111's ImageSaveParams (image, p, filename, pnginfo) over ours: changes go back into ours."""

    def __init__(self, params: ImageSaveParams, p):
        self.__dict__.update(_ours=params, p=p)

    def __getattr__(self, name):
        if name == "filename":
            return str(self._ours.filename)
        return getattr(self._ours, name)

    def __setattr__(self, name, value):
        if name == "filename":
            from pathlib import Path

            value = Path(value)
        setattr(self._ours, name, value)


class ExtensionHooks(ProcessingHooks):
    def __init__(self, scripts: ScriptSets):
        self.scripts = scripts
        self._runs: dict[int, tuple[ProcessingView, list[tuple[LoadedScript, list]]]] = {}

    def _state(self, run):
        state = self._runs.get(id(run))
        if state is None:
            request = run.request
            view = PENDING.pop(id(request), None) or ProcessingView(request)
            view.attach(run)
            chosen = {str(k).lower(): v for k, v in (getattr(request, "alwayson_scripts", None) or {}).items()}
            active = []
            for script in self.scripts.alwayson(mode_of(request)):
                given = chosen.get(script.title.lower())
                args = given.get("args") if isinstance(given, dict) else None
                active.append((script, script.args(args)))
            state = self._runs[id(run)] = (view, active)
        return state

    def _each(self, run, method: str, *args, batch=None, **kwargs) -> None:
        view, active = self._state(run)
        view.set_batch(batch)
        for script, script_args in active:
            try:
                getattr(script.instance, method)(view, *args, *script_args, **kwargs)
            except Exception:  # noqa: BLE001 - a script's error is reported; the job goes on
                _report(method, script.title)

    def before_process(self, run) -> None:
        view, active = self._state(run)
        for script, script_args in active:
            try:
                script.instance.setup(view, *script_args)
            except Exception:  # noqa: BLE001 - a script's error is reported; the job goes on
                _report("setup", script.title)
        self._each(run, "before_process")

    def process(self, run) -> None:
        self._each(run, "process")

    def _batch_kwargs(self, batch) -> dict:
        return {"batch_number": batch.index, "prompts": batch.prompts, "seeds": batch.seeds, "subseeds": batch.subseeds}

    def before_process_batch(self, run, batch) -> None:
        self._each(run, "before_process_batch", batch=batch, **self._batch_kwargs(batch))

    def process_batch(self, run, batch) -> None:
        self._each(run, "process_batch", batch=batch, **self._batch_kwargs(batch))

    def before_hires(self, run, batch) -> None:
        self._each(run, "before_hr", batch=batch)

    def post_sample(self, run, batch, args: PostSample) -> None:
        wrapped = PostSampleArgs(args.samples)
        self._each(run, "post_sample", wrapped, batch=batch)
        args.samples = wrapped.samples

    def postprocess_batch(self, run, batch, images) -> None:
        self._each(run, "postprocess_batch", batch=batch, images=images, batch_number=batch.index)

    def postprocess_image(self, run, args: PostprocessImage) -> None:
        wrapped = PostprocessImageArgs(args.image)
        self._each(run, "postprocess_image", wrapped, batch=args.batch)
        args.image = wrapped.image

    def postprocess(self, run, processed) -> None:
        try:
            self._each(run, "postprocess", processed)
        finally:
            self._runs.pop(id(run), None)

    # callbacks (script_callbacks.on_*)

    def on_denoiser(self, params) -> None:
        registry.call("cfg_denoiser", params)

    def on_denoised(self, params) -> None:
        registry.call("cfg_denoised", params)

    def after_cfg(self, params) -> None:
        registry.call("cfg_after_cfg", params)

    def grid_layout(self, params: GridLayout) -> None:
        loop = ImageGridLoopParams(params.images, params.cols, params.rows)
        registry.call("image_grid", loop)
        params.images, params.cols, params.rows = list(loop.imgs), int(loop.cols), int(loop.rows)

    def before_image_saved(self, params: ImageSaveParams) -> None:
        view = self._state(params.run)[0] if params.run is not None else None
        registry.call("before_image_saved", _SaveParams(params, view))

    def image_saved(self, params: ImageSaveParams) -> None:
        view = self._state(params.run)[0] if params.run is not None else None
        registry.call("image_saved", _SaveParams(params, view))


# ----------------------------------------------------------------------------------------- selectable scripts


def script_runner(script: LoadedScript, script_args: Sequence) -> Callable:
    """The callable (process()'s signature) that runs a selectable extension script: its run(p, *args), where
    process_images(p) is a generation with the same model, settings, hooks and job; None from run() means a
    plain generation (as A1111)."""
    args = script.args(script_args)

    def run(request, model, *, models=None, **kwargs):
        from sdui.core.processing import process

        def generate(req, view):
            PENDING[id(req)] = view
            try:
                return process(req, model, **kwargs)
            finally:
                PENDING.pop(id(req), None)

        view = ProcessingView(request, script_args=args, runner=generate)
        result = script.instance.run(view, *args)
        return result if result is not None else generate(view.request, view)

    return run


def process_images(p: ProcessingView) -> Any:
    """A1111's processing.process_images(p): run the generation `p` describes."""
    runner = p.__dict__.get("_runner")
    if runner is None:
        raise RuntimeError("process_images(p) works inside a script's run(p, ...), where the program made p")
    return runner(p.request, p)
