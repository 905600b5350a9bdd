"""THE processing core: a request and a loaded model in, images with A1111 infotexts out.

Every mode goes through `process()`; a mode differs only in how it builds initial latents, masks and extra UNet
input channels. The generation reads as numbered steps, like a diffusers pipeline; hooks (sdui.core.hooks) are
called at A1111's points, progress goes to the job's events (sdui.core.events), and whatever the job changes on the
cached model is undone when it ends (sdui.core.patches).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdui.core import rng
from sdui.core.conditioning import encode_text, prompt_encoder
from sdui.core.denoiser import Denoiser
from sdui.core.events import NoEvents, ProgressEvents
from sdui.core.hooks import HookSet, PostprocessImage, PostSample, ProcessingHooks
from sdui.core.outputs import OutputWriter
from sdui.core.patches import ModelPatch, patched_for_job
from sdui.core.processed import Processed
from sdui.core.run import Batch, Run
from sdui.core.samplers import SamplerSetup, build_scheduler, find_sampler, resolve_sampler_name
from sdui.core.sampling import LatentBlend, denoise
from sdui.core.schedules import training_sigmas
from sdui.core.validation import validate
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError, UnsupportedSamplerError
from sdui.imaging import vae as vae_io
from sdui.imaging.grids import image_grid
from sdui.imaging.vae import JobVae
from sdui.infotext import build_infotext, generation_params
from sdui.models.sd_model import SDModel
from sdui.modes import hires, img2img, inpaint
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings

log = logging.getLogger(__name__)

# the Denoiser's prediction a live preview shows, by the live_preview_content setting
PREVIEW_SOURCE = {"Prompt": "cond", "Negative prompt": "uncond", "Combined": "combined"}


@torch.no_grad()
def process(
    request: GenerationRequest,
    model: SDModel,
    *,
    policy: DevicePolicy,
    settings: Settings | None = None,
    hooks: Sequence[ProcessingHooks] = (),
    events: ProgressEvents | None = None,
    data_dir: Path | None = None,
    patches: Sequence[ModelPatch] = (),
) -> Processed:
    """Run `request` on `model`. `settings`: the job's snapshot (default: our defaults); `data_dir`: where the
    outdir_* settings point (None: nothing is saved); `patches`: per-job model changes beyond tiling and VAE
    precision (LoRA, ControlNet)."""
    settings = settings if settings is not None else Settings.defaults()
    hooks = HookSet(hooks)
    events = events if events is not None else NoEvents()
    run = Run(
        request=request, settings=settings, model=model, job_timestamp=datetime.datetime.now().strftime("%Y%m%d%H%M%S")
    )

    # 0. hooks may still change the request; then it is checked before any work
    hooks.before_process(run)
    run.request = request = _with_setting_defaults(run.request, settings)
    validate(request, model, settings)

    # 1. seeds and prompts per image (seed+i, as A1111); hooks may rewrite these lists
    _fill_seeds_and_prompts(run)
    hooks.process(run)

    # 2. the sampler, and hires fix's second pass: checked now, so a bad name fails before any work
    setup, begin = _sampler_for(request, model, run.all_seeds[: request.batch_size], settings)
    run.request = request = dataclasses.replace(request, sampler_name=setup.sampler_name)  # "DPM++ 2M Karras" split
    hires_plan = _checked_hires_plan(request, model, run.all_seeds[: request.batch_size], settings)
    steps_per_batch = len(setup.scheduler.timesteps) - begin
    if hires_plan is not None:
        hr_setup, hr_begin = _sampler_for(hires_plan.request, model, run.all_seeds[: request.batch_size], settings)
        steps_per_batch += len(hr_setup.scheduler.timesteps) - hr_begin
    batches = list(_batches(run))
    events.add_batches(len(batches), steps_per_batch)

    writer = OutputWriter(run, hooks, data_dir) if data_dir is not None and not request.do_not_save_samples else None
    grid_writer = OutputWriter(run, hooks, data_dir) if data_dir is not None and not request.do_not_save_grid else None
    encoder = prompt_encoder(model, settings)
    train_sigmas = training_sigmas(model.scheduler_config)
    images, infotexts, saved = [], [], []
    interrupted = False
    with patched_for_job(run, patches) as vae:
        init = _prepare_init(request, model, policy, vae, settings, writer)
        for batch in batches:
            if interrupted or events.interrupted():
                interrupted = True
                break
            run.iteration = batch.index
            hooks.before_process_batch(run, batch)
            hooks.process_batch(run, batch)

            # 3. conditioning: the batch's prompts as hooks left them
            text = encode_text(model, encoder, batch.prompts, batch.negative_prompts, request, settings, policy)

            # 4. initial latents: per-image noise from each image's own seed (CPU by default: same image anywhere)
            if batch.index:  # schedulers keep per-run state (step index, solver history): a fresh one per batch
                setup, begin = _sampler_for(request, model, batch.seeds, settings)
            noise = _noise(request, model, batch, settings, policy)
            latents, image_cond, blend, picks = _batch_start(
                request, init, model, setup, begin, noise, batch, policy, vae
            )

            # 5. denoise; an interrupt ends the job, a skip ends this batch only
            progress = _BatchProgress(events, steps_per_batch, settings, vae)
            denoiser = Denoiser(
                model.unet,
                text,
                cfg_scale=request.cfg_scale,
                prediction_type=model.prediction_type,
                train_sigmas=train_sigmas,
                image_cond=image_cond,
                hooks=hooks,
            )
            progress.denoiser = denoiser
            latents = denoise(
                setup.scheduler,
                latents,
                denoiser,
                train_sigmas=train_sigmas,
                generators=_generators(batch, settings, policy, noise.shape[1:], setup.uses_ensd),
                eta=_eta(request, settings),
                begin_index=begin,
                blend=blend,
                on_step=progress.on_step,
                should_stop=progress.should_stop,
            )
            if hires_plan is not None and not progress.should_stop():
                _save_before_hires(
                    run,
                    batch,
                    latents,
                    vae,
                    writer,
                    [_infotext(run, batch, j, setup, init, hires_plan) for j in range(len(batch))],
                )
                latents = _hires_pass(
                    hires_plan, run, batch, latents, encoder, vae, train_sigmas, hooks, policy, progress
                )
            incomplete = progress.steps < steps_per_batch  # unfinished images are returned, saved only if asked
            interrupted = events.interrupted()
            post = PostSample(latents)
            hooks.post_sample(run, batch, post)

            # 6. decode; hooks see the batch, then each image
            decoded = vae_io.to_unit(vae.decode(post.samples))
            hooks.postprocess_batch(run, batch, decoded)
            batch_images = [Image.fromarray(a) for a in _to_uint8(decoded)]
            if settings.show_progress_every_n_steps == -1 and settings.live_previews_enable:
                events.preview(batch_images[0])
            may_save = (
                writer is not None and settings.samples_save and (not incomplete or settings.save_incomplete_images)
            )
            for j, image in enumerate(batch_images):
                args = PostprocessImage(image, batch, j)
                hooks.postprocess_image(run, args)
                image = args.image
                if init is not None and init.work is not None:  # inpaint: onto the original, outside unchanged
                    image = inpaint.paste_back(init.work[picks[j]], image)

                # 7. describe, save
                text = _infotext(run, batch, j, setup, init, hires_plan)
                if settings.enable_pnginfo:
                    image.info["parameters"] = text
                if may_save:
                    saved.append(writer.save(image, infotext=text, seed=batch.seeds[j], prompt=batch.prompts[j]))
                    if init is not None and init.work is not None:
                        saved += _save_masks(writer, image, init.work[picks[j]], text, batch, j, settings)
                images.append(image)
                infotexts.append(text)
            events.batch_done()

    # 8. grid of the batch images, first in the list as A1111 returns it
    index_of_first_image = 0
    wanted = (settings.return_grid or settings.grid_save) and not request.do_not_save_grid
    if images and wanted and not (len(images) < 2 and settings.grid_only_if_multiple):
        grid = image_grid(
            images,
            None if settings.n_rows < 0 else int(settings.n_rows),
            batch_size=request.batch_size,
            prevent_empty_spots=bool(settings.grid_prevent_empty_spots),
            background=settings.grid_background_color,
        )
        text = _infotext(run, None, 0, setup, init, hires_plan)
        if settings.enable_pnginfo:
            grid.info["parameters"] = text
        if settings.return_grid:
            images.insert(0, grid)
            infotexts.insert(0, text)
            index_of_first_image = 1
        if settings.grid_save and grid_writer is not None:
            saved.append(
                grid_writer.save(
                    grid, infotext=text, seed=run.all_seeds[0], prompt=run.all_prompts[0], kind="grids", basename="grid"
                )
            )

    model_name, model_hash = _model_identity(model, settings)
    processed = Processed(
        images=images,
        request=request,
        settings=settings,
        infotexts=infotexts,
        all_prompts=run.all_prompts,
        all_negative_prompts=run.all_negative_prompts,
        all_seeds=run.all_seeds,
        all_subseeds=run.all_subseeds,
        index_of_first_image=index_of_first_image,
        sd_model_name=model_name,
        sd_model_hash=model_hash,
        job_timestamp=run.job_timestamp,
        extra_generation_params=dict(run.extra_generation_params),
        comments=dict(run.comments),
        saved_paths=saved,
        interrupted=interrupted,
        notes=list(init.notes) if init is not None else [],
        depth_maps=list(init.depth_maps) if init is not None else [],
    )
    hooks.postprocess(run, processed)
    return processed


# ---------------------------------------------------------------------------------------------------------------
# Steps 0-2
# ---------------------------------------------------------------------------------------------------------------
def _with_setting_defaults(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """Fields a request leaves unset (None) take their setting, as A1111's fill_fields_from_opts does."""
    changes = {}
    if request.tiling is None:
        changes["tiling"] = bool(settings.tiling)
    if isinstance(request, Img2ImgRequest) and request.initial_noise_multiplier is None:
        changes["initial_noise_multiplier"] = float(settings.initial_noise_multiplier)
    return dataclasses.replace(request, **changes) if changes else request


