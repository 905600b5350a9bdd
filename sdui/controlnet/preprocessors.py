"""ControlNet preprocessors (the "modules" of sd-webui-controlnet's API): the registry of the extension's names, UI
aliases and sliders, and `run`, which bounds a client's settings and makes a map.

Names, their order, aliases and sliders are the extension's (1.1.4xx: `global_state.cn_preprocessor_modules`,
`preprocessor_aliases`, `processor.preprocessor_sliders_config`), so `/controlnet/module_list` answers as it does.
The weight-free ones run here (builtin_preprocessors.py); a map comes back at the preprocessor resolution, and
fitting it to the generation size by the resize mode is control_image.py's job. Some modules only carry the image
on: recolor and inpaint_only act on the decoded picture (postprocessing.py), tile_colorfix on the UNet's
prediction, reference_* inside attention.
Those that run an annotator model run from their local files where this build has a runner (depth_midas and
normal_midas: midas_annotator.py, also on an SD 2 depth checkpoint's own MiDaS); the others are listed and refused
with what to do (annotators.py).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdui.controlnet import annotators, midas_annotator
from sdui.controlnet.builtin_preprocessors import (
    blur_gaussian,
    canny,
    color_grid,
    inpaint_map,
    invert,
    lineart_standard,
    recolor_intensity,
    recolor_luminance,
    scaled_size,
    scribble_xdog,
    shuffle,
    threshold,
    tile_resample,
    to_rgb,
)
from sdui.controlnet.modes import ResizeMode, resize_mode
from sdui.errors import InvalidRequestError
from sdui.models.depth_estimator import DepthEstimator
from sdui.settings.definitions import MAX_IMAGE_PIXELS

DEFAULT_RESOLUTION = 512  # the extension's default where a module has no resolution slider


class UnknownPreprocessorError(InvalidRequestError):
    pass


@dataclass(frozen=True)
class Params:
    """A run's settings after defaults and bounds (`bound_params`)."""

    resolution: int
    threshold_a: float
    threshold_b: float
    mask: np.ndarray | None = None
    seed: int = 0


# -------------------------------------------------------------------------------------------------------- registry

_RES = {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048}
_NOISE = {"name": "Noise Augmentation", "value": 0.0, "min": 0.0, "max": 1.0}
_FIDELITY = {"name": 'Style Fidelity (only for "Balanced" mode)', "value": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}
_VARIATION = {"name": "Variation", "value": 8.0, "min": 3.0, "max": 32.0, "step": 1.0}
_SHARPNESS = {"name": "Sharpness", "value": 1.0, "min": 0.0, "max": 2.0, "step": 0.01}
_GAMMA = {"name": "Gamma Correction", "value": 1.0, "min": 0.1, "max": 2.0, "step": 0.001}
_LERES = [
    _RES,
    {"name": "Remove Near %", "value": 0, "min": 0, "max": 100, "step": 0.1},
    {"name": "Remove Background %", "value": 0, "min": 0, "max": 100, "step": 0.1},
]

# the extension's slider config: [resolution, threshold_a, threshold_b] (None: not shown); modules without an entry
# are answered with no sliders
SLIDERS: dict[str, list[dict | None]] = {
    "none": [],
    "inpaint": [],
    "inpaint_only": [],
    "inpaint_only+lama": [],
    "revision_clipvision": [None, _NOISE],
    "revision_ignore_prompt": [None, _NOISE],
    "canny": [
        _RES,
        {"name": "Canny Low Threshold", "value": 100, "min": 1, "max": 255},
        {"name": "Canny High Threshold", "value": 200, "min": 1, "max": 255},
    ],
    "mlsd": [
        _RES,
        {"name": "MLSD Value Threshold", "value": 0.1, "min": 0.01, "max": 2.0, "step": 0.01},
        {"name": "MLSD Distance Threshold", "value": 0.1, "min": 0.01, "max": 20.0, "step": 0.01},
    ],
    **{name: [_RES] for name in ("hed", "scribble_hed", "hed_safe", "openpose", "openpose_full", "dw_openpose_full")},
    **{name: [_RES] for name in ("animal_openpose", "segmentation", "depth", "color", "anime_face_segment")},
    **{name: [_RES] for name in ("densepose", "densepose_parula", "depth_hand_refiner")},
    "depth_leres": _LERES,
    "depth_leres++": _LERES,
    "normal_map": [_RES, {"name": "Normal Background Threshold", "value": 0.4, "min": 0.0, "max": 1.0, "step": 0.01}],
    "threshold": [_RES, {"name": "Binarization Threshold", "value": 127, "min": 0, "max": 255}],
    "scribble_xdog": [_RES, {"name": "XDoG Threshold", "value": 32, "min": 1, "max": 64}],
    "blur_gaussian": [_RES, {"name": "Sigma", "value": 9.0, "min": 0.01, "max": 64.0}],
    "tile_resample": [None, {"name": "Down Sampling Rate", "value": 1.0, "min": 1.0, "max": 8.0, "step": 0.01}],
    "tile_colorfix": [None, _VARIATION],
    "tile_colorfix+sharp": [None, _VARIATION, _SHARPNESS],
    "reference_only": [None, _FIDELITY],
    "reference_adain": [None, _FIDELITY],
    "reference_adain+attn": [None, _FIDELITY],
    "mediapipe_face": [
        _RES,
        {"name": "Max Faces", "value": 1, "min": 1, "max": 10, "step": 1},
        {"name": "Min Face Confidence", "value": 0.5, "min": 0.01, "max": 1.0, "step": 0.01},
    ],
    "recolor_luminance": [None, _GAMMA],
    "recolor_intensity": [None, _GAMMA],
    "te_hed": [_RES, {"name": "Safe Steps", "value": 2, "min": 0, "max": 10, "step": 1}],
}

