"""Per-job changes to a loaded model, undone when the job ends.

A model in the RAM cache is shared by every job. Whatever one job changes on it (circular padding for tiling, the
VAE's dtype after an overflow; later LoRA weights and ControlNet) is a context manager entered on one ExitStack, so
the next job sees the model as it was loaded, also when this one fails half-way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Protocol

from sdui.core.run import Run
from sdui.imaging.tiling import tiled
from sdui.imaging.vae import JobVae
from sdui.imaging.vae_tiles import NEVER, VaeTiling


class ModelPatch(Protocol):
    def __call__(self, run: Run) -> AbstractContextManager[Any]:
        """A context manager that changes `run.model` on entry and restores it on exit."""


@contextmanager
def patched_for_job(run: Run, patches: Sequence[ModelPatch] = ()) -> Iterator[JobVae]:
    """Apply the job's patches (tiling, VAE precision, then `patches` in order); yields the job's VAE."""
    model = run.model
    with ExitStack() as stack:
        stack.enter_context(tiled(model.unet, model.vae, enabled=bool(run.request.tiling)))
        vae = stack.enter_context(
            JobVae(model, auto_upcast=bool(run.settings.auto_vae_precision), tiling=vae_tiling(run))
        )
        for patch in patches:
            stack.enter_context(patch(run))
        yield vae


def vae_tiling(run: Run) -> VaeTiling:
    """The job's Tiled VAE threshold. Seamless tiling turns it off: a tile's circular padding would wrap around
    the tile instead of the image."""
    if run.request.tiling:
        return NEVER
    return VaeTiling(above_pixels=round(run.settings.tiled_vae_megapixels * 1e6))
