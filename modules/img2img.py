"""What img2img adds to a generation: the init image in latent space and where on the schedule to start.

A1111 semantics: with `steps` and denoising strength d, t_enc = int(min(d, 0.999) * steps) and the last
t_enc + 1 steps of the full schedule run, starting from init latent + noise at that step's noise level
("fix steps" option: the schedule is stretched so that about `steps` steps run).
"""
from __future__ import annotations

import torch
from PIL import Image

from modules.devices import DevicePolicy
from modules.errors import InvalidRequestError
from modules.models.sd_model import SDModel
from modules.request import Img2ImgRequest


def schedule_steps(request: Img2ImgRequest, fix_steps: bool) -> tuple[int, int]:
    """(steps of the full schedule, steps that run)."""
    strength = min(float(request.denoising_strength), 0.999)
    steps = int(request.steps / strength) if fix_steps and strength > 0 else request.steps
    return steps, int(strength * steps) + 1


def begin_index(scheduler, steps: int, steps_to_run: int) -> int:
    """Index into scheduler.timesteps where img2img starts (second-order schedulers list most steps twice)."""
    order = getattr(scheduler, "order", 1)
    begin = (steps - steps_to_run) * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return begin


def images_to_tensor(images: list[Image.Image], width: int, height: int) -> torch.Tensor:
    """RGB in [-1, 1], NCHW. The images must already have the request's size (see modules.image_ops)."""
    arrays = []
    for image in images:
        if image.size != (width, height):
            raise InvalidRequestError(f"init image is {image.size[0]}x{image.size[1]}, expected {width}x{height}")
        arrays.append(torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
                      .reshape(height, width, 3))
    return torch.stack(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def encode_images(model: SDModel, pixels: torch.Tensor, policy: DevicePolicy) -> torch.Tensor:
    """VAE latents of [-1, 1] images, scaled for the UNet. The posterior's mean, not a sample: the same init image
    gives the same latents on every run (A1111 samples with the global RNG; the difference is far below 1/255)."""
    posterior = model.vae.encode(pixels.to(policy.device, policy.vae_dtype)).latent_dist
    return (posterior.mean * model.vae.config.scaling_factor).to(policy.dtype)


def noised_init(scheduler, init_latents: torch.Tensor, noise: torch.Tensor, begin: int) -> torch.Tensor:
    """The init latents at the noise level of the first step that runs."""
    t = scheduler.timesteps[begin:begin + 1]
    return scheduler.add_noise(init_latents, noise.to(init_latents.dtype), t.repeat(init_latents.shape[0]))