ALIASES = {
    "invert": "invert (from white bg & black line)",
    "lineart_standard": "lineart_standard (from white bg & black line)",
    "lineart": "lineart_realistic",
    "color": "t2ia_color_grid",
    "clip_vision": "t2ia_style_clipvision",
    "pidinet_sketch": "t2ia_sketch_pidi",
    "depth": "depth_midas",
    "normal_map": "normal_midas",
    "hed": "softedge_hed",
    "hed_safe": "softedge_hedsafe",
    "pidinet": "softedge_pidinet",
    "pidinet_safe": "softedge_pidisafe",
    "segmentation": "seg_ufade20k",
    "oneformer_coco": "seg_ofcoco",
    "oneformer_ade20k": "seg_ofade20k",
    "pidinet_scribble": "scribble_pidinet",
    "inpaint": "inpaint_global_harmonious",
    "anime_face_segment": "seg_anime_face",
    "densepose": "densepose (pruple bg & purple torso)",  # sic: the extension's spelling is the API name
    "densepose_parula": "densepose_parula (black bg & blue torso)",
    "te_hed": "softedge_teed",
}

# need no ControlNet model (they act on the UNet itself)
MODEL_FREE = frozenset(
    {"reference_only", "reference_adain", "reference_adain+attn", "revision_clipvision", "revision_ignore_prompt"}
)

Run = Callable[[np.ndarray, Params], np.ndarray]


def _identity(image: np.ndarray, _: Params) -> np.ndarray:
    return image


def _inpaint(image: np.ndarray, p: Params) -> np.ndarray:
    # the mask comes with the unit; without one, an RGBA upload's alpha is the mask (as /controlnet/detect takes it)
    if p.mask is None and image.ndim == 3 and image.shape[2] == 4:
        return inpaint_map(to_rgb(image[:, :, :3]), image[:, :, 3])
    return inpaint_map(to_rgb(image), p.mask)


# module -> how it runs on (image, params); inpaint modules get the raw image (its alpha may be the mask)
BUILT_IN: dict[str, Run] = {
    "none": _identity,
    "canny": lambda x, p: canny(x, p.resolution, p.threshold_a, p.threshold_b),
    "color": lambda x, p: color_grid(x, p.resolution),
    "scribble_xdog": lambda x, p: scribble_xdog(x, p.resolution, p.threshold_a),
    "threshold": lambda x, p: threshold(x, p.resolution, p.threshold_a),
    "lineart_standard": lambda x, p: lineart_standard(x, p.resolution),
    "shuffle": lambda x, p: shuffle(x, p.resolution, p.seed),
    "tile_resample": lambda x, p: tile_resample(x, p.threshold_a),
    "invert": lambda x, p: invert(x),
    "reference_only": _identity,
    "reference_adain": _identity,
    "reference_adain+attn": _identity,
    "inpaint": _inpaint,
    "inpaint_only": _inpaint,
    "tile_colorfix": _identity,
    "tile_colorfix+sharp": _identity,
    "recolor_luminance": lambda x, p: recolor_luminance(x, p.threshold_a),
    "recolor_intensity": lambda x, p: recolor_intensity(x, p.threshold_a),
    "blur_gaussian": lambda x, p: blur_gaussian(x, p.resolution, p.threshold_a),
}
_RAW_INPUT = {"inpaint", "inpaint_only"}