def _fill_seeds_and_prompts(run: Run) -> None:
    r = run.request
    total = r.batch_size * r.n_iter
    run.all_seeds = rng.all_seeds(rng.fix_seed(r.seed), r.subseed_strength, total)
    run.all_subseeds = rng.all_subseeds(rng.fix_seed(r.subseed), total)
    run.all_prompts = [r.prompt] * total
    run.all_negative_prompts = [r.negative_prompt] * total


def _batches(run: Run):
    """The batches of the run, from the per-image lists as hooks left them (a short list ends the job early)."""
    n = run.request.batch_size
    for i in range(run.request.n_iter):
        sl = slice(i * n, (i + 1) * n)
        batch = Batch(i, run.all_prompts[sl], run.all_negative_prompts[sl], run.all_seeds[sl], run.all_subseeds[sl])
        if not len(batch) or len(batch.prompts) != len(batch):
            return
        yield batch


def _sampler_for(request: GenerationRequest, model: SDModel, seeds, settings: Settings) -> tuple[SamplerSetup, int]:
    """A fresh scheduler and the index of its first step: 0 for txt2img, part-way along for img2img."""
    steps, steps_to_run = request.steps, None
    if isinstance(request, Img2ImgRequest):
        steps, steps_to_run = img2img.schedule_steps(request, bool(settings.img2img_fix_steps))
    setup = build_scheduler(
        request.sampler_name,
        request.scheduler,
        steps,
        model.scheduler_config,
        eta=_eta(request, settings),
        seeds=seeds,
        is_sdxl=model.is_sdxl,
    )
    begin = img2img.begin_index(setup.scheduler, steps, steps_to_run) if steps_to_run is not None else 0
    return setup, begin


