"""The loaded model: diffusers components plus what the processing core needs to know about them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:       # the classes only, for the annotations: importing diffusers costs seconds at start-up
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTokenizer

    from sdui.models.depth_estimator import DepthEstimator
    from sdui.models.discovery import CheckpointInfo

ARCHS = ("sd1", "sd2", "sdxl", "sdxl-refiner")
VARIANTS = ("base", "inpaint", "depth")


@dataclass
class SDModel:
    arch: str                      # one of ARCHS
    variant: str                   # one of VARIANTS: "inpaint" = 9 UNet input channels, "depth" = 5
    prediction_type: str           # "epsilon" or "v_prediction"
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    # sd1: [CLIPTextModel (CLIP-L)]; sd2: [CLIPTextModel (OpenCLIP-H)];
    # sdxl: [CLIPTextModel (CLIP-L), CLIPTextModelWithProjection (bigG)]; sdxl-refiner: [CLIPTextModelWithProjection (bigG)]
    text_encoders: list = field(default_factory=list)
    tokenizers: list[CLIPTokenizer] = field(default_factory=list)   # one per text encoder
    # the training noise schedule, as a diffusers scheduler config dict
    # (num_train_timesteps, beta_start, beta_end, beta_schedule, prediction_type, ...)
    scheduler_config: dict = field(default_factory=dict)
    depth_estimator: DepthEstimator | None = None    # SD2 depth: the MiDaS model carried by the checkpoint (depth_model.*), if any
    checkpoint: CheckpointInfo | None = None   # the file the weights came from (None in tests)
    config_source: str = "detected"  # "detected" or the path of a same-name .yaml that overrode detection
    vae_overflows: bool = False    # learned: its half-precision VAE gave NaNs, so jobs decode in float32 (JobVae)
    # changes that outlive one job, undone by the next job that wants others (the LoRA set merged into the
    # weights, with the weights as loaded): sdui.core.lora
    applied: dict = field(default_factory=dict, repr=False)

    def on_undo(self, name: str, undo) -> None:
        """Register how to take back a change kept in `applied` (called before the model moves between devices)."""
        self.applied.setdefault("undo", {})[name] = undo

    def undo_applied(self) -> None:
        """Take back every kept change (LoRA weights, hypernetworks, another VAE): the model as loaded."""
        for undo in list(self.applied.pop("undo", {}).values()):
            undo()

    @property
    def is_sdxl(self) -> bool:
        return self.arch in ("sdxl", "sdxl-refiner")

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)
