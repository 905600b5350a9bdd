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

import torch
from PIL import Image

from sdui.core import latents as initial
from sdui.core import rng
from sdui.core.conditioning import ConditioningCache, encode_text, prompt_encoder, prompt_steps, uncond_options
from sdui.core.denoiser import Denoiser
from sdui.core.describe import infotext_for, model_identity
from sdui.core.events import NoEvents, ProgressEvents
from sdui.core.hooks import GridLayout, HookSet, PostprocessImage, PostSample, ProcessingHooks
from sdui.core.outputs import OutputWriter
from sdui.core.patches import ModelPatch, patched_for_job
from sdui.core.processed import Processed
from sdui.core.progress import BatchProgress, preview_decoder
from sdui.core.run import Batch, Run
from sdui.core.sampler_setup import SamplerSetup, sampler_for
from sdui.core.sampling import sample
from sdui.core.schedules import training_sigmas
from sdui.core.token_merging import merged_tokens, merging_ratio
from sdui.core.validation import validate
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.imaging import vae as vae_io
from sdui.imaging.grids import draw_grid, grid_shape
from sdui.imaging.vae import JobVae
from sdui.models.sd_model import SDModel
from sdui.modes import hires, img2img, inpaint
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings
from sdui.upscalers.face_restoration import FACE_RESTORERS, FaceRestorationError