def _eta(request: GenerationRequest, settings: Settings) -> float | None:
    """The request's eta, else the setting for the sampler's kind: eta_ddim for DDIM, eta_ancestral for samplers
    that add noise; None for the others (they have no eta)."""
    if request.eta is not None:
        return request.eta
    try:
        info = find_sampler(resolve_sampler_name(request.sampler_name)[0])
    except UnsupportedSamplerError:
        return None  # build_scheduler says what is wrong with the name
    if info.scheduler_class == "DDIMScheduler":
        return float(settings.eta_ddim)
    if info.noise_is_fixed:
        return float(settings.eta_ancestral)
    return None


def _checked_hires_plan(request: GenerationRequest, model: SDModel, seeds, settings: Settings):
    plan = hires.plan(request)
    if plan is None:
        return None
    hr = plan.request
    max_pixels = int(settings.max_image_pixels)
    if hr.width * hr.height > max_pixels:
        raise InvalidRequestError(
            f"the hires size {hr.width}x{hr.height} is larger than the configured limit "
            f"of {max_pixels} pixels (setting max_image_pixels)"
        )
    return plan


def _prepare_init(request, model, policy, vae: JobVae, settings: Settings, writer: OutputWriter | None):
    if not isinstance(request, Img2ImgRequest):
        return None
    init = img2img.prepare_init(request, model, policy, vae, background=settings.img2img_background_color)
    for note in init.notes:
        log.warning("%s", note)
    if settings.save_init_img and writer is not None:  # A1111 saves each one; the infotext names the last
        for image in request.init_images:
            init.infotext["Init image hash"] = writer.save_init_image(image)
    return init


