"""Progress of one batch as the core reports it to the job (sdui.core.events), with live previews."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from sdui.core.denoiser import Denoiser
from sdui.core.events import ProgressEvents
from sdui.imaging.preview_decoders import PreviewDecoder
from sdui.imaging.vae import JobVae
from sdui.settings.snapshot import Settings

# the Denoiser's prediction a live preview shows, by the live_preview_content setting
PREVIEW_SOURCE = {"Prompt": "cond", "Negative prompt": "uncond", "Combined": "combined"}


def preview_decoder(settings: Settings, model, vae: JobVae, folders: Sequence[Path] = ()) -> PreviewDecoder:
    """The live-preview picture the show_progress_type setting asks for, in this model's latent space (SD1/SD2
    share one VAE's, SDXL and its refiner another's). `folders`: where TAESD's files are looked for."""
    return PreviewDecoder(
        settings.show_progress_type,
        vae,
        family="sdxl" if model.is_sdxl else "sd",
        scale=model.vae_scale_factor,
        folders=folders,
    )


class BatchProgress:
    """Counts the steps of one batch (both hires passes), tells the job, asks it whether to stop, and every
    `show_progress_every_n_steps` steps hands it a live preview of the Denoiser's latest prediction (of the first
    image, pictured by `previews`)."""

    def __init__(self, events: ProgressEvents, steps_per_batch: int, settings: Settings, previews: PreviewDecoder):
        self.events = events
        self.steps_per_batch = steps_per_batch
        self.steps = 0
        self.every = int(settings.show_progress_every_n_steps) if settings.live_previews_enable else 0
        self.source = PREVIEW_SOURCE[settings.live_preview_content]
        self.previews = previews
        self.denoiser: Denoiser | None = None
        self._blocks_per_pass = 0  # UNet blocks in one forward pass
        self._blocks_per_step = 0  # learned from the first step
        self._blocks_in_step = 0

    @contextmanager
    def watch(self, unet: torch.nn.Module) -> Iterator[None]:
        """While sampling, report how far the step under way has got, counted in the UNet's top-level blocks
        (forward hooks, removed on exit). The first step teaches how many UNet passes a step makes (two for
        second-order samplers); until then one is assumed."""
        blocks = [*getattr(unet, "down_blocks", ()), getattr(unet, "mid_block", None), *getattr(unet, "up_blocks", ())]
        blocks = [b for b in blocks if isinstance(b, torch.nn.Module)]
        if not blocks:
            yield
            return
        self._blocks_per_pass = len(blocks)
        handles = [block.register_forward_hook(self._block_done) for block in blocks]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _block_done(self, module, args, output) -> None:
        self._blocks_in_step += 1
        expected = self._blocks_per_step or self._blocks_per_pass
        self.events.step_part_done(min(0.99, self._blocks_in_step / expected))

    def should_stop(self) -> bool:
        return self.events.interrupted() or self.events.skipped()

    def on_step(self, done: int, total: int, latents: torch.Tensor) -> None:
        if not self._blocks_per_step and self._blocks_in_step:
            self._blocks_per_step = self._blocks_in_step
        self._blocks_in_step = 0
        self.steps += 1
        self.events.step_done(self.steps, self.steps_per_batch)
        if self.every > 0 and self.steps % self.every == 0:
            self.events.preview(self._preview(latents))

    def _preview(self, latents: torch.Tensor) -> Image.Image:
        last = self.denoiser.last if self.denoiser is not None else {}
        x = last.get(self.source, last.get("cond", latents))
        return self.previews(x[:1])
