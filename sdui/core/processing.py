"""THE processing core: a request and a loaded model in, images with A1111 infotexts out.

Every mode goes through `process()`; a mode differs only in how it builds initial latents, masks and extra
UNet input channels. The generation reads as numbered steps, like a diffusers pipeline.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdui.modes import hires, img2img, inpaint

from sdui.imaging import images

from sdui.infotext import infotext

from sdui.core import rng
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.models.sd_model import SDModel
from sdui.core.request import GenerationRequest, Img2ImgRequest, Processed
from sdui.core.samplers import build_scheduler
from sdui.core.sampling import Guidance, LatentBlend, LoopHooks, denoise
from sdui.text.encoder import PromptEncoder
from sdui.imaging.tiling import tiled

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 4096 * 4096


def _opt(options, key, default=None):
    if options is None:
        return default
    value = options.get(key) if hasattr(options, "get") else getattr(options, key, None)
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------------------
# Step 0: validation — a client's mistake gets a message that says what to change, before any work is done.
# ---------------------------------------------------------------------------------------------------------------
def validate(request: GenerationRequest, model: SDModel, options=None) -> None:
    problems = []
    max_pixels = int(_opt(options, "max_image_pixels", DEFAULT_MAX_PIXELS))
    factor = model.vae_scale_factor if model is not None else 8
    for name in ("width", "height"):
        value = getattr(request, name)
        if not isinstance(value, int) or value < factor or value % factor:
            problems.append(f"{name} must be a positive multiple of {factor} (got {value}); "
                            f"try {max(factor, (int(value) // factor) * factor) if isinstance(value, (int, float)) else 512}")
    if not isinstance(request.steps, int) or request.steps < 1:
        problems.append(f"steps must be at least 1 (got {request.steps})")
    if request.batch_size < 1 or request.n_iter < 1:
        problems.append(f"batch size and batch count must be at least 1 (got {request.batch_size} and {request.n_iter})")
    if not (0.0 <= float(request.subseed_strength) <= 1.0):
        problems.append(f"variation strength (subseed_strength) must be between 0 and 1 (got {request.subseed_strength})")
    if isinstance(request.width, int) and isinstance(request.height, int) and request.width * request.height > max_pixels:
        problems.append(f"{request.width}x{request.height} is larger than the configured limit of {max_pixels} pixels "
                        f"(setting max_image_pixels)")
    if isinstance(request, Img2ImgRequest):
        if not request.init_images:
            problems.append("img2img needs an init image (init_images is empty)")
        if not (0.0 <= float(request.denoising_strength) <= 1.0):
            problems.append(f"denoising strength must be between 0 and 1 (got {request.denoising_strength})")
        for image in request.init_images:
            if getattr(image, "width", 0) * getattr(image, "height", 0) > max_pixels:
                problems.append(f"the init image is {image.width}x{image.height}, larger than the configured limit "
                                f"of {max_pixels} pixels (setting max_image_pixels); scale it down first")
        if request.resize_mode not in (0, 1, 2, 3):
            problems.append(f"resize_mode must be 0 (just resize), 1 (crop and resize), 2 (resize and fill) or "
                            f"3 (latent upscale), not {request.resize_mode}")
    if model is not None and model.variant == "depth" and not isinstance(request, Img2ImgRequest):
        problems.append("this is a depth checkpoint (SD2 depth): it turns an image into another with the same depth, "
                        "so use img2img (depth2img) with an init image")
    if getattr(request, "depth_map", None) is not None and model is not None and model.variant != "depth":
        problems.append("a depth map was given but this checkpoint is not a depth model: pick an SD2 depth "
                        "checkpoint (e.g. 512-depth-ema) for depth2img")
    if getattr(request, "mask", None) is not None and model is not None and model.variant == "depth":
        problems.append("depth checkpoints do not inpaint: send no mask, or pick another checkpoint")
    if problems:
        raise InvalidRequestError("Invalid request: " + "; ".join(problems) + ".")


@dataclass
class _Batch:
    index: int
    prompts: list
    negative_prompts: list
    seeds: list
    subseeds: list


def _batches(request: GenerationRequest, seeds, subseeds):
    n = request.batch_size
    for i in range(request.n_iter):
        sl = slice(i * n, (i + 1) * n)
        yield _Batch(i, [request.prompt] * n, [request.negative_prompt] * n, seeds[sl], subseeds[sl])


# ---------------------------------------------------------------------------------------------------------------
# Steps 2–5 helpers
# ---------------------------------------------------------------------------------------------------------------
def encode_guidance(model: SDModel, encoder: PromptEncoder, batch: _Batch, request: GenerationRequest,
                    options, policy: DevicePolicy) -> Guidance:
    clip_skip = int(_opt(options, "CLIP_stop_at_last_layers", 1))
    emphasis = _opt(options, "emphasis", "Original")
    cond = encoder.encode(batch.prompts, clip_skip=clip_skip, emphasis=emphasis)
    uncond = encoder.encode(batch.negative_prompts, clip_skip=clip_skip, emphasis=emphasis, is_negative=True)
    dtype, device = policy.dtype, policy.device
    g = Guidance(cond=cond.embeds.to(device, dtype), uncond=uncond.embeds.to(device, dtype),
                 cfg_scale=float(request.cfg_scale))
    if model.is_sdxl:
        time_ids = sdxl_time_ids(model, request, len(batch.prompts)).to(device, dtype)
        g.added_cond = {"text_embeds": cond.pooled.to(device, dtype), "time_ids": time_ids}
        neg_time_ids = time_ids
        if model.arch == "sdxl-refiner":
            neg_time_ids = sdxl_time_ids(model, request, len(batch.prompts), aesthetic_score=2.5).to(device, dtype)
        g.added_uncond = {"text_embeds": uncond.pooled.to(device, dtype), "time_ids": neg_time_ids}
    return g


def sdxl_time_ids(model: SDModel, request: GenerationRequest, batch_size: int, aesthetic_score: float = 6.0):
    """SDXL micro-conditioning: original size, crop top-left, target size (refiner: aesthetic score instead)."""
    size = (request.height, request.width)
    if model.arch == "sdxl-refiner":
        ids = [*size, 0, 0, aesthetic_score]
    else:
        ids = [*size, 0, 0, *size]
    return torch.tensor([ids], dtype=torch.float32).repeat(batch_size, 1)


def txt2img_extra_channels(model: SDModel, latents_shape, policy: DevicePolicy) -> torch.Tensor | None:
    """Inpainting checkpoints in txt2img see a fully masked, mid-grey image (what A1111 feeds them)."""
    if model.variant != "inpaint":
        return None
    b, _, h, w = latents_shape
    f = model.vae_scale_factor
    grey = torch.zeros(1, 3, h * f, w * f, device=policy.device, dtype=model.vae.dtype)  # 0.5 in [0,1] = 0 in [-1,1]
    masked = model.vae.encode(grey).latent_dist.mode() * model.vae.config.scaling_factor
    mask = torch.ones(1, 1, h, w, device=policy.device, dtype=masked.dtype)
    return torch.cat([mask, masked], dim=1).repeat(b, 1, 1, 1).to(policy.dtype)


def decode_latents(model: SDModel, latents: torch.Tensor, policy: DevicePolicy, *,
                   auto_upcast: bool = True) -> list[Image.Image]:
    """Latents -> images. A half-precision VAE that overflows (SDXL's does, A1111's "NaNs in VAE") is moved to
    float32 for good and the batch decoded again, as A1111's auto_vae_precision does, instead of black images."""
    vae = model.vae
    decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    if auto_upcast and vae.dtype != torch.float32 and not torch.isfinite(decoded).all():
        log.warning("The VAE produced NaNs in %s; switching it to float32 (use --no-half-vae to start that way).",
                    str(vae.dtype).removeprefix("torch."))
        vae.to(torch.float32)
        decoded = vae.decode(latents.to(torch.float32) / vae.config.scaling_factor).sample
    return tensor_to_pil(decoded)