# ---------------------------------------------------------------------------------------------------------------
# Steps 4-5 for one batch
# ---------------------------------------------------------------------------------------------------------------
def _noise(
    request: GenerationRequest,
    model: SDModel,
    batch: Batch,
    settings: Settings,
    policy: DevicePolicy,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    width, height = size or (request.width, request.height)
    shape = (model.latent_channels, height // model.vae_scale_factor, width // model.vae_scale_factor)
    return rng.create_noise(
        shape,
        batch.seeds,
        batch.subseeds,
        request.subseed_strength,
        request.seed_resize_from_h,
        request.seed_resize_from_w,
        source=settings.randn_source,
        device=policy.device,
    )


def _generators(batch: Batch, settings: Settings, policy: DevicePolicy, shape, uses_ensd: bool):
    """Per-image generators for the noise samplers draw at each step: they continue each image's seed after the
    initial noise, or start from seed + ENSD when that is set, as A1111."""
    ensd = int(settings.eta_noise_seed_delta) if uses_ensd else 0
    seeds = [s + ensd for s in batch.seeds] if ensd else batch.seeds
    return rng.make_generators(
        seeds, source=settings.randn_source, device=policy.device, skip_first=not ensd, shape=tuple(shape)
    )


def _batch_start(
    request,
    init,
    model: SDModel,
    setup: SamplerSetup,
    begin: int,
    noise: torch.Tensor,
    batch: Batch,
    policy: DevicePolicy,
    vae: JobVae,
):
    """(starting latents, extra UNet channels, latent blend, which init image each uses)."""
    if init is None:  # txt2img: pure noise at the first step's level
        latents = (noise.to(policy.device, torch.float32) * setup.scheduler.init_noise_sigma).to(policy.dtype)
        return latents, inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype), None, None
    first = batch.index * request.batch_size
    picks = [(first + j) % init.latents.shape[0] for j in range(len(batch))]
    noise = noise.to(policy.device, init.latents.dtype) * float(request.initial_noise_multiplier)
    base = init.latents[picks]
    masks = init.latent_masks[picks].to(base.dtype) if init.latent_masks is not None else None
    if masks is not None and request.inpainting_fill == 2:  # "latent noise": the masked area starts as noise
        base = base * (1 - masks) + noise * masks
    elif masks is not None and request.inpainting_fill == 3:  # "latent nothing"
        base = base * (1 - masks)
    latents = img2img.noised_init(setup.scheduler, base, noise, begin)
    if init.extra_channels is not None:
        extra = init.extra_channels[picks]
    else:
        extra = inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype)
    blend = LatentBlend(base, noise, masks) if masks is not None and model.variant != "inpaint" else None
    return latents, extra, blend, picks


def _hires_pass(
    plan,
    run: Run,
    batch: Batch,
    latents: torch.Tensor,
    encoder,
    vae: JobVae,
    train_sigmas,
    hooks: ProcessingHooks,
    policy: DevicePolicy,
    progress: _BatchProgress,
) -> torch.Tensor:
    """The second pass of hires fix: upscaled first-pass latents as the init, fresh noise from the same seeds."""
    model, settings, hr = run.model, run.settings, plan.request
    init_latents = hires.upscale(latents, plan, vae, model.vae_scale_factor).to(policy.dtype)
    n = len(batch)
    text = encode_text(model, encoder, [hr.prompt] * n, [hr.negative_prompt] * n, hr, settings, policy)
    setup, begin = _sampler_for(hr, model, batch.seeds, settings)
    noise = _noise(hr, model, batch, settings, policy)
    start = img2img.noised_init(setup.scheduler, init_latents, noise.to(policy.device, init_latents.dtype), begin)
    denoiser = Denoiser(
        model.unet,
        text,
        cfg_scale=hr.cfg_scale,
        prediction_type=model.prediction_type,
        train_sigmas=train_sigmas,
        hooks=hooks,
        image_cond=inpaint.txt2img_channels(model.variant, start.shape, vae, policy.dtype),
    )
    progress.denoiser = denoiser
    return denoise(
        setup.scheduler,
        start,
        denoiser,
        train_sigmas=train_sigmas,
        generators=_generators(batch, settings, policy, noise.shape[1:], setup.uses_ensd),
        eta=_eta(hr, settings),
        begin_index=begin,
        on_step=progress.on_step,
        should_stop=progress.should_stop,
    )


