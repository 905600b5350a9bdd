"""What a generation asks for, with A1111's field names (its StableDiffusionProcessing fields)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from PIL import Image


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
    tiling: bool | None = None              # None: the "tiling" setting
    eta: float | None = None                # None: the sampler's eta setting (eta_ddim, eta_ancestral)
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
class Img2ImgRequest(GenerationRequest):
    """img2img and its relatives (inpaint, outpaint, depth2img): a txt2img request plus a starting image."""
    init_images: list[Image.Image] = field(default_factory=list)   # image i of a batch uses init_images[i % len]
    resize_mode: int = 0              # 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale
    image_cfg_scale: float | None = None
    mask: Image.Image | None = None   # white = change (unless inpainting_mask_invert)
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_round: bool = True
    inpainting_fill: int = 1          # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = False    # "Only masked"
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    depth_map: Image.Image | None = None   # depth2img: an uploaded depth map (brighter = nearer) instead of MiDaS
    mode: str = "img2img"