log = logging.getLogger(__name__)


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
    preview_dirs: Sequence[Path] = (),
) -> Processed:
    """Run `request` on `model`. `settings`: the job's snapshot (default: our defaults); `data_dir`: where the
    outdir_* settings point (None: nothing is saved); `patches`: per-job model changes beyond tiling and VAE
    precision (LoRA, ControlNet); `preview_dirs`: where live previews find TAESD's weights (models/VAE-approx)."""
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
    setup = _sampler(request, model, settings)
    run.request = request = dataclasses.replace(request, sampler_name=setup.sampler_name)  # "DPM++ 2M Karras" split
    hires_plan = _checked_hires_plan(request, settings)
    steps_per_batch = setup.steps
    if hires_plan is not None:
        steps_per_batch += _hires_sampler(hires_plan, model, settings).steps
    batches = list(_batches(run))
    events.add_batches(len(batches), steps_per_batch)

    run.face_restoration = _face_restorer(run)

    saving = data_dir is not None
    writer = OutputWriter(run, hooks, data_dir) if saving and not request.do_not_save_samples else None
    grid_writer = OutputWriter(run, hooks, data_dir) if saving and not request.do_not_save_grid else None
    encoder = prompt_encoder(model, settings, run.embeddings)
    conds = ConditioningCache.for_job(model, settings)  # each distinct prompt once per job; kept ones from earlier
    negative = uncond_options(request, settings, encoder, setup.infotext)
    train_sigmas = training_sigmas(model.scheduler_config)
    images, infotexts, saved = [], [], []
    interrupted = False
    with patched_for_job(run, patches) as vae:
        init = _prepare_init(request, model, policy, vae, settings, writer)
        previews = preview_decoder(settings, model, vae, preview_dirs)
        for batch in batches:
            if interrupted or events.interrupted():
                interrupted = True
                break
            run.iteration = batch.index
            hooks.before_process_batch(run, batch)
            hooks.process_batch(run, batch)

            # 3. conditioning: the batch's prompts as hooks left them
            text = encode_text(
                model,
                encoder,
                batch.prompts,
                batch.negative_prompts,
                request,
                settings,
                policy,
                steps=prompt_steps(request.steps, setup),
                cache=conds,
                notes=setup.infotext,
                encoder_key=run.text_encoder_key,
            )
            if encoder.used_embeddings and settings.textual_inversion_add_hashes_to_infotext:
                run.extra_generation_params["TI hashes"] = ", ".join(
                    f"{name.replace(':', '').replace(',', '')}: {e.shorthash_value}"
                    for name, e in encoder.used_embeddings.items()
                    if e.shorthash_value
                )

            # 4. initial latents from each image's own seed
            noise = initial.noise(request, model, batch, settings, policy)
            latents, image_cond, blend, picks = initial.batch_start(
                request, init, model, setup, noise, batch, run.all_seeds, settings, policy, vae
            )

            # 5. denoise; an interrupt ends the job, a skip ends this batch only
            progress = BatchProgress(events, steps_per_batch, settings, previews)
            progress.denoiser = Denoiser(
                model.unet,
                text,
                cfg_scale=request.cfg_scale,
                prediction_type=model.prediction_type,
                train_sigmas=train_sigmas,
                image_cond=image_cond,
                hooks=hooks,
                contributors=run.residual_contributors,
                uncond_options=negative,
            )
            with progress.watch(model.unet):  # the job can tell how far a slow step has got
                with merged_tokens(model.unet, merging_ratio(request, settings)):
                    latents, stopped = sample(
                        setup,
                        progress.denoiser,
                        latents,
                        noise=initial.sampler_noise(setup, batch, settings, policy, latents),
                        train_sigmas=train_sigmas,
                        blend=blend,
                        on_step=progress.on_step,
                        should_stop=progress.should_stop,
                    )
                if hires_plan is not None and not stopped:
                    if writer is not None and settings.save_images_before_highres_fix and settings.samples_save:
                        writer.save_before_hires(
                            vae.decode_to_pil(latents),
                            seeds=batch.seeds,
                            prompts=batch.prompts,
                            infotexts=[infotext_for(run, batch, j, setup, init, hires_plan) for j in range(len(batch))],
                        )
                    latents, stopped = _hires_pass(
                        hires_plan,
                        run,
                        batch,
                        latents,
                        (encoder, conds, prompt_steps(request.steps, setup), negative),
                        vae,
                        train_sigmas,
                        hooks,
                        policy,
                        progress,
                    )
            incomplete = stopped  # unfinished images are returned, saved only if asked
            interrupted = events.interrupted()
            post = PostSample(latents)
            hooks.post_sample(run, batch, post)

            # 6. decode; hooks see the batch, then each image
            decoded = vae_io.to_unit(vae.decode(post.samples))
            hooks.postprocess_batch(run, batch, decoded)
            batch_images = [Image.fromarray(a) for a in vae_io.to_uint8(decoded)]
            if settings.show_progress_every_n_steps == -1 and settings.live_previews_enable:
                events.preview(batch_images[0])
            may_save = (
                writer is not None and settings.samples_save and (not incomplete or settings.save_incomplete_images)
            )
            for j, image in enumerate(batch_images):
                if run.face_restoration is not None:  # A1111: after decoding, before the scripts see the image
                    image = FACE_RESTORERS.restore(
                        image, run.face_restoration, 1.0, codeformer_weight=float(settings.code_former_weight)
                    )
                args = PostprocessImage(image, batch, j)
                hooks.postprocess_image(run, args)
                image = args.image
                work = init.work[picks[j]] if init is not None and init.work is not None else None
                if work is not None:  # inpaint: onto the original, outside unchanged
                    image = inpaint.paste_back(work, image)

                # 7. describe, save
                text = infotext_for(run, batch, j, setup, init, hires_plan)
                if settings.enable_pnginfo:
                    image.info["parameters"] = text
                if may_save:
                    saved.append(writer.save(image, infotext=text, seed=batch.seeds[j], prompt=batch.prompts[j]))
                    if work is not None:
                        saved += writer.save_masks(
                            image, work.overlay, infotext=text, seed=batch.seeds[j], prompt=batch.prompts[j]
                        )
                images.append(image)
                infotexts.append(text)
            events.batch_done()

    # 8. grid of the batch images, first in the list as A1111 returns it
    index_of_first_image = 0
    wanted = (settings.return_grid or settings.grid_save) and not request.do_not_save_grid
    if images and wanted and not (len(images) < 2 and settings.grid_only_if_multiple):
        rows, cols = grid_shape(
            len(images),
            None if settings.n_rows < 0 else int(settings.n_rows),
            batch_size=request.batch_size,
            prevent_empty_spots=bool(settings.grid_prevent_empty_spots),
        )
        layout = GridLayout(list(images), cols, rows)
        hooks.grid_layout(layout)
        grid = draw_grid(layout.images, layout.rows, layout.cols, background=settings.grid_background_color)
        text = infotext_for(run, None, 0, setup, init, hires_plan)
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

    model_name, model_hash = model_identity(model, settings)
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
        saved_paths=[path for path in saved if path is not None],
        interrupted=interrupted,
        notes=[
            *run.comments,  # what hooks told the user (e.g. a network not found)
            *(init.notes if init is not None else []),
            *(writer.errors if writer else []),
            *(grid_writer.errors if grid_writer else []),
        ],
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