def tensor_to_pil(decoded: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW -> 8-bit RGB, rounding like diffusers' image processor."""
    arr = (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in arr]


class _BatchProgress:
    """Forwards loop progress to the job (if any), counts how far the current batch got, and every `every` steps
    gives the job a live preview: the first image's denoised estimate, decoded by the real VAE."""

    def __init__(self, job, preview=None, every: int = 0):
        self.job = job
        self.steps = 0
        self.preview, self.every = preview, every

    def should_stop(self) -> bool:
        return self.job is not None and bool(self.job.interrupted or getattr(self.job, "skipped", False))

    def on_step(self, done: int, total: int, latents, denoised=None) -> None:
        self.steps += 1
        if self.job is None:
            return
        self.job.on_step(done, total)
        if self.preview is not None and self.every > 0 and self.steps % self.every == 0:
            self.job.current_image = self.preview(denoised if denoised is not None else latents)

    def end_of_batch(self) -> bool:
        """Clear a skip (it applies to one batch); True when the whole job was interrupted."""
        if self.job is None:
            return False
        self.job.skipped = False
        return bool(self.job.interrupted)


def _sampler_for(request: GenerationRequest, model: SDModel, seeds, options=None):
    """A fresh scheduler and the index of its first step: 0 for txt2img, part-way along for img2img."""
    steps, steps_to_run = request.steps, None
    if isinstance(request, Img2ImgRequest):
        steps, steps_to_run = img2img.schedule_steps(request, bool(_opt(options, "img2img_fix_steps", False)))
    setup = build_scheduler(request.sampler_name, request.scheduler, steps, model.scheduler_config,
                            eta=request.eta, seeds=seeds, is_sdxl=model.is_sdxl)
    begin = img2img.begin_index(setup.scheduler, steps, steps_to_run) if steps_to_run is not None else 0
    return setup, begin


def _hires_pass(hires_plan, model: SDModel, encoder, batch, latents, options, policy: DevicePolicy, progress,
                *, offset: int, total: int) -> torch.Tensor:
    """The second pass of hires fix: upscaled first-pass latents as the init, fresh noise from the same seeds."""
    hr = hires_plan.request
    init_latents = hires.upscale(model, latents, hires_plan, policy, decode_latents, img2img.encode_images)
    n = len(batch.seeds)
    hr_batch = dataclasses.replace(batch, prompts=[hr.prompt] * n, negative_prompts=[hr.negative_prompt] * n)
    guidance = encode_guidance(model, encoder, hr_batch, hr, options, policy)
    setup, begin = _sampler_for(hr, model, batch.seeds, options)
    shape = tuple(init_latents.shape[1:])
    source = _opt(options, "randn_source", "CPU")
    noise = rng.create_noise(shape, batch.seeds, batch.subseeds, hr.subseed_strength, hr.seed_resize_from_h,
                             hr.seed_resize_from_w, source=source, device=policy.device)
    start = img2img.noised_init(setup.scheduler, init_latents, noise.to(policy.device, init_latents.dtype), begin)
    guidance.extra_channels = txt2img_extra_channels(model, start.shape, policy)
    generators = rng.make_generators(batch.seeds, source=source, device=policy.device, skip_first=True, shape=shape)
    return denoise(model.unet, setup.scheduler, start, guidance, generators=generators, eta=hr.eta,
                   hooks=LoopHooks(on_step=progress.on_step, should_stop=progress.should_stop), begin_index=begin,
                   progress_offset=offset, progress_total=total)


def _batch_start(request, init, model: SDModel, setup, begin: int, noise: torch.Tensor, batch, policy):
    """Step 4 for one batch: (starting latents, extra UNet channels, latent blend, which init image each uses)."""
    if init is None:      # txt2img: pure noise at the first step's level
        latents = (noise.to(policy.device, torch.float32) * setup.scheduler.init_noise_sigma).to(policy.dtype)
        return latents, txt2img_extra_channels(model, latents.shape, policy), None, None
    first = batch.index * request.batch_size
    picks = [(first + j) % init.latents.shape[0] for j in range(len(batch.seeds))]
    noise = noise.to(policy.device, init.latents.dtype) * float(request.initial_noise_multiplier or 1.0)
    base = init.latents[picks]
    masks = init.latent_masks[picks].to(base.dtype) if init.latent_masks is not None else None
    if masks is not None and request.inpainting_fill == 2:      # "latent noise": the masked area starts as noise
        base = base * (1 - masks) + noise * masks
    elif masks is not None and request.inpainting_fill == 3:    # "latent nothing"
        base = base * (1 - masks)
    latents = img2img.noised_init(setup.scheduler, base, noise, begin)
    if init.extra_channels is not None:
        extra = init.extra_channels[picks]
    else:
        extra = txt2img_extra_channels(model, latents.shape, policy)
    blend = LatentBlend(base, noise, masks) if masks is not None and model.variant != "inpaint" else None
    return latents, extra, blend, picks


def _img2img_params(request, init, hires_plan=None) -> dict:
    if hires_plan is not None:
        extra = {k: v for k, v in hires_plan.infotext.items() if k != "Denoising strength"}
        return {"denoising_strength": request.denoising_strength, "extra": extra}
    if init is None:
        return {}
    extra = dict(init.infotext)
    if request.initial_noise_multiplier not in (None, 1, 1.0):
        extra["Noise multiplier"] = request.initial_noise_multiplier
    return {"denoising_strength": request.denoising_strength, "extra": extra}


def _model_identity(model: SDModel):
    info = model.checkpoint
    if info is None:
        return None, None
    return getattr(info, "name_for_extra", None), getattr(info, "shorthash", None) or getattr(info, "hash", None)


# ---------------------------------------------------------------------------------------------------------------
# The core
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def process(request: GenerationRequest, model: SDModel, *, policy: DevicePolicy, options=None,
            outputs_dir: Path | None = None, job=None) -> Processed:
    # 0. validate before touching the model
    validate(request, model, options)
    rng_source = _opt(options, "randn_source", "CPU")
    ensd = int(_opt(options, "eta_noise_seed_delta", 0))

    # 1. seeds: seed+i per image (shared when a variation strength is set), as A1111
    total_images = request.batch_size * request.n_iter
    seed = rng.fix_seed(request.seed)
    subseed = rng.fix_seed(request.subseed)
    all_seeds = rng.all_seeds(seed, request.subseed_strength, total_images)
    all_subseeds = rng.all_subseeds(subseed, total_images)

    # 2. the sampler: fails early on an unknown name or an impossible sampler/schedule pair
    setup, begin = _sampler_for(request, model, all_seeds[:request.batch_size], options)
    # "DPM++ 2M Karras" arrives split: the infotext names the canonical sampler
    request = dataclasses.replace(request, sampler_name=setup.sampler_name)
    steps_per_batch = len(setup.scheduler.timesteps) - begin
    hires_plan = hires.plan(request)
    if hires_plan is not None:   # its size and sampler are checked now too, before any work
        hr = hires_plan.request
        max_pixels = int(_opt(options, "max_image_pixels", DEFAULT_MAX_PIXELS))
        if hr.width * hr.height > max_pixels:
            raise InvalidRequestError(f"the hires size {hr.width}x{hr.height} is larger than the configured limit "
                                      f"of {max_pixels} pixels (setting max_image_pixels)")
        hr_setup, hr_begin = _sampler_for(hr, model, all_seeds[:request.batch_size], options)
        steps_per_batch += len(hr_setup.scheduler.timesteps) - hr_begin
    total_steps = steps_per_batch * request.n_iter
    if job is not None:
        job.on_sampling_start(total_steps)

    encoder = PromptEncoder(model)
    # A1111's live preview period: N > 0 every N steps, -1 only once a batch is done, 0 never
    preview_every = int(_opt(options, "show_progress_every_n_steps", 10)) if _opt(
        options, "live_previews_enable", True) else 0
    init = img2img.prepare_init(request, model, policy) if isinstance(request, Img2ImgRequest) else None
    for note in init.notes if init is not None else ():
        log.warning("%s", note)
    model_name, model_hash = _model_identity(model)
    latent_shape = (model.latent_channels, request.height // model.vae_scale_factor,
                    request.width // model.vae_scale_factor)
    result_images, infotexts, saved = [], [], []
    all_prompts, all_negative = [], []
    interrupted = False
    final_latents = []
    job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")

    # seamless tiling: circular padding in every UNet and VAE convolution for this job only
    with tiled(model.unet, model.vae, enabled=bool(request.tiling)):
        for batch in _batches(request, all_seeds, all_subseeds):
            if interrupted:
                break
            # 3. conditioning for this batch
            guidance = encode_guidance(model, encoder, batch, request, options, policy)

            # 4. initial latents: per-image noise from each image's own seed (CPU by default: same image on any device)
            if batch.index:  # schedulers keep per-run state (step index, solver history): a fresh one per batch
                setup, begin = _sampler_for(request, model, batch.seeds, options)
            noise = rng.create_noise(latent_shape, batch.seeds, batch.subseeds, request.subseed_strength,
                                     request.seed_resize_from_h, request.seed_resize_from_w,
                                     source=rng_source, device=policy.device)
            latents, guidance.extra_channels, blend, picks = _batch_start(request, init, model, setup, begin, noise,
                                                                          batch, policy)
            gen_seeds = [s + ensd for s in batch.seeds] if ensd else batch.seeds
            generators = rng.make_generators(gen_seeds, source=rng_source, device=policy.device, skip_first=not ensd,
                                             shape=latent_shape)

            # 5. denoise; an interrupt ends the job, a skip ends this batch only
            progress = _BatchProgress(job, lambda x: decode_latents(model, x[:1], policy)[0], preview_every)
            latents = denoise(model.unet, setup.scheduler, latents, guidance, generators=generators, eta=request.eta,
                              hooks=LoopHooks(on_step=progress.on_step, should_stop=progress.should_stop),
                              begin_index=begin, progress_offset=batch.index * steps_per_batch,
                              progress_total=total_steps, blend=blend)
            if hires_plan is not None and not progress.should_stop():
                latents = _hires_pass(hires_plan, model, encoder, batch, latents, options, policy, progress,
                                      offset=batch.index * steps_per_batch + progress.steps, total=total_steps)
            incomplete = progress.steps < steps_per_batch   # unfinished images are returned, not saved (A1111)
            interrupted = progress.end_of_batch()
            final_latents.append(latents.float().cpu())

            # 6. decode, describe, save
            pil_images = decode_latents(model, latents, policy,
                                        auto_upcast=bool(_opt(options, "auto_vae_precision", True)))
            if job is not None and preview_every == -1:
                job.current_image = pil_images[0]
            for j, image in enumerate(pil_images):
                if init is not None and init.work is not None:      # inpaint: onto the original, outside unchanged
                    image = inpaint.paste_back(init.work[picks[j]], image)
                params = infotext.generation_params(
                    request, seed=batch.seeds[j], subseed=batch.subseeds[j], model_name=model_name,
                    model_hash=model_hash, schedule_label=setup.schedule_label, rng=rng_source,
                    clip_skip=int(_opt(options, "CLIP_stop_at_last_layers", 1)),
                    ensd=ensd if ensd and setup.uses_ensd else None, **_img2img_params(request, init, hires_plan))
                text = infotext.build_infotext(batch.prompts[j], batch.negative_prompts[j], params)
                image.info["parameters"] = text
                if (outputs_dir is not None and not request.do_not_save_samples and not incomplete
                        and _opt(options, "samples_save", True)):
                    saved.append(images.save_image(image, Path(outputs_dir) / f"{request.mode}-images",
                                                   seed=batch.seeds[j], infotext=text,
                                                   fmt=_opt(options, "samples_format", "png")))
                result_images.append(image)
                infotexts.append(text)
            all_prompts += batch.prompts
            all_negative += batch.negative_prompts

    # 7. grid for multi-image jobs, first in the list as A1111 returns it
    index_of_first_image = 0
    if len(result_images) > 1 and not request.do_not_save_grid and _opt(options, "return_grid", True):
        grid = images.image_grid(result_images, rows=None)
        grid.info["parameters"] = infotexts[0]
        if outputs_dir is not None and _opt(options, "grid_save", True):
            saved.append(images.save_grid(grid, Path(outputs_dir), mode=request.mode, infotext=infotexts[0]))
        result_images.insert(0, grid)
        infotexts.insert(0, infotexts[0])
        index_of_first_image = 1

    return Processed(images=result_images, request=request, all_prompts=all_prompts,
                     all_negative_prompts=all_negative, all_seeds=all_seeds, all_subseeds=all_subseeds,
                     infotexts=infotexts, seed=all_seeds[0], subseed=all_subseeds[0],
                     index_of_first_image=index_of_first_image, saved_paths=saved,
                     sd_model_name=model_name, sd_model_hash=model_hash, job_timestamp=job_timestamp,
                     extra={"interrupted": interrupted, "schedule_label": setup.schedule_label,
                            "depth_maps": init.depth_maps if init is not None else [],
                            "notes": init.notes if init is not None else [],
                            "latents": torch.cat(final_latents)})