# every module in the extension's order (its dict order is the order of /controlnet/module_list)
NAMES = (
    "none canny depth depth_leres depth_leres++ depth_hand_refiner depth_anything hed hed_safe mediapipe_face mlsd "
    "normal_map openpose openpose_hand openpose_face openpose_faceonly openpose_full dw_openpose_full animal_openpose "
    "clip_vision revision_clipvision revision_ignore_prompt ip-adapter_clip_sd15 ip-adapter_clip_sdxl_plus_vith "
    "ip-adapter_clip_sdxl ip-adapter_face_id ip-adapter_face_id_plus instant_id_face_keypoints "
    "instant_id_face_embedding color pidinet pidinet_safe pidinet_sketch pidinet_scribble scribble_xdog scribble_hed "
    "segmentation threshold depth_zoe normal_bae oneformer_coco oneformer_ade20k lineart lineart_coarse lineart_anime "
    "lineart_standard shuffle tile_resample invert lineart_anime_denoise reference_only reference_adain "
    "reference_adain+attn inpaint inpaint_only inpaint_only+lama tile_colorfix tile_colorfix+sharp recolor_luminance "
    "recolor_intensity blur_gaussian anime_face_segment densepose densepose_parula te_hed"
).split()

_BY_LABEL = {ALIASES.get(name, name): name for name in NAMES} | {name: name for name in NAMES}
_BY_LOWER = {label.lower(): name for label, name in _BY_LABEL.items()}


@dataclass(frozen=True)
class Preprocessor:
    name: str  # the extension's internal key (what its infotext writes)
    label: str  # the UI name (alias)
    sliders: tuple[dict | None, ...]
    run: Run | None  # None: an annotator model (annotators.py)

    @property
    def built_in(self) -> bool:
        return self.run is not None