class _BatchProgress:
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


# ---------------------------------------------------------------------------------------------------------------
# Steps 6-7: images, infotexts, files
# ---------------------------------------------------------------------------------------------------------------
def _to_uint8(unit: torch.Tensor) -> list[np.ndarray]:
    arr = unit.permute(0, 2, 3, 1).cpu().numpy()
    return [(a * 255).round().astype(np.uint8) for a in arr]


def _model_identity(model: SDModel, settings: Settings) -> tuple[str | None, str | None]:
    info = model.checkpoint
    if info is None:
        return None, None
    name = info.name_for_extra if settings.add_model_name_to_info else None
    return name, (info.shorthash or info.hash) if settings.add_model_hash_to_info else None


def _infotext(run: Run, batch: Batch | None, j: int, setup: SamplerSetup, init, hires_plan) -> str:
    """The infotext of image j of `batch`, or of the whole job (the grid) when batch is None."""
    request, settings = run.request, run.settings
    seed = batch.seeds[j] if batch is not None else run.all_seeds[0]
    subseed = batch.subseeds[j] if batch is not None else run.all_subseeds[0]
    prompt = batch.prompts[j] if batch is not None else run.all_prompts[0]
    negative = batch.negative_prompts[j] if batch is not None else run.all_negative_prompts[0]
    model_name, model_hash = _model_identity(run.model, settings)
    extra, strength = {}, None
    if hires_plan is not None:
        extra = {k: v for k, v in hires_plan.infotext.items() if k != "Denoising strength"}
        strength = request.denoising_strength
    elif init is not None:
        extra = dict(init.infotext)
        if request.initial_noise_multiplier not in (None, 1, 1.0):
            extra["Noise multiplier"] = request.initial_noise_multiplier
        strength = request.denoising_strength
    eta = _eta(request, settings)
    if setup.sampler_name == "DDIM" and eta:
        extra["Eta DDIM"] = eta
    extra.update(run.extra_generation_params)
    ensd = int(settings.eta_noise_seed_delta)
    params = generation_params(
        request,
        seed=seed,
        subseed=subseed,
        model_name=model_name,
        model_hash=model_hash,
        schedule_label=setup.schedule_label,
        rng=settings.randn_source,
        clip_skip=int(settings.CLIP_stop_at_last_layers),
        ensd=ensd if ensd and setup.uses_ensd else None,
        denoising_strength=strength,
        extra=extra,
        index=batch.index * request.batch_size + j if batch else 0,
    )
    return build_infotext(prompt, negative, params)


def _save_masks(
    writer: OutputWriter, image: Image.Image, work, text: str, batch: Batch, j: int, settings: Settings
) -> list[Path]:
    """A1111's save_mask / save_mask_composite: the mask used, and the result shown through it."""
    saved = []
    if settings.save_mask:
        saved.append(
            writer.save(
                work.overlay.convert("RGB"), infotext=text, seed=batch.seeds[j], prompt=batch.prompts[j], suffix="-mask"
            )
        )
    if settings.save_mask_composite:
        mask = work.overlay.resize(image.size) if work.overlay.size != image.size else work.overlay
        composite = Image.composite(image.convert("RGBA"), Image.new("RGBA", image.size), mask.convert("L"))
        saved.append(
            writer.save(
                composite, infotext=text, seed=batch.seeds[j], prompt=batch.prompts[j], suffix="-mask-composite"
            )
        )
    return saved


def _save_before_hires(
    run: Run, batch: Batch, latents: torch.Tensor, vae: JobVae, writer: OutputWriter | None, texts: list[str]
) -> None:
    """A1111's save_images_before_highres_fix: the first pass's images, with the final images' infotexts."""
    settings = run.settings
    if writer is None or not settings.save_images_before_highres_fix or not settings.samples_save:
        return
    for j, image in enumerate(vae.decode_to_pil(latents)):
        writer.save(
            image, infotext=texts[j], seed=batch.seeds[j], prompt=batch.prompts[j], suffix="-before-highres-fix"
        )