def _face_restorer(run: Run) -> str | None:
    """The restorer of restore_faces (or the face_restoration setting): face_restoration_model when it is installed,
    else the first one that is. None when not asked, or when none can run: then the images come out unrestored, as
    in A1111, and the notes say why."""
    request, settings = run.request, run.settings
    wanted = settings.face_restoration if request.restore_faces is None else request.restore_faces
    if not wanted:
        return None
    available = [r.name for r in FACE_RESTORERS.available()]
    preferred = str(settings.face_restoration_model)
    for name in ([preferred] if preferred in available else []) + available:
        try:
            return FACE_RESTORERS.require(name).name
        except FaceRestorationError as e:
            run.comments[f"Faces were not restored: {e.message}"] = 1  # A1111's p.comment(text)
            return None
    note = (
        "Faces were not restored: no face restorer is installed (put GFPGANv1.4.pth with the detection weights "
        "detection_Resnet50_Final.pth and parsing_parsenet.pth into models/GFPGAN)."
    )
    run.comments[note] = 1
    return None


def _checked_hires_plan(request: GenerationRequest, settings: Settings) -> hires.HiresPlan | None:
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


def _sampler(request: GenerationRequest, model, settings: Settings) -> SamplerSetup:
    """The request's sampler: txt2img walks the whole schedule, img2img its tail (A1111's step arithmetic)."""
    if isinstance(request, Img2ImgRequest):
        return sampler_for(
            request, model, settings, denoising=request.denoising_strength, fix_steps=bool(settings.img2img_fix_steps)
        )
    return sampler_for(request, model, settings)


def _hires_sampler(plan: hires.HiresPlan, model, settings: Settings) -> SamplerSetup:
    """Hires fix's second pass: always A1111's "fix steps" arithmetic (about hr steps run, whatever the strength)."""
    return sampler_for(plan.request, model, settings, denoising=plan.request.denoising_strength, fix_steps=True)


def _hires_pass(
    plan,
    run: Run,
    batch: Batch,
    latents: torch.Tensor,
    prompts: tuple,
    vae: JobVae,
    train_sigmas,
    hooks: ProcessingHooks,
    policy: DevicePolicy,
    progress: BatchProgress,
) -> tuple[torch.Tensor, bool]:
    """The second pass of hires fix: upscaled first-pass latents as the init, fresh noise from the same seeds.
    `prompts`: (encoder, the job's conditioning cache, the first pass's prompt steps, the negative prompt's
    options) for its conditioning."""
    model, settings, hr = run.model, run.settings, plan.request
    init_latents = hires.upscale(latents, plan, vae, model.vae_scale_factor).float()
    n = len(batch)
    setup = _hires_sampler(plan, model, settings)
    encoder, conds, first_pass_steps, negative = prompts
    hooks.before_hires(run, batch)
    text = encode_text(
        model,
        encoder,
        [hr.prompt] * n,
        [hr.negative_prompt] * n,
        hr,
        settings,
        policy,
        steps=first_pass_steps,
        hires_steps=prompt_steps(hr.steps, setup),
        cache=conds,
        encoder_key=run.text_encoder_key,
    )
    noise = initial.noise(hr, model, batch, settings, policy).to(policy.device, torch.float32)
    start = initial.img2img_start(setup, init_latents, noise, train_sigmas, float(settings.img2img_extra_noise))
    denoiser = Denoiser(
        model.unet,
        text,
        cfg_scale=hr.cfg_scale,
        prediction_type=model.prediction_type,
        train_sigmas=train_sigmas,
        hooks=hooks,
        image_cond=inpaint.txt2img_channels(model.variant, start.shape, vae, policy.dtype),
        contributors=run.residual_contributors,
        uncond_options=negative,
    )
    progress.denoiser = denoiser
    with merged_tokens(model.unet, merging_ratio(run.request, settings, hires=True)):
        return sample(
            setup,
            denoiser,
            start,
            noise=initial.sampler_noise(setup, batch, settings, policy, start),
            train_sigmas=train_sigmas,
            on_step=progress.on_step,
            should_stop=progress.should_stop,
        )
