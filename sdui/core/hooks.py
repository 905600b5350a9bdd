"""Hook points of the processing core: where extensions, LoRA, ControlNet, X/Y/Z and prompt editing plug in.

A hook is an object with some of the methods of `ProcessingHooks` (subclass it and override what you need). The
core calls every hook of a job at fixed points, in A1111's order (`process_images` / `process_images_inner` and its
CFG denoiser callbacks), passing what A1111 passes there:

    before_process(run)                     before anything is decided; the request may still be changed
    process(run)                            seeds and per-image prompts are set; hooks may rewrite the lists
    for each batch:
        before_process_batch(run, batch)    the batch's prompts and seeds; hooks may change them
        process_batch(run, batch)           just before the prompts are encoded
        for each model evaluation:
            on_denoiser(DenoiserParams)     x, image_cond, sigma, step, text_cond, text_uncond; may replace them
            on_denoised(DenoisedParams)     the denoised predictions of uncond and cond, before CFG
            after_cfg(AfterCFGParams)       the guided prediction; may replace it
        before_hires(run, batch)           hires fix: before its second pass encodes the hires prompts
        post_sample(run, batch, PostSample) the batch's final latents; may replace them
        postprocess_batch(run, batch, images)   the decoded batch, float (N, 3, H, W) in [0, 1]
        for each image:
            postprocess_image(run, PostprocessImage)   may replace the image
            before_image_saved(ImageSaveParams) / image_saved(ImageSaveParams)   when it is saved
    (also through before_image_saved / image_saved: the grid after the batches, init images before them)
    grid_layout(GridLayout)                 the grid's images, columns and rows, before it is drawn
    postprocess(run, processed)             the finished result

Nothing is patched: a hook changes what the core uses only through these arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

if TYPE_CHECKING:
    from sdui.core.processed import Processed
    from sdui.core.run import Batch, Run


@dataclass
class DenoiserParams:
    """A1111's CFGDenoiserParams: what one model evaluation is about to get."""

    x: torch.Tensor  # (B, C, h, w) latents at noise level sigma (k-diffusion scaling)
    image_cond: torch.Tensor | None  # extra UNet input channels (inpainting: 5, depth: 1), or None
    sigma: torch.Tensor  # (B,)
    sampling_step: int
    total_sampling_steps: int
    text_cond: torch.Tensor  # (B, T, D)
    text_uncond: torch.Tensor  # (B, T', D)
    denoiser: Any = None  # the Denoiser making the call


@dataclass
class DenoisedParams:
    """A1111's CFGDenoisedParams: the model's denoised predictions, uncond half first, before CFG combines them."""

    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGParams:
    """A1111's AfterCFGCallbackParams: the guided denoised prediction."""

    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int


@dataclass
class PostSample:
    """A1111's PostSampleArgs: the batch's latents after sampling (and the hires second pass)."""

    samples: torch.Tensor


@dataclass
class PostprocessImage:
    """A1111's PostprocessImageArgs: one decoded image of a batch, before it is pasted back, described and saved."""

    image: Image.Image
    batch: Batch
    index: int  # within the batch


@dataclass
class GridLayout:
    """A1111's ImageGridLoopParams: the images of a grid and its shape; hooks may change all three."""

    images: list
    cols: int
    rows: int


@dataclass
class ImageSaveParams:
    """A1111's ImageSaveParams: `filename` is where it goes (before_image_saved) or went (image_saved)."""

    image: Image.Image
    run: Run | None
    filename: Path
    pnginfo: dict = field(default_factory=dict)  # {"parameters": infotext} and other text entries


class ProcessingHooks:
    """No-op base class: override the methods for the points you need."""

    def before_process(self, run: Run) -> None: ...
    def process(self, run: Run) -> None: ...
    def before_process_batch(self, run: Run, batch: Batch) -> None: ...
    def process_batch(self, run: Run, batch: Batch) -> None: ...
    def on_denoiser(self, params: DenoiserParams) -> None: ...
    def on_denoised(self, params: DenoisedParams) -> None: ...
    def after_cfg(self, params: AfterCFGParams) -> None: ...
    def before_hires(self, run: Run, batch: Batch) -> None: ...
    def post_sample(self, run: Run, batch: Batch, args: PostSample) -> None: ...
    def postprocess_batch(self, run: Run, batch: Batch, images: torch.Tensor) -> None: ...
    def postprocess_image(self, run: Run, args: PostprocessImage) -> None: ...
    def grid_layout(self, params: GridLayout) -> None: ...
    def before_image_saved(self, params: ImageSaveParams) -> None: ...
    def image_saved(self, params: ImageSaveParams) -> None: ...
    def postprocess(self, run: Run, processed: Processed) -> None: ...


class HookSet(ProcessingHooks):
    """Several hooks called in the order they were given (the order extensions were loaded)."""

    def __init__(self, hooks: Iterable[ProcessingHooks] = ()):
        self.hooks: list[ProcessingHooks] = list(hooks)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def _call(self, name: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, name)(*args)

    def before_process(self, run):
        self._call("before_process", run)

    def process(self, run):
        self._call("process", run)

    def before_process_batch(self, run, batch):
        self._call("before_process_batch", run, batch)

    def process_batch(self, run, batch):
        self._call("process_batch", run, batch)

    def on_denoiser(self, params):
        self._call("on_denoiser", params)

    def on_denoised(self, params):
        self._call("on_denoised", params)

    def after_cfg(self, params):
        self._call("after_cfg", params)

    def before_hires(self, run, batch):
        self._call("before_hires", run, batch)

    def post_sample(self, run, batch, args):
        self._call("post_sample", run, batch, args)

    def postprocess_batch(self, run, batch, images):
        self._call("postprocess_batch", run, batch, images)

    def postprocess_image(self, run, args):
        self._call("postprocess_image", run, args)

    def grid_layout(self, params):
        self._call("grid_layout", params)

    def before_image_saved(self, params):
        self._call("before_image_saved", params)

    def image_saved(self, params):
        self._call("image_saved", params)

    def postprocess(self, run, processed):
        self._call("postprocess", run, processed)
