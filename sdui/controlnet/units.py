"""ControlNet units as the sd-webui-controlnet extension's API sends them: `alwayson_scripts["controlnet"]["args"]`
is a list of unit objects with the extension's field names, its old aliases, enum names or numbers, and images as
base64 text. Each is checked, bounded and turned into a frozen `ControlNetUnit`; a mistake is an
InvalidRequestError naming the unit, the field, the value and what is accepted.

Defaults are the extension's: weight 1, guidance 0..1, "Crop and Resize", "Balanced", and -1 for processor_res /
threshold_a / threshold_b, meaning "the preprocessor's own default" (its sliders resolve them:
sdui.controlnet.preprocessors.bound_params). Fields the extension accepts but we do not use (UI-only and batch fields,
ip-adapter inputs, `guessmode`, removed in its 1.1.136) are ignored, as the extension ignores unknown keys.

`enabled` defaults to true: the extension's 1.1.4xx API did so, and the webuiapi client's units (before its 2024
releases) carry no `enabled` at all; a unit with neither a preprocessor nor a model is dropped anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from sdui.controlnet import preprocessors
from sdui.controlnet.modes import ControlMode, HiresOption, NotAChoice, ResizeMode, parse
from sdui.errors import InvalidRequestError
from sdui.imaging.encoding import decode_base64_image

# The extension's "unit count" setting goes up to 10; more units than that is not a request anyone means.
MAX_UNITS = 10
_MAX_NAME = 512
_MAX_LAYER_WEIGHTS = 32  # advanced_weighting: 13 for SD1 ControlNets, 16 at most for any model the extension knows
_NONE_MODULE = "none"
_NONE_MODEL = "None"


@dataclass(frozen=True)
class ControlNetUnit:
    """One unit. `image` is the control image as RGB (alpha composited over white, as the extension does), `mask`
    its mask as "L" (white = masked), both None when not given (img2img then uses its init image)."""

    enabled: bool = True
    module: str = _NONE_MODULE
    model: str = _NONE_MODEL
    weight: float = 1.0
    image: Image.Image | None = None
    mask: Image.Image | None = None
    resize_mode: ResizeMode = ResizeMode.CROP_AND_RESIZE
    low_vram: bool = False
    processor_res: int = -1  # -1: the preprocessor's default
    threshold_a: float = -1.0
    threshold_b: float = -1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: ControlMode = ControlMode.BALANCED
    inpaint_crop_input_image: bool = True  # crop the map with the img2img mask for "Only masked" inpainting
    hr_option: HiresOption = HiresOption.BOTH
    save_detected_map: bool = True
    advanced_weighting: tuple[float, ...] | None = None  # one weight per ControlNet output (13 for SD1)
    effective_region_mask: Image.Image | None = None  # "L": where the unit acts

    @property
    def uses_model(self) -> bool:
        return self.model.lower() != "none"


SCRIPT_TITLE = "ControlNet"  # the extension's script title; A1111 matches alwayson_scripts keys case-insensitively


def units_from_alwayson_scripts(
    alwayson_scripts: Mapping[str, Any] | None, *, max_units: int = MAX_UNITS, max_pixels: int | None = None
) -> list[ControlNetUnit]:
    """The enabled units of a request's `alwayson_scripts` ({"ControlNet": {"args": [unit, ...]}}, any case of the
    title; webuiapi writes "ControlNet"); none when the request has no such entry."""
    entries = [v for k, v in (alwayson_scripts or {}).items() if str(k).lower() == SCRIPT_TITLE.lower()]
    if len(entries) > 1:
        raise InvalidRequestError(
            "ControlNet: alwayson_scripts names ControlNet more than once (in different cases); send it once."
        )
    if not entries or entries[0] is None:
        return []
    if not isinstance(entries[0], Mapping):
        raise InvalidRequestError(
            f"ControlNet: alwayson_scripts' entry is {_shown(entries[0])}; send {{\"args\": [unit, ...]}}."
        )
    return units_from_script_args(entries[0].get("args"), max_units=max_units, max_pixels=max_pixels)


def units_from_script_args(
    args: Any, *, max_units: int = MAX_UNITS, max_pixels: int | None = None
) -> list[ControlNetUnit]:
    """The enabled units of `alwayson_scripts["controlnet"]["args"]`: one unit object per entry (None entries are
    empty slots). Disabled units and units with neither a preprocessor nor a model are dropped, as the extension
    drops them; images over `max_pixels` are refused."""
    if args is None:
        return []
    if not isinstance(args, (list, tuple)):
        raise InvalidRequestError(
            f"ControlNet: args is {_shown(args)}; send a list of unit objects, e.g. "
            '{"controlnet": {"args": [{"module": "canny", "model": "...", "image": "<base64>"}]}}.'
        )
    if len(args) > max_units:
        raise InvalidRequestError(
            f"ControlNet: {len(args)} units sent, at most {max_units} are accepted; send fewer units."
        )
    units = []
    for index, arg in enumerate(args):
        if arg is None:
            continue
        if not isinstance(arg, Mapping):
            raise InvalidRequestError(
                f"ControlNet unit {index}: got {_shown(arg)}; each entry of args is one unit object "
                '({"enabled": true, "module": ..., "model": ..., "image": ...}). The positional argument list of '
                "very old ControlNet versions is not accepted."
            )
        unit = unit_from_dict(arg, index=index, max_pixels=max_pixels)
        if unit is not None:
            units.append(unit)
    return units


def unit_from_dict(
    values: Mapping[str, Any], *, index: int = 0, max_pixels: int | None = None
) -> ControlNetUnit | None:
    """One unit object of the API (None when it is disabled or empty). `index` names the unit in messages."""
    fields = _Fields(values, index)
    # 1. disabled units are dropped before anything else is looked at (their images are never decoded)
    enabled = fields.take("enabled", _to_bool, True)
    if not enabled:
        return None
    module = fields.take("module", _to_name, _NONE_MODULE)
    model = fields.take("model", _to_name, _NONE_MODEL)
    module = module or _NONE_MODULE
    model = model or _NONE_MODEL
    if module.lower() == "none" and model.lower() == "none":
        return None
    if model.lower() == "none" and not _model_free(module):
        raise InvalidRequestError(
            f"ControlNet unit {index}: preprocessor '{module}' is chosen but no model (model is 'None'); choose "
            "a model from /controlnet/model_list, or disable the unit."
        )

    # 2. numbers, bounded as the extension's unit bounds them
    weight = fields.take("weight", _to_number(0.0, 2.0), 1.0)
    guidance_start = fields.take("guidance_start", _to_number(0.0, 1.0), 0.0)
    guidance_end = fields.take("guidance_end", _to_number(0.0, 1.0), 1.0, aliases=("guidance",))
    if guidance_start > guidance_end:
        raise InvalidRequestError(
            f"ControlNet unit {index}: guidance_start {guidance_start} is after guidance_end {guidance_end}; the "
            "start must not be after the end (both are fractions of the steps, 0 to 1)."
        )
    processor_res = int(fields.take("processor_res", _to_slider_value(16384, whole=True), -1))
    threshold_a = fields.take("threshold_a", _to_slider_value(1e6), -1.0)
    threshold_b = fields.take("threshold_b", _to_slider_value(1e6), -1.0)

    # 3. choices given by name, old name or number
    resize_mode = fields.take("resize_mode", partial(parse, ResizeMode), ResizeMode.CROP_AND_RESIZE)
    control_mode = fields.take("control_mode", partial(parse, ControlMode), ControlMode.BALANCED)
    hr_option = fields.take("hr_option", partial(parse, HiresOption), HiresOption.BOTH)

    # 4. images: `image` (old name `input_image`) as base64, {"image", "mask"} or [image, mask]; `mask` (Forge's
    # name `mask_image`) beside it
    image, mask = _images(fields, index, max_pixels)
    region = fields.take("effective_region_mask", lambda v: _decode(v, max_pixels, "L"), None)

    return ControlNetUnit(
        enabled=True,
        module=module,
        model=model,
        weight=weight,
        image=image,
        mask=mask,
        resize_mode=resize_mode,
        low_vram=fields.take("low_vram", _to_bool, False, aliases=("lowvram",)),
        processor_res=processor_res,
        threshold_a=threshold_a,
        threshold_b=threshold_b,
        guidance_start=guidance_start,
        guidance_end=guidance_end,
        pixel_perfect=fields.take("pixel_perfect", _to_bool, False),
        control_mode=control_mode,
        inpaint_crop_input_image=fields.take("inpaint_crop_input_image", _to_bool, True),
        hr_option=hr_option,
        save_detected_map=fields.take("save_detected_map", _to_bool, True),
        advanced_weighting=fields.take("advanced_weighting", _to_weights, None),
        effective_region_mask=region,
    )


def _model_free(module: str) -> bool:
    """Whether the module works without a ControlNet model (reference_*: it acts on the UNet's own attention)."""
    try:
        return preprocessors.find(module).name in preprocessors.MODEL_FREE
    except preprocessors.UnknownPreprocessorError:
        return False


def unit_from_text_fields(values: Mapping[str, Any]) -> ControlNetUnit | None:
    """A unit from field values given as text (an infotext's): enabled, no images, everything else checked as for
    the API (None for an empty unit)."""
    images = dict.fromkeys(("image", "input_image", "mask", "mask_image", "effective_region_mask"))
    return unit_from_dict({**values, "enabled": True, **images})


# ---- reading one field ----------------------------------------------------------------------------------------


class _Fields:
    """The unit object's values by field name or old alias; an error names the key the client used."""

    def __init__(self, values: Mapping[str, Any], index: int):
        self.values = values
        self.index = index

    def key(self, name: str, aliases: Sequence[str] = ()) -> str | None:
        """The key holding `name`: the field's own name wins over an old alias (webuiapi sends both `guidance` and
        `guidance_end`, with the same value)."""
        for key in (name, *aliases):
            if self.values.get(key) is not None:
                return key
        return None

    def take(self, name: str, convert: Callable[[Any], Any], default: Any, aliases: Sequence[str] = ()) -> Any:
        key = self.key(name, aliases)
        if key is None:
            return default
        try:
            return convert(self.values[key])
        except (_Refused, NotAChoice) as e:
            raise InvalidRequestError(
                f"ControlNet unit {self.index}: {key} {_shown(self.values[key])} is not accepted; {e}"
            ) from None
        except InvalidRequestError as e:
            raise InvalidRequestError(f"ControlNet unit {self.index}, {key}: {e.message}") from None


class _Refused(ValueError):
    """A value that cannot be used; its text says what is accepted."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Refused("send true or false.")


def _to_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > _MAX_NAME:
        raise _Refused(f"send a name (text of at most {_MAX_NAME} characters).")
    return value.strip()


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Refused("send a number.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _Refused("send a number.") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Refused("send a finite number.")
    return float(value)


def _to_number(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        number = _to_float(value)
        if not low <= number <= high:
            raise _Refused(f"send a number from {low:g} to {high:g}.")
        return number

    return convert


def _to_slider_value(high: float, whole: bool = False) -> Callable[[Any], float]:
    """A preprocessor setting: any negative value means the preprocessor's default (-1), as for the extension."""

    def convert(value: Any) -> float:
        number = _to_float(value)
        if number < 0:
            return -1.0
        if number > high or (whole and not number.is_integer()):
            kind = "a whole number" if whole else "a number"
            raise _Refused(f"send {kind} from 0 to {high:g}, or -1 for the preprocessor's default.")
        return number

    return convert


def _to_weights(value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= _MAX_LAYER_WEIGHTS:
        raise _Refused(f"send a list of 1 to {_MAX_LAYER_WEIGHTS} numbers (one weight per ControlNet output).")
    return tuple(_to_number(0.0, 2.0)(v) for v in value)


# ---- images ---------------------------------------------------------------------------------------------------


def _images(fields: _Fields, index: int, max_pixels: int | None) -> tuple[Image.Image | None, Image.Image | None]:
    """The control image and its mask from the forms the extension accepts."""
    image_key = fields.key("image", ("input_image",))
    raw_image = fields.values[image_key] if image_key else None
    if fields.key("mask") and fields.key("mask_image"):
        raise InvalidRequestError(
            f"ControlNet unit {index}: both mask and mask_image are given; send the mask once, as mask."
        )
    mask_key = fields.key("mask", ("mask_image",))
    raw_mask = fields.values[mask_key] if mask_key else None

    # 1. a pair, in a dict or a list, carries its own mask (a mask beside it is ignored, as by the extension)
    if isinstance(raw_image, (list, tuple)) and len(raw_image) == 1 and isinstance(raw_image[0], Mapping):
        raw_image = raw_image[0]  # the extension's list of {"image", "mask"} pairs, with one pair
    if isinstance(raw_image, Mapping):
        raw_image, raw_mask, mask_key = raw_image.get("image"), raw_image.get("mask"), f"{image_key}.mask"
        image_key = f"{image_key}.image"
    elif isinstance(raw_image, (list, tuple)):
        if len(raw_image) != 2 or any(isinstance(v, (Mapping, list, tuple)) for v in raw_image):
            raise InvalidRequestError(
                f"ControlNet unit {index}: {image_key} holds {len(raw_image)} entries; send one image (base64), "
                '{"image": <base64>, "mask": <base64>} or [image, mask]. Several images per unit (the '
                "extension's multi-input ip-adapter form) are not supported."
            )
        raw_image, raw_mask, mask_key = raw_image[0], raw_image[1], f"{image_key}[1]"
        image_key = f"{image_key}[0]"

    # 2. decode; an empty string is no image (webuiapi sends "" for a unit without one)
    image = _decode_field(raw_image, image_key, index, max_pixels, "RGB")
    mask = _decode_field(raw_mask, mask_key, index, max_pixels, "L")
    if mask is not None and image is None:
        raise InvalidRequestError(
            f"ControlNet unit {index}: a mask is given without an image; send the image it masks as image."
        )
    if mask is not None and mask.size != image.size:
        raise InvalidRequestError(
            f"ControlNet unit {index}: the mask is {mask.width}x{mask.height} but the image is "
            f"{image.width}x{image.height}; send a mask of the image's size."
        )
    return image, mask


def _decode_field(value: Any, key: str | None, index: int, max_pixels: int | None, mode: str) -> Image.Image | None:
    try:
        return _decode(value, max_pixels, mode)
    except _Refused as e:
        raise InvalidRequestError(f"ControlNet unit {index}: {key} {_shown(value)} is not accepted; {e}") from None
    except InvalidRequestError as e:
        raise InvalidRequestError(f"ControlNet unit {index}, {key}: {e.message}") from None


def _decode(value: Any, max_pixels: int | None, mode: str) -> Image.Image | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _Refused("send the image file as base64 text (a data:image/...;base64, prefix is allowed).")
    image = _to_8bit(decode_base64_image(value, max_pixels))
    return _as_rgb(image) if mode == "RGB" else _first_channel(image)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float images (depth maps are often 16-bit PNGs) scaled to 8 bits rather than clipped."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(values / 257.0, 0, 255).round().astype(np.uint8), "L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8), "L")
    return image


def _as_rgb(image: Image.Image) -> Image.Image:
    """RGB, transparent pixels over white (the extension's HWC3 of an RGBA image)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _first_channel(image: Image.Image) -> Image.Image:
    """The mask: the first colour channel, as the extension reads mask[:, :, 0]."""
    return image.convert("L") if image.mode in ("L", "1", "P") else image.convert("RGB").getchannel("R")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
