"""ControlNet as a built-in always-on script: the units a request carries become residual contributors of its job.

A request (the API's `alwayson_scripts: {"controlnet": {"args": [unit, ...]}}`, or the UI's ControlNet accordion,
which sends the same) is read when the job starts; per enabled unit:
  1. its image: the unit's own, else the img2img init image (and the inpaint mask), as the extension does;
  2. the preprocessor's map at its resolution (pixel perfect: the one that fills the generation size);
  3. its model from the catalog (models/ControlNet, extensions/*/models), loaded once into the RAM cache, in the
     UNet's dtype and device;
  4. a contributor adding the unit's residuals to every UNet call inside its steps (both hires fix passes unless
     the unit says otherwise), and the unit's infotext entry ("ControlNet 0: ...").
Recolor and inpaint_only also change the decoded picture (the extension's postprocess step). Some modules act
during sampling (the extension's "sampling-time modules"): tile_colorfix(+sharp) corrects the denoised prediction
(colorfix.py), reference_* need no model and inject a reference image into the UNet itself (reference.py).
They ride in run.residual_contributors (adding no residuals), so the script hands the on_denoiser / on_denoised
calls of a Denoiser to the modules of its own job only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdui.controlnet import postprocessing, preprocessors, reference
from sdui.controlnet.builtin_preprocessors import shuffle_seed
from sdui.controlnet.colorfix import ColorFix
from sdui.controlnet.control_image import resize_map
from sdui.controlnet.infotext import infotext_params
from sdui.controlnet.model_files import ControlNetCache, ControlNetCatalog
from sdui.controlnet.modes import HiresOption, ResizeMode
from sdui.controlnet.reference import ReferenceInjection, ReferenceUnit, restore_unet
from sdui.controlnet.residuals import ControlNetResiduals, check_fits
from sdui.controlnet.units import SCRIPT_TITLE, ControlNetUnit, units_from_alwayson_scripts
from sdui.core.denoiser import Residuals, UNetCall
from sdui.core.hooks import DenoisedParams, DenoiserParams, ProcessingHooks
from sdui.core.run import Batch, Run
from sdui.core.schedules import training_sigmas
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.imaging.masking import crop_to_region
from sdui.modes import inpaint
from sdui.request import Img2ImgRequest

log = logging.getLogger(__name__)

ALWAYSON_NAME = SCRIPT_TITLE.lower()  # how /sdapi/v1/scripts and alwayson_scripts name it
KEPT_JOBS = 4  # runs whose prepared units are held (one at a time runs; a failed one is dropped later)
AFTER_DECODE = ("recolor_luminance", "recolor_intensity", "inpaint_only")
SOFT_IN_HIRES = ("canny", "mlsd")  # the extension softens these units' residuals in hires fix's second pass
COLORFIX = ("tile_colorfix", "tile_colorfix+sharp")
NOT_BUILT = ("revision_clipvision", "revision_ignore_prompt")  # model-free modules this build does not run yet
SamplingModule = ColorFix | ReferenceInjection


@dataclasses.dataclass
class PreparedUnit:
    unit: ControlNetUnit
    control_map: np.ndarray  # HWC uint8, the preprocessor's output
    contributor: ControlNetResiduals | None
    sampling: ColorFix | None = None  # tile_colorfix: acts on the prediction beside the residuals
    reference: ReferenceUnit | None = None  # reference_*: acts inside the UNet, all of a job's units together


class OnePass:
    """A unit limited to one pass of hires fix (the extension's hr_option): the first size it sees is the first pass."""

    def __init__(self, inner: ControlNetResiduals, option: HiresOption):
        self.inner, self.option = inner, option
        self.first_size: tuple[int, int] | None = None

    def __call__(self, call: UNetCall) -> Residuals | None:
        size = tuple(call.sample.shape[-2:])
        self.first_size = self.first_size or size
        second = size != self.first_size
        if (second and self.option == HiresOption.LOW_RES_ONLY) or (
            not second and self.option == HiresOption.HIGH_RES_ONLY
        ):
            return None
        return self.inner(call)


class ControlNetScript(ProcessingHooks):
    """The built-in ControlNet: its model catalog and cache, and the hook every generation goes through."""

    def __init__(
        self,
        model_dirs: list[Path],
        annotator_dir: Path,
        *,
        unit_count: Callable[[], int] = lambda: 3,
        cache_size: Callable[[], int] = lambda: 2,
        max_pixels: Callable[[], int | None] = lambda: None,
    ):
        self.catalog = ControlNetCatalog(model_dirs)
        self.cache = ControlNetCache(cache_size())
        self.annotator_dir = annotator_dir
        self.unit_count = unit_count
        self.cache_size = cache_size
        self.max_pixels = max_pixels
        self._prepared: dict[int, list[PreparedUnit]] = {}  # per running job (id of its Run)
        self._sampling: list[SamplingModule] = []  # the modules of the Denoiser being called (set in on_denoiser)

    # ---- reading a request ---------------------------------------------------------------------------------------
    def units(self, request) -> list[ControlNetUnit]:
        """The enabled units of a request (InvalidRequestError naming the field for a bad one)."""
        limit = max(int(self.unit_count()), 1)
        return units_from_alwayson_scripts(
            getattr(request, "alwayson_scripts", None), max_units=max(limit, 10), max_pixels=self.max_pixels()
        )

    # ---- the hook ------------------------------------------------------------------------------------------------
    def process(self, run: Run) -> None:
        restore_unet(run.model.unet)  # what a reference unit left in a job that failed half-way
        units = self.units(run.request)
        if not units:
            return
        _check_sampling_modules(units)
        self.cache.size = max(0, int(self.cache_size()))
        unet = run.model.unet
        policy = DevicePolicy(device=unet.device, dtype=unet.dtype, vae_dtype=unet.dtype)
        prepared = []
        for index, unit in enumerate(units):
            prepared.append(self._prepare(index, unit, run, policy))
        self._prepared[id(run)] = prepared
        while len(self._prepared) > KEPT_JOBS:  # jobs that failed never reached postprocess(): their maps go
            self._prepared.pop(next(iter(self._prepared)))
        run.residual_contributors.extend(
            p.contributor if p.unit.hr_option == HiresOption.BOTH else OnePass(p.contributor, p.unit.hr_option)
            for p in prepared
            if p.contributor is not None
        )
        run.residual_contributors.extend(p.sampling for p in prepared if p.sampling is not None)
        references = [p.reference for p in prepared if p.reference is not None]
        if references:
            sigmas = training_sigmas(run.model.scheduler_config)
            run.residual_contributors.append(
                ReferenceInjection(
                    references,
                    run.model,
                    seed=run.all_seeds[0] if run.all_seeds else 0,
                    alphas_cumprod=1.0 / (1.0 + sigmas.double() ** 2),
                )
            )
        run.extra_generation_params.update(infotext_params([p.unit for p in prepared]))

    def _prepare(self, index: int, unit: ControlNetUnit, run: Run, policy: DevicePolicy) -> PreparedUnit:
        request = run.request
        # 1. the image: the unit's, else img2img's own
        image, mask = unit.image, unit.mask
        if image is None and isinstance(request, Img2ImgRequest) and request.init_images:
            image = request.init_images[0]
            mask = mask if mask is not None else request.mask
        if image is None:
            raise InvalidRequestError(
                f"ControlNet unit {index}: no image. Send the unit's \"image\" (base64), or use img2img, whose "
                "init image a unit without its own image takes."
            )
        if unit.inpaint_crop_input_image:
            image, mask = only_masked_crop(request, image, mask)
        pixels = np.asarray(image.convert("RGB"))
        mask_pixels = None if mask is None else np.asarray(mask.convert("L").resize(image.size))

        # 2. the preprocessor's map, at the resolution that fills the generation size with pixel perfect
        module = preprocessors.find(unit.module)
        resolution = unit.processor_res
        width, height = request.width // 8 * 8, request.height // 8 * 8
        if unit.pixel_perfect:
            resolution = preprocessors.pixel_perfect_resolution(pixels.shape[:2], (height, width), unit.resize_mode)
        res, a, b = preprocessors.bound_params(module, resolution, unit.threshold_a, unit.threshold_b)
        seed = shuffle_seed(run.all_seeds[0] if run.all_seeds else 0, run.all_subseeds[0] if run.all_subseeds else 0)
        control_map = preprocessors.run(
            module.name,
            pixels,
            resolution=res,
            threshold_a=a,
            threshold_b=b,
            mask=mask_pixels,
            seed=seed,
            annotator_dir=self.annotator_dir,
            depth_estimator=run.model.depth_estimator,  # an SD 2 depth checkpoint's MiDaS runs depth_midas too
            device=policy.device,
        )
        unit = dataclasses.replace(unit, module=module.name, processor_res=res, threshold_a=a, threshold_b=b)

        # 3. reference_* need no model: their image goes into the UNet's attention and group statistics
        if module.name in reference.MODULES:
            unit = dataclasses.replace(unit, model="None")
            log.info("ControlNet unit %d: %s, weight %s", index, module.name, unit.weight)
            return PreparedUnit(unit, control_map, None, reference=_reference_unit(unit, control_map))

        # 4. the model, and the contributor that adds its residuals
        entry = self.catalog.find(unit.model)  # an unknown name: a 422 naming the known models
        if entry is None:
            raise InvalidRequestError(
                f"ControlNet unit {index} has preprocessor {module.name} but no model: choose one of "
                f"{', '.join(self.catalog.titles(include_none=False)) or 'the files in models/ControlNet (none yet)'}."
            )
        unit = dataclasses.replace(unit, model=entry.title)
        controlnet = self.cache.get(entry, policy)
        check_fits(controlnet, run.model.unet, entry.title)  # an SD1 ControlNet on SDXL: refused before sampling
        inpaint = module.name.startswith("inpaint")  # RGBA: the ControlNet sees -1 where the mask repaints
        if control_map.ndim == 2:
            control_map = np.repeat(control_map[..., None], 3, axis=2)
        contributor = ControlNetResiduals(
            controlnet,
            control_map if inpaint else control_map[..., :3],
            weight=unit.weight,
            guidance_start=unit.guidance_start,
            guidance_end=unit.guidance_end,
            control_mode=unit.control_mode,
            resize_mode=unit.resize_mode,
            soft_in_hires=module.name in SOFT_IN_HIRES,
            inpaint=inpaint,
        )
        sampling = None
        if module.name in COLORFIX:  # 5. tile_colorfix also corrects the prediction's colours
            sampling = ColorFix(
                control_map,
                run.model.vae,
                variation=unit.threshold_a,
                sharpness=unit.threshold_b if module.name.endswith("+sharp") else None,
                weight=unit.weight,
                resize_mode=unit.resize_mode,
                hr_option=unit.hr_option,
            )
        log.info("ControlNet unit %d: %s with %s, weight %s", index, module.name, entry.title, unit.weight)
        return PreparedUnit(unit, control_map, contributor, sampling)

    # ---- sampling-time modules: each Denoiser call goes to the modules of its own job --------------------------
    def on_denoiser(self, params: DenoiserParams) -> None:
        contributors = getattr(params.denoiser, "contributors", ())
        self._sampling = [c for c in contributors if isinstance(c, SamplingModule)]
        for module in self._sampling:
            module.on_denoiser(params)

    def on_denoised(self, params: DenoisedParams) -> None:
        for module in self._sampling:
            module.on_denoised(params)

    def postprocess_batch(self, run: Run, batch: Batch, images: torch.Tensor) -> None:
        """Recolor puts the map's lightness back into the decoded pictures, inpaint_only the unit's own pixels
        outside its mask (in place), as the extension does."""
        for prepared in self._prepared.get(id(run), []):
            if prepared.unit.module not in AFTER_DECODE:
                continue
            height, width = images.shape[-2:]
            sized = _map_at(prepared.control_map, width, height, prepared.unit.resize_mode)
            for i in range(images.shape[0]):
                picture = images[i].permute(1, 2, 0).float().cpu().numpy()
                result = postprocessing.after_decode(prepared.unit.module, picture, sized)
                images[i] = torch.from_numpy(result).permute(2, 0, 1).to(images)

    def postprocess(self, run: Run, processed) -> None:
        self._prepared.pop(id(run), None)  # the job is over: its maps go
        for contributor in run.residual_contributors:
            if isinstance(contributor, ReferenceInjection):
                contributor.close()
        self._sampling = []


def _check_sampling_modules(units: list[ControlNetUnit]) -> None:
    """Refuse, before any work, the model-free modules this build does not run."""
    for index, unit in enumerate(units):
        name = preprocessors.find(unit.module).name
        if name in NOT_BUILT:
            raise InvalidRequestError(
                f"ControlNet unit {index}: preprocessor {name} is not built yet (it needs a CLIP vision model); "
                "disable the unit, or use reference_only for an image's style."
            )


def _reference_unit(unit: ControlNetUnit, control_map: np.ndarray) -> ReferenceUnit:
    return ReferenceUnit(
        module=unit.module,
        image=control_map,
        weight=unit.weight,
        threshold_a=unit.threshold_a,
        control_mode=unit.control_mode,
        guidance_start=unit.guidance_start,
        guidance_end=unit.guidance_end,
        resize_mode=unit.resize_mode,
        hr_option=unit.hr_option,
    )


def _map_at(control_map: np.ndarray, width: int, height: int, resize_mode: ResizeMode) -> np.ndarray:
    """The map fitted to the picture by the unit's resize mode; an RGBA map keeps its alpha (the mask)."""
    rgb = resize_map(control_map[..., :3], width, height, resize_mode)
    if control_map.shape[2] < 4:
        return rgb
    alpha = resize_map(np.repeat(control_map[..., 3:], 3, axis=2), width, height, resize_mode)[..., :1]
    return np.concatenate([rgb, alpha], axis=2)


def only_masked_crop(request, image: Image.Image, mask: Image.Image | None):
    """With "Only masked" inpainting the job works on a box of the init image brought to the generation size; the
    unit's image and mask are cut to the same box (the extension's inpaint_crop_input_image): the map lines up."""
    if not (isinstance(request, Img2ImgRequest) and request.inpaint_full_res and request.mask and request.init_images):
        return image, mask
    work, _ = inpaint.prepare(request, request.init_images[0])
    if work.region is None:
        return image, mask

    def cut(picture: Image.Image) -> Image.Image:
        picture = picture.resize(work.original.size) if picture.size != work.original.size else picture
        return crop_to_region(picture, work.region, request.width, request.height)

    return cut(image), None if mask is None else cut(mask)
