"""What a generation gives back: A1111's `Processed`, with the same names, plus what our UI shows beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings


@dataclass
class Processed:
    images: list[Image.Image]  # each with .info["parameters"] (unless enable_pnginfo is off)
    request: GenerationRequest  # as the job ran it (hooks may have changed it; "DPM++ 2M Karras" split)
    settings: Settings  # the job's frozen settings
    infotexts: list[str]  # one per entry of `images` (a grid gets the first image's)
    all_prompts: list[str]
    all_negative_prompts: list[str]
    all_seeds: list[int]
    all_subseeds: list[int]
    index_of_first_image: int = 0  # 1 when images[0] is a grid
    sd_model_name: str | None = None
    sd_model_hash: str | None = None
    job_timestamp: str = ""
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    # ours, beyond A1111's
    saved_paths: list[Path] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)  # things the user should know (e.g. a resized mask)
    depth_maps: list[Image.Image] = field(default_factory=list)  # depth2img: the maps used

    # ---- A1111's attribute names ------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.all_seeds[0] if self.all_seeds else -1

    @property
    def subseed(self) -> int:
        return self.all_subseeds[0] if self.all_subseeds else -1

    @property
    def info(self) -> str:
        return self.infotexts[0] if self.infotexts else ""

    @property
    def prompt(self) -> str:
        return self.all_prompts[0] if self.all_prompts else self.request.prompt

    @property
    def negative_prompt(self) -> str:
        return self.all_negative_prompts[0] if self.all_negative_prompts else self.request.negative_prompt

    # the request's values under A1111's Processed names (extensions read processed.width, .steps, ...)
    width = property(lambda self: self.request.width)
    height = property(lambda self: self.request.height)
    sampler_name = property(lambda self: self.request.sampler_name)
    cfg_scale = property(lambda self: self.request.cfg_scale)
    steps = property(lambda self: self.request.steps)
    batch_size = property(lambda self: self.request.batch_size)
    styles = property(lambda self: self.request.styles)
    subseed_strength = property(lambda self: self.request.subseed_strength)
    seed_resize_from_w = property(lambda self: self.request.seed_resize_from_w)
    seed_resize_from_h = property(lambda self: self.request.seed_resize_from_h)

    @property
    def clip_skip(self) -> int:
        return int(self.settings.get("CLIP_stop_at_last_layers", 1))

    @property
    def denoising_strength(self) -> float | None:
        r = self.request
        return r.denoising_strength if isinstance(r, Img2ImgRequest) or r.enable_hr else None

    @property
    def is_using_inpainting_conditioning(self) -> bool:
        return isinstance(self.request, Img2ImgRequest) and self.request.mask is not None

    def info_dict(self) -> dict:
        """A1111's Processed.js() keys, for the API's `info` JSON string."""
        r = self.request
        return {
            "prompt": self.prompt,
            "all_prompts": self.all_prompts,
            "negative_prompt": self.negative_prompt,
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.subseed,
            "all_subseeds": self.all_subseeds,
            "subseed_strength": r.subseed_strength,
            "width": r.width,
            "height": r.height,
            "sampler_name": r.sampler_name,
            "cfg_scale": r.cfg_scale,
            "steps": r.steps,
            "batch_size": r.batch_size,
            "restore_faces": bool(r.restore_faces),
            "face_restoration_model": None,
            "sd_model_name": self.sd_model_name,
            "sd_model_hash": self.sd_model_hash,
            "sd_vae_name": None,
            "sd_vae_hash": None,
            "seed_resize_from_w": r.seed_resize_from_w,
            "seed_resize_from_h": r.seed_resize_from_h,
            "denoising_strength": self.denoising_strength,
            "extra_generation_params": self.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "styles": r.styles,
            "job_timestamp": self.job_timestamp,
            "clip_skip": self.clip_skip,
            "is_using_inpainting_conditioning": self.is_using_inpainting_conditioning,
            "version": None,
            "notes": self.notes,  # ours: what the user should know (an image that could not be saved, a resized mask)
        }

    def js(self) -> str:
        return json.dumps(self.info_dict(), default=str)