def find(name: str | None) -> Preprocessor:
    """The preprocessor called `name` or its UI alias (None is "none", as the extension takes it)."""
    key = "none" if name is None else _BY_LABEL.get(name) or _BY_LOWER.get(str(name).strip().lower())
    if key is None:
        close = difflib.get_close_matches(str(name), list(_BY_LABEL), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownPreprocessorError(
            f"Unknown ControlNet preprocessor '{name}'.{hint} Use one of: {', '.join(NAMES)} "
            f"(or their UI names, GET /controlnet/module_list?alias_names=true)."
        )
    return Preprocessor(key, ALIASES.get(key, key), tuple(SLIDERS.get(key, [])), BUILT_IN.get(key))


def module_list(alias_names: bool = False) -> dict:
    """GET /controlnet/module_list's answer: the names (or UI aliases) and each one's sliders."""
    labels = [ALIASES.get(name, name) if alias_names else name for name in NAMES]
    detail = {
        label: {"model_free": label in MODEL_FREE and name in SLIDERS, "sliders": list(SLIDERS.get(name, []))}
        for label, name in zip(labels, NAMES, strict=True)
    }
    return {"module_list": labels, "module_detail": detail}


def unavailable(annotator_dir: Path | None, depth_estimator: DepthEstimator | None = None) -> dict[str, str]:
    """name -> why it cannot run here, for every listed module that is not built in and cannot run its annotator
    (with `depth_estimator`, an SD 2 depth checkpoint's MiDaS, the MiDaS modules run without their file)."""
    has_depth_model = depth_estimator is not None
    return {
        name: annotators.refusal(name, ALIASES.get(name, name), annotator_dir).message
        for name in annotators.NAMES
        if not annotators.available(name, annotator_dir, has_depth_model)
    }


# ----------------------------------------------------------------------------------------------------- parameters


def _slider_value(slider: dict | None, value: float | None, fallback: float) -> float:
    """A client's value: negative / missing takes the slider's default (the extension's bound_check_params);
    anything else is kept inside the slider's range (a client may send anything: webuiapi sends 64 for both)."""
    if value is not None and not math.isfinite(float(value)):
        raise InvalidRequestError(f"A ControlNet preprocessor value must be a number, got {value}.")
    if slider is None:
        return fallback if value is None or value < 0 else float(value)
    if value is None or value < 0:
        return float(slider["value"])
    return min(max(float(value), slider["min"]), slider["max"])


def bound_params(
    preprocessor: Preprocessor, resolution: float | None, threshold_a: float | None, threshold_b: float | None
) -> tuple[int, float, float]:
    """(resolution, threshold_a, threshold_b) as the module will use them. The resolution is not held to its
    slider (pixel perfect computes any size); the map it makes is bounded in `run`."""
    sliders = list(preprocessor.sliders) + [None] * (3 - len(preprocessor.sliders))
    res_default = sliders[0]["value"] if sliders[0] else DEFAULT_RESOLUTION
    if resolution is not None and not math.isfinite(float(resolution)):
        raise InvalidRequestError(f"A ControlNet preprocessor resolution must be a number, got {resolution}.")
    res = res_default if resolution is None or resolution <= 0 else int(resolution)
    return res, _slider_value(sliders[1], threshold_a, -1.0), _slider_value(sliders[2], threshold_b, -1.0)


def _check_map_size(name: str, image: np.ndarray, resolution: int) -> None:
    height, width = scaled_size(image.shape[0], image.shape[1], resolution)
    if height * width > MAX_IMAGE_PIXELS:
        raise InvalidRequestError(
            f"ControlNet preprocessor '{name}' at resolution {resolution} would make a {width}x{height} map, more than "
            f"{MAX_IMAGE_PIXELS} pixels: lower the preprocessor resolution (processor_res)."
        )


# the modules that work at the preprocessor resolution (the others keep the image's size)
USES_RESOLUTION = frozenset(
    "canny color scribble_xdog threshold lineart_standard shuffle blur_gaussian depth normal_map".split()
)

# annotator module -> how it runs on (image, params, its network): the MiDaS ones (annotators.RUNNABLE)
ANNOTATOR_RUNS: dict[str, Callable[[np.ndarray, Params, DepthEstimator], np.ndarray]] = {
    "depth": lambda x, p, net: midas_annotator.depth_midas(x, p.resolution, net),
    "normal_map": lambda x, p, net: midas_annotator.normal_midas(x, p.resolution, p.threshold_a, net),
}


def _annotator_run(
    preprocessor: Preprocessor,
    annotator_dir: Path | None,
    depth_estimator: DepthEstimator | None,
    device: torch.device | None,
) -> Run:
    """How an available annotator module (annotators.available) runs, its model loaded."""
    # the MiDaS modules, the ones runnable today: the annotator file first, the SD 2 depth checkpoint's without it
    annotator_file = annotators.find_file(annotators.FILES[preprocessor.name][0], annotator_dir)
    estimator = midas_annotator.estimator_for(annotator_file, depth_estimator, device)
    runner = ANNOTATOR_RUNS[preprocessor.name]
    return lambda x, p: runner(x, p, estimator)


def run(
    name: str | None,
    image: np.ndarray,
    *,
    resolution: float | None = -1,
    threshold_a: float | None = -1,
    threshold_b: float | None = -1,
    mask: np.ndarray | None = None,
    seed: int = 0,
    annotator_dir: Path | None = None,
    depth_estimator: DepthEstimator | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """The map of preprocessor `name` for an HWC uint8 RGB(A) image: HWC uint8, RGB (RGBA for inpaint modules).
    -1 takes a setting's default; `seed` is `shuffle_seed(...)` of the job; `mask` is for the inpaint modules.
    Annotator models load from `annotator_dir` onto `device` (CPU when None) in float32; `depth_estimator` (the
    loaded SD 2 depth checkpoint's MiDaS, where it has one) runs the MiDaS modules when their file is missing."""
    # 1. which module, and can it run here
    preprocessor = find(name)
    if not preprocessor.built_in and not annotators.available(
        preprocessor.name, annotator_dir, has_depth_model=depth_estimator is not None
    ):
        raise annotators.refusal(preprocessor.name, preprocessor.label, annotator_dir)
    # 2. its settings, bounded before any model loads
    res, a, b = bound_params(preprocessor, resolution, threshold_a, threshold_b)
    if preprocessor.name in USES_RESOLUTION:
        _check_map_size(preprocessor.label, image, res)
    # 3. the map
    map_of = preprocessor.run or _annotator_run(preprocessor, annotator_dir, depth_estimator, device)
    pixels = image if preprocessor.name in _RAW_INPUT else to_rgb(image)
    return map_of(pixels, Params(res, a, b, mask, int(seed)))


def pixel_perfect_resolution(
    image_hw: tuple[int, int], target_hw: tuple[int, int], mode: ResizeMode | str | int
) -> int:
    """The preprocessor resolution "pixel perfect" picks: the image's short side scaled by the factor that fills the
    target (Just Resize, Crop and Resize) or fits inside it (Resize and Fill), rounded half to even."""
    fits_inside = resize_mode(mode) is ResizeMode.RESIZE_AND_FILL
    (raw_h, raw_w), (target_h, target_w) = image_hw, target_hw
    scales = (target_h / raw_h, target_w / raw_w)
    k = min(scales) if fits_inside else max(scales)
    return round(k * min(raw_h, raw_w))
