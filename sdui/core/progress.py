"""Progress of one batch as the core reports it to the job (sdui.core.events), with live previews."""

from __future__ import annotations

import torch
from PIL import Image

from sdui.core.denoiser import Denoiser
from sdui.core.events import ProgressEvents
from sdui.imaging.vae import JobVae
from sdui.settings.snapshot import Settings

# the Denoiser's prediction a live preview shows, by the live_preview_content setting
PREVIEW_SOURCE = {"Prompt": "cond", "Negative prompt": "uncond", "Combined": "combined"}


class BatchProgress:
    """Counts the steps of one batch (both hires passes), tells the job, asks it whether to stop, and every
    `show_progress_every_n_steps` steps hands it a live preview of the Denoiser's latest prediction."""

    def __init__(self, events: ProgressEvents, steps_per_batch: int, settings: Settings, vae: JobVae):
        self.events = events
        self.steps_per_batch = steps_per_batch
        self.steps = 0
        self.every = int(settings.show_progress_every_n_steps) if settings.live_previews_enable else 0
        self.source = PREVIEW_SOURCE[settings.live_preview_content]
        self.vae = vae
        self.denoiser: Denoiser | None = None

    def should_stop(self) -> bool:
        return self.events.interrupted() or self.events.skipped()

    def on_step(self, done: int, total: int, latents: torch.Tensor) -> None:
        self.steps += 1
        self.events.step_done(self.steps, self.steps_per_batch)
        if self.every > 0 and self.steps % self.every == 0:
            self.events.preview(self._preview(latents))

    def _preview(self, latents: torch.Tensor) -> Image.Image:
        last = self.denoiser.last if self.denoiser is not None else {}
        x = last.get(self.source, last.get("cond", latents))
        return self.vae.decode_to_pil(x[:1])[0]
