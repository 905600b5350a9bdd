"""What a generation asks for and what it gives back, with A1111's field names (reference §2.1, §2.4)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    styles: list = field(default_factory=list)
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    tiling: bool = False
    eta: float | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    override_settings: dict = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    extra_generation_params: dict = field(default_factory=dict)
    mode: str = "txt2img"       # names the outputs folder: outputs/<mode>-images
    # hires fix (txt2img): a second, img2img-like pass at a larger size
    enable_hr: bool = False
    denoising_strength: float = 0.75
    hr_scale: float = 2.0
    hr_upscaler: str | None = None          # None = "Latent"
    hr_second_pass_steps: int = 0           # 0 = same as steps
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_sampler_name: str | None = None      # None / "Use same sampler"
    hr_scheduler: str | None = None         # None / "Use same scheduler"
    hr_prompt: str = ""                     # "" = same as prompt
    hr_negative_prompt: str = ""


def request_from_fields(cls, fields: dict, **given):
    """A request of `cls` from A1111 field names (as modules.infotext.request_fields_from_infotext gives them):
    `mask_blur` sets both blur axes; names this request type does not have are left out. `given` wins."""
    values = dict(fields)
    if "mask_blur" in values:
        blur = values.pop("mask_blur")
        values.setdefault("mask_blur_x", blur)
        values.setdefault("mask_blur_y", blur)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**values, **given}.items() if k in known})


@dataclass
class Processed:
    images: list                          # PIL images, each with .info["parameters"]
    request: GenerationRequest
    all_prompts: list
    all_negative_prompts: list
    all_seeds: list
    all_subseeds: list
    infotexts: list
    seed: int = 0
    subseed: int = 0
    index_of_first_image: int = 0         # 1 when images[0] is a grid
    saved_paths: list = field(default_factory=list)
    sd_model_name: str | None = None
    sd_model_hash: str | None = None
    job_timestamp: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def info_dict(self) -> dict:
        """A1111's Processed.js() keys, for the API's `info` JSON string."""
        r = self.request
        return {
            "prompt": r.prompt, "all_prompts": self.all_prompts,
            "negative_prompt": r.negative_prompt, "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed, "all_seeds": self.all_seeds, "subseed": self.subseed, "all_subseeds": self.all_subseeds,
            "subseed_strength": r.subseed_strength, "width": r.width, "height": r.height,
            "sampler_name": r.sampler_name, "cfg_scale": r.cfg_scale, "steps": r.steps, "batch_size": r.batch_size,
            "restore_faces": False, "face_restoration_model": None,
            "sd_model_name": self.sd_model_name, "sd_model_hash": self.sd_model_hash,
            "sd_vae_name": None, "sd_vae_hash": None,
            "seed_resize_from_w": r.seed_resize_from_w, "seed_resize_from_h": r.seed_resize_from_h,
            "denoising_strength": None, "extra_generation_params": r.extra_generation_params,
            "index_of_first_image": self.index_of_first_image, "infotexts": self.infotexts,
            "styles": r.styles, "job_timestamp": self.job_timestamp, "clip_skip": 1,
            "is_using_inpainting_conditioning": False, "version": None,
        }


@dataclass
class Img2ImgRequest(GenerationRequest):
    """img2img and its relatives (inpaint, outpaint, depth2img): a txt2img request plus a starting image."""
    init_images: list = field(default_factory=list)   # PIL images; image i of a batch uses init_images[i % len]
    resize_mode: int = 0              # 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale
    image_cfg_scale: float | None = None
    mask: Any = None                  # PIL; white = change (unless inpainting_mask_invert)
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_round: bool = True
    inpainting_fill: int = 1          # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = False    # "Only masked"
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    depth_map: Any = None             # depth2img: an uploaded depth map (PIL, brighter = nearer) instead of MiDaS
    mode: str = "img2img"
