"""ControlNet units as the sd-webui-controlnet extension's API clients send them (aliases, names and numbers, image
forms, bounds, the webuiapi client's shapes), and the extension's infotext entries written and read back through our
own parameters-text writer and parser."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from sdui.controlnet.infotext import entry_fields, infotext_params, unit_infotext, units_from_infotext
from sdui.controlnet.modes import ControlMode, HiresOption, ResizeMode
from sdui.controlnet.units import (
    MAX_UNITS,
    ControlNetUnit,
    unit_from_dict,
    units_from_alwayson_scripts,
    units_from_script_args,
)
from sdui.errors import InvalidRequestError
from sdui.infotext import build_infotext, parse_infotext

CANNY = "control_v11p_sd15_canny [d14c016b]"
DEPTH = "control_v11f1p_sd15_depth [cfd03158]"


def png_b64(image: Image.Image, data_url: bool = False) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    text = base64.b64encode(buffer.getvalue()).decode()
    return "data:image/png;base64," + text if data_url else text


def edges(width: int = 12, height: int = 8) -> Image.Image:
    """An RGB map: left half black, right half white, one red pixel at (1, 1)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, width // 2 :] = 255
    pixels[1, 1] = (255, 0, 0)
    return Image.fromarray(pixels, "RGB")


def half_mask(width: int = 12, height: int = 8) -> Image.Image:
    pixels = np.zeros((height, width), np.uint8)
    pixels[height // 2 :] = 255
    return Image.fromarray(pixels, "L")


def one(unit: dict, **kwargs) -> ControlNetUnit:
    units = units_from_script_args([unit], **kwargs)
    assert len(units) == 1
    return units[0]


def refused(unit, **kwargs) -> str:
    with pytest.raises(InvalidRequestError) as info:
        units_from_script_args([unit] if isinstance(unit, dict) else unit, **kwargs)
    assert info.value.status_code == 422
    return info.value.message


# ---- the webuiapi client's request shapes -----------------------------------------------------------------------


def webuiapi_unit_dict(image: Image.Image | None, *, mask=None, control_mode=0, with_enabled=False, **fields) -> dict:
    """What webuiapi's ControlNetUnit(...).to_dict() puts in alwayson_scripts["ControlNet"]["args"]: raw base64
    (no data: prefix) or "" for no image, `lowvram`, `guidance` beside `guidance_end`, its own defaults, and
    control_mode 0 as a one-element tuple ("Balanced",), which JSON sends as a list. Releases from mid-2024 add
    `enabled` and drop `guidance`."""
    names = {1: "My prompt is more important", 2: "ControlNet is more important"}
    body = {
        "input_image": png_b64(image) if image else "",
        "mask": png_b64(mask) if mask is not None else None,
        "module": "none",
        "model": "None",
        "weight": 1.0,
        "resize_mode": "Resize and Fill",
        "lowvram": False,
        "processor_res": 512,
        "threshold_a": 64,
        "threshold_b": 64,
        "guidance": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "control_mode": ["Balanced"] if control_mode == 0 else names.get(control_mode, control_mode),
        "pixel_perfect": False,
        "hr_option": "Both",
    }
    body.update(fields)
    if "guidance_end" in fields:
        body["guidance"] = fields["guidance_end"]
    if with_enabled:
        body["enabled"] = True
        del body["guidance"]
    return body


@pytest.mark.parametrize("with_enabled", [False, True], ids=["webuiapi-2023", "webuiapi-2024"])
def test_webuiapi_units_parse(with_enabled):
    args = [
        webuiapi_unit_dict(edges(), module="canny", model=CANNY, with_enabled=with_enabled),
        webuiapi_unit_dict(
            edges(),
            mask=half_mask(),
            module="none",
            model=DEPTH,
            weight=0.6,
            control_mode=2,
            guidance_start=0.2,
            guidance_end=0.8,
            lowvram=True,
            hr_option="Low res only",
            with_enabled=with_enabled,
        ),
        webuiapi_unit_dict(None, with_enabled=with_enabled),  # an empty unit: no image, module none, model None
    ]
    first, second = units_from_script_args(args)

    assert (first.module, first.model, first.weight, first.control_mode) == ("canny", CANNY, 1.0, ControlMode.BALANCED)
    assert first.resize_mode is ResizeMode.RESIZE_AND_FILL
    assert (first.processor_res, first.threshold_a, first.threshold_b) == (512, 64.0, 64.0)
    assert np.array_equal(np.asarray(first.image), np.asarray(edges()))
    assert first.mask is None

    assert (second.module, second.model, second.weight) == ("none", DEPTH, 0.6)
    assert second.control_mode is ControlMode.CONTROLNET
    assert (second.guidance_start, second.guidance_end, second.low_vram) == (0.2, 0.8, True)
    assert second.hr_option is HiresOption.LOW_RES_ONLY
    assert np.array_equal(np.asarray(second.mask), np.asarray(half_mask()))


def test_the_extensions_own_field_names_and_defaults():
    unit = one({"enabled": True, "module": "canny", "model": CANNY, "image": png_b64(edges())})
    assert unit == ControlNetUnit(module="canny", model=CANNY, image=unit.image)  # every other field the default
    assert (unit.weight, unit.guidance_start, unit.guidance_end) == (1.0, 0.0, 1.0)
    assert (unit.processor_res, unit.threshold_a, unit.threshold_b) == (-1, -1.0, -1.0)
    assert unit.resize_mode is ResizeMode.CROP_AND_RESIZE and unit.control_mode is ControlMode.BALANCED
    assert unit.hr_option is HiresOption.BOTH and unit.save_detected_map and unit.inpaint_crop_input_image

    full = one(
        {
            "enabled": "true",
            "module": "canny",
            "model": CANNY,
            "weight": "1.5",
            "low_vram": 1,
            "processor_res": 768.0,
            "threshold_a": 100,
            "threshold_b": 200,
            "guidance_start": 0.1,
            "guidance_end": 0.9,
            "pixel_perfect": True,
            "inpaint_crop_input_image": False,
            "save_detected_map": "false",
            "advanced_weighting": [1.0] * 12 + [0.5],
            "hr_option": 2,
            # accepted and ignored, as by the extension: UI-only, batch, ip-adapter and unknown fields
            "is_ui": True,
            "input_mode": "simple",
            "batch_images": "",
            "output_dir": "",
            "loopback": False,
            "pulid_mode": "Fidelity",
            "ipadapter_input": None,
            "guessmode": True,
            "some_future_field": {"x": 1},
        }
    )
    assert (full.weight, full.low_vram, full.processor_res, full.pixel_perfect) == (1.5, True, 768, True)
    assert (full.threshold_a, full.threshold_b, full.guidance_start, full.guidance_end) == (100.0, 200.0, 0.1, 0.9)
    assert not full.inpaint_crop_input_image and not full.save_detected_map
    assert full.advanced_weighting == (1.0,) * 12 + (0.5,)
    assert full.hr_option is HiresOption.HIGH_RES_ONLY
    assert full.control_mode is ControlMode.BALANCED  # guessmode (removed in the extension's 1.1.136) is ignored


def test_old_aliases():
    image = edges()
    unit = one({"module": "canny", "model": CANNY, "input_image": png_b64(image), "lowvram": True, "guidance": 0.7})
    assert np.array_equal(np.asarray(unit.image), np.asarray(image))
    assert unit.low_vram and unit.guidance_end == 0.7
    # the field's own name wins over its alias (webuiapi sends both)
    assert one({"module": "canny", "model": CANNY, "guidance": 0.3, "guidance_end": 0.6}).guidance_end == 0.6
    assert one({"module": "canny", "model": CANNY, "lowvram": True, "low_vram": False}).low_vram is False
    # mask_image is SD Forge's name for mask
    forge = one({"module": "inpaint_only", "model": CANNY, "image": png_b64(image), "mask_image": png_b64(half_mask())})
    assert np.array_equal(np.asarray(forge.mask), np.asarray(half_mask()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Just Resize", ResizeMode.JUST_RESIZE),
        ("Crop and Resize", ResizeMode.CROP_AND_RESIZE),
        ("Resize and Fill", ResizeMode.RESIZE_AND_FILL),
        (0, ResizeMode.JUST_RESIZE),
        (1, ResizeMode.CROP_AND_RESIZE),
        (2, ResizeMode.RESIZE_AND_FILL),
        (3, ResizeMode.JUST_RESIZE),  # A1111's "Just resize (latent upscale)"
        (7, ResizeMode.JUST_RESIZE),  # numbers past the list: Just Resize, as the extension falls back
        ("1", ResizeMode.CROP_AND_RESIZE),
        ("Scale to Fit (Inner Fit)", ResizeMode.CROP_AND_RESIZE),
        ("Inner Fit (Scale to Fit)", ResizeMode.CROP_AND_RESIZE),
        ("Envelope (Outer Fit)", ResizeMode.RESIZE_AND_FILL),
        ("Outer Fit (Shrink to Fit)", ResizeMode.RESIZE_AND_FILL),
        ("crop and resize", ResizeMode.CROP_AND_RESIZE),  # A1111's img2img spelling
        ("Just resize (latent upscale)", ResizeMode.JUST_RESIZE),
    ],
)
def test_resize_mode_names_and_numbers(value, expected):
    assert one({"module": "canny", "model": CANNY, "resize_mode": value}).resize_mode is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Balanced", ControlMode.BALANCED),
        ("My prompt is more important", ControlMode.PROMPT),
        ("ControlNet is more important", ControlMode.CONTROLNET),
        (0, ControlMode.BALANCED),
        (1, ControlMode.PROMPT),
        (2, ControlMode.CONTROLNET),
        ("2", ControlMode.CONTROLNET),
        (["Balanced"], ControlMode.BALANCED),  # webuiapi's ("Balanced",)
    ],
)
def test_control_mode_names_and_numbers(value, expected):
    assert one({"module": "canny", "model": CANNY, "control_mode": value}).control_mode is expected


def test_image_forms():
    image, mask = edges(), half_mask()
    expected_image, expected_mask = np.asarray(image), np.asarray(mask)
    forms = {
        "raw base64": {"image": png_b64(image), "mask": png_b64(mask)},
        "data: prefix": {"image": png_b64(image, data_url=True), "mask": png_b64(mask, data_url=True)},
        "dict": {"image": {"image": png_b64(image), "mask": png_b64(mask)}},
        "dict in a list": {"image": [{"image": png_b64(image), "mask": png_b64(mask)}]},
        "[image, mask]": {"image": [png_b64(image), png_b64(mask)]},
        "input_image + mask_image": {"input_image": png_b64(image, data_url=True), "mask_image": png_b64(mask)},
    }
    for name, fields in forms.items():
        unit = one({"module": "canny", "model": CANNY, **fields})
        assert unit.image.mode == "RGB" and np.array_equal(np.asarray(unit.image), expected_image), name
        assert unit.mask.mode == "L" and np.array_equal(np.asarray(unit.mask), expected_mask), name

    # no image: None, "" and a dict without one; img2img then uses its init image
    for value in (None, "", {"image": "", "mask": None}):
        assert one({"module": "canny", "model": CANNY, "image": value}).image is None
    # a dict's own mask wins over one beside it, as in the extension
    both = one({"module": "canny", "model": CANNY, "image": {"image": png_b64(image)}, "mask": png_b64(mask)})
    assert both.mask is None


def test_image_modes_are_normalised():
    # transparent pixels become white, as the extension's HWC3 composites them
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    unit = one({"module": "canny", "model": CANNY, "image": png_b64(rgba)})
    assert unit.image.getpixel((0, 0)) == (10, 20, 30) and unit.image.getpixel((1, 1)) == (255, 255, 255)
    # a grey map is repeated in three channels; a 16-bit depth map is scaled to 8 bits, not clipped to white
    grey = one({"module": "none", "model": DEPTH, "image": png_b64(Image.new("L", (4, 4), 77))}).image
    assert grey.mode == "RGB" and grey.getpixel((2, 2)) == (77, 77, 77)
    depth16 = Image.fromarray(np.array([[0, 32896, 65535, 65535]], np.uint16).repeat(4, 0))
    assert depth16.mode.startswith("I;16")
    depth = one({"module": "none", "model": DEPTH, "image": png_b64(depth16)}).image
    assert [depth.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 255]
    # a colour mask: its first channel, as the extension reads mask[:, :, 0]
    red = Image.new("RGB", (4, 4), (200, 0, 0))
    mask = one({"module": "canny", "model": CANNY, "image": png_b64(red), "mask": png_b64(red)}).mask
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 200


def test_disabled_and_empty_units_are_dropped():
    image = png_b64(edges())
    args = [
        {"enabled": False, "module": "canny", "model": CANNY, "image": image},
        {"enabled": True, "module": "none", "model": "None", "image": image},
        {"module": "none", "model": "None"},
        {"enabled": True, "module": "canny", "model": CANNY, "image": image, "weight": 0.5},
        None,  # an empty slot
        {"enabled": "false", "module": "canny", "model": CANNY, "image": "not even base64 !!!", "weight": 99},
        {"enabled": True, "module": None, "model": None},
    ]
    (unit,) = units_from_script_args(args)
    assert unit.weight == 0.5
    assert units_from_script_args([]) == [] and units_from_script_args(None) == []
    assert unit_from_dict({"enabled": 0, "module": "canny", "model": CANNY}) is None


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        (
            {"module": "canny", "model": CANNY, "weight": 2.5},
            "ControlNet unit 0: weight 2.5 is not accepted; send a number from 0 to 2.",
        ),
        (
            {"module": "canny", "model": CANNY, "weight": "heavy"},
            "ControlNet unit 0: weight 'heavy' is not accepted; send a number.",
        ),
        (
            {"module": "canny", "model": CANNY, "weight": float("nan")},
            "ControlNet unit 0: weight nan is not accepted; send a finite number.",
        ),
        (
            {"module": "canny", "model": CANNY, "guidance_end": 1.5},
            "ControlNet unit 0: guidance_end 1.5 is not accepted; send a number from 0 to 1.",
        ),
        (
            {"module": "canny", "model": CANNY, "guidance": -0.5},
            "ControlNet unit 0: guidance -0.5 is not accepted; send a number from 0 to 1.",
        ),
        (
            {"module": "canny", "model": CANNY, "guidance_start": 0.8, "guidance_end": 0.2},
            "ControlNet unit 0: guidance_start 0.8 is after guidance_end 0.2; the start must not be after the end "
            "(both are fractions of the steps, 0 to 1).",
        ),
        (
            {"module": "canny", "model": CANNY, "resize_mode": "Stretch"},
            "ControlNet unit 0: resize_mode 'Stretch' is not accepted; send one of 'Just Resize' (0), "
            "'Crop and Resize' (1), 'Resize and Fill' (2) or an old name: 'Inner Fit (Scale to Fit)', "
            "'Scale to Fit (Inner Fit)', 'Outer Fit (Shrink to Fit)', 'Envelope (Outer Fit)', "
            "'Just resize (latent upscale)'.",
        ),
        (
            {"module": "canny", "model": CANNY, "resize_mode": -1},
            "ControlNet unit 0: resize_mode -1 is not accepted; send one of 'Just Resize' (0)",
        ),
        (
            {"module": "canny", "model": CANNY, "control_mode": 3},
            "ControlNet unit 0: control_mode 3 is not accepted; send one of 'Balanced' (0), "
            "'My prompt is more important' (1), 'ControlNet is more important' (2).",
        ),
        (
            {"module": "canny", "model": CANNY, "control_mode": True},
            "ControlNet unit 0: control_mode True is not accepted; send one of 'Balanced' (0)",
        ),
        (
            {"module": "canny", "model": CANNY, "hr_option": "Sometimes"},
            "ControlNet unit 0: hr_option 'Sometimes' is not accepted; send one of 'Both' (0), 'Low res only' (1), "
            "'High res only' (2).",
        ),
        (
            {"module": "canny", "model": CANNY, "pixel_perfect": "maybe"},
            "ControlNet unit 0: pixel_perfect 'maybe' is not accepted; send true or false.",
        ),
        (
            {"enabled": "sure", "module": "canny", "model": CANNY},
            "ControlNet unit 0: enabled 'sure' is not accepted; send true or false.",
        ),
        (
            {"module": "canny", "model": CANNY, "processor_res": 512.5},
            "ControlNet unit 0: processor_res 512.5 is not accepted; send a whole number from 0 to 16384, or -1 for "
            "the preprocessor's default.",
        ),
        (
            {"module": "canny", "model": CANNY, "processor_res": 100000},
            "ControlNet unit 0: processor_res 100000 is not accepted; send a whole number from 0 to 16384",
        ),
        (
            {"module": "canny", "model": 42},
            "ControlNet unit 0: model 42 is not accepted; send a name (text of at most 512 characters).",
        ),
        (
            {"module": "canny", "model": "None"},
            "ControlNet unit 0: preprocessor 'canny' is chosen but no model (model is 'None'); choose a model from "
            "/controlnet/model_list, or disable the unit.",
        ),
        (
            {"module": "canny", "model": CANNY, "advanced_weighting": [1.0, 3.0]},
            "ControlNet unit 0: advanced_weighting [1.0, 3.0] is not accepted; send a number from 0 to 2.",
        ),
        (
            {"module": "canny", "model": CANNY, "advanced_weighting": []},
            "ControlNet unit 0: advanced_weighting [] is not accepted; send a list of 1 to 32 numbers",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_bad_values_name_the_field_the_value_and_what_is_accepted(unit, message):
    assert refused(unit).startswith(message)


def test_bad_images_are_refused_with_the_unit_and_field():
    image, mask = png_b64(edges()), png_b64(half_mask(6, 6))
    cases = {
        "ControlNet unit 1, input_image: Invalid encoded image: ": [
            None,
            {"module": "canny", "model": CANNY, "input_image": "bm90IGFuIGltYWdl"},
        ],
        "ControlNet unit 0: the mask is 6x6 but the image is 12x8; send a mask of the image's size.": {
            "module": "canny",
            "model": CANNY,
            "image": image,
            "mask": mask,
        },
        "ControlNet unit 0: both mask and mask_image are given; send the mask once, as mask.": {
            "module": "canny",
            "model": CANNY,
            "image": image,
            "mask": mask,
            "mask_image": mask,
        },
        "ControlNet unit 0: a mask is given without an image; send the image it masks as image.": {
            "module": "canny",
            "model": CANNY,
            "mask": mask,
        },
        "ControlNet unit 0: image holds 3 entries; send one image (base64)": {
            "module": "canny",
            "model": CANNY,
            "image": [image, image, image],
        },
        "ControlNet unit 0: image holds 2 entries; send one image (base64), {\"image\": <base64>, \"mask\": "
        '<base64>} or [image, mask]. Several images per unit': {
            "module": "ip-adapter_clip_sd15",
            "model": CANNY,
            "image": [{"image": image}, {"image": image}],
        },
        "ControlNet unit 0: image.image 7 is not accepted; send the image file as base64 text": {
            "module": "canny",
            "model": CANNY,
            "image": {"image": 7},
        },
        "ControlNet unit 0, image: Invalid encoded image: URLs are not fetched.": {
            "module": "canny",
            "model": CANNY,
            "image": "https://example.com/x.png",
        },
    }
    for message, unit in cases.items():
        assert refused(unit).startswith(message), message


def test_image_size_limit_applies():
    big = png_b64(Image.new("RGB", (40, 30)))
    message = refused({"module": "canny", "model": CANNY, "image": big}, max_pixels=1000)
    assert message == (
        "ControlNet unit 0, image: The image is 40x30, larger than the configured limit of 1000 pixels "
        "(setting max_image_pixels); scale it down first."
    )
    assert one({"module": "canny", "model": CANNY, "image": big}, max_pixels=1200).image.size == (40, 30)


def test_the_args_list_is_bounded_and_positional_args_are_refused():
    unit = {"module": "canny", "model": CANNY}
    assert len(units_from_script_args([unit] * MAX_UNITS)) == MAX_UNITS
    assert refused([unit] * (MAX_UNITS + 1)) == (
        f"ControlNet: {MAX_UNITS + 1} units sent, at most {MAX_UNITS} are accepted; send fewer units."
    )
    assert refused([unit] * 3, max_units=2) == "ControlNet: 3 units sent, at most 2 are accepted; send fewer units."
    # the positional list of ControlNet's first versions: [enabled, module, model, weight, image, ...]
    assert refused([True, "canny", CANNY, 1.0]).startswith(
        "ControlNet unit 0: got True; each entry of args is one unit object"
    )
    assert refused("canny").startswith("ControlNet: args is 'canny'; send a list of unit")


def test_units_from_a_requests_alwayson_scripts():
    unit = {"module": "canny", "model": CANNY, "weight": 0.5}
    # webuiapi's key is "ControlNet"; A1111 matches always-on script titles in any case
    for key in ("ControlNet", "controlnet", "CONTROLNET"):
        (got,) = units_from_alwayson_scripts({"Other script": {"args": [1, 2]}, key: {"args": [unit]}})
        assert got.weight == 0.5
    assert units_from_alwayson_scripts({"ControlNet": {"args": []}}) == []  # webuiapi's "no units"
    assert units_from_alwayson_scripts({"ControlNet": {}}) == units_from_alwayson_scripts({}) == []
    assert units_from_alwayson_scripts(None) == []
    with pytest.raises(InvalidRequestError, match=r"^ControlNet: alwayson_scripts' entry is \[\{'module'"):
        units_from_alwayson_scripts({"controlnet": [unit]})
    with pytest.raises(InvalidRequestError, match="names ControlNet more than once"):
        units_from_alwayson_scripts({"controlnet": {"args": [unit]}, "ControlNet": {"args": []}})
    with pytest.raises(InvalidRequestError, match="^ControlNet: 3 units sent, at most 2"):
        units_from_alwayson_scripts({"controlnet": {"args": [unit] * 3}}, max_units=2)


def test_negative_slider_values_mean_the_preprocessor_default():
    unit = one({"module": "canny", "model": CANNY, "processor_res": -5, "threshold_a": -1, "threshold_b": -0.5})
    assert (unit.processor_res, unit.threshold_a, unit.threshold_b) == (-1, -1.0, -1.0)


# ---- infotext -------------------------------------------------------------------------------------------------


def canny_unit(**fields) -> ControlNetUnit:
    values = {"module": "canny", "model": CANNY, "processor_res": 512, "threshold_a": 100, "threshold_b": 200}
    return one({**values, **fields})


CANNY_ENTRY = (
    "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, "
    "Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, "
    "Pixel Perfect: False, Control Mode: Balanced"
)
DEPTH_ENTRY = (
    "Module: none, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 0.55, Resize Mode: Just Resize, "
    "Guidance Start: 0.1, Guidance End: 0.75, Pixel Perfect: True, Control Mode: ControlNet is more important, "
    "Hr Option: Low res only"
)


def depth_unit() -> ControlNetUnit:
    return one(
        {
            "module": "none",
            "model": DEPTH,
            "weight": 0.55,
            "resize_mode": 0,
            "guidance_start": 0.1,
            "guidance_end": 0.75,
            "pixel_perfect": True,
            "control_mode": 2,
            "hr_option": "Low res only",
            "image": png_b64(edges()),
        }
    )


def test_infotext_entry_of_one_unit():
    assert unit_infotext(canny_unit()) == CANNY_ENTRY
    assert infotext_params([canny_unit()]) == {"ControlNet 0": CANNY_ENTRY}
    line = build_infotext("a house", "", {"Steps": 20, **infotext_params([canny_unit()])})
    assert line == f'a house\nSteps: 20, ControlNet 0: "{CANNY_ENTRY}"'


def test_infotext_entries_of_two_units():
    # thresholds still at -1 (the preprocessor has none) are left out; Hr Option only when it is not "Both"
    assert infotext_params([canny_unit(), depth_unit()]) == {"ControlNet 0": CANNY_ENTRY, "ControlNet 1": DEPTH_ENTRY}
    # a value that would break the entry's grammar: the entry is left out, as the extension leaves it empty
    assert unit_infotext(canny_unit(model="weird, name")) is None
    assert infotext_params([canny_unit(model="a: b"), depth_unit()]) == {"ControlNet 1": DEPTH_ENTRY}


def test_parameters_text_round_trip_through_our_parser():
    units = [canny_unit(pixel_perfect=True, weight=1.25), depth_unit()]
    params = {
        "Steps": 20,
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": 7,
        "Seed": 1234,
        "Size": "512x768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        **infotext_params(units),
        "Version": "v1.10.1",
    }
    text = build_infotext("a (red:1.2) house, blue sky", "blurry, lowres", params)
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a (red:1.2) house, blue sky" and parsed["Seed"] == "1234"
    assert parsed["ControlNet 0"] == unit_infotext(units[0])

    restored = units_from_infotext(parsed)
    images_left_out = [
        ControlNetUnit(**{**unit.__dict__, "image": None, "mask": None}) for unit in units
    ]  # the infotext carries no images
    assert restored == dict(enumerate(images_left_out))
    assert restored[1].hr_option is HiresOption.LOW_RES_ONLY and restored[1].threshold_a == -1.0


def test_entries_of_the_extensions_releases_are_read():
    text = (
        "a house\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
        # 1.1.4xx: every field but the excluded ones, -1 left out, integers as given
        'ControlNet 0: "Module: openpose_full, Model: control_v11p_sd15_openpose [cab727d4], Weight: 1, '
        "Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Guidance Start: 0, Guidance End: 1, "
        'Pixel Perfect: False, Control Mode: Balanced, Hr Option: High res only, Save Detected Map: True", '
        # before 1.1.4: the legacy form
        'ControlNet 1: "preprocessor: canny, model: control_sd15_canny [fef5e48e], weight: 0.8, '
        "starting/ending: (0.1, 0.9), resize mode: ResizeMode.INNER_FIT, pixel perfect: True, control mode: "
        'ControlMode.PROMPT, preprocessor params: (512, 100, 200)", '
        "Version: v1.6.0"
    )
    units = units_from_infotext(parse_infotext(text))
    pose, canny = units[0], units[1]
    assert (pose.module, pose.model, pose.weight, pose.processor_res) == (
        "openpose_full",
        "control_v11p_sd15_openpose [cab727d4]",
        1.0,
        512,
    )
    assert pose.hr_option is HiresOption.HIGH_RES_ONLY and pose.threshold_a == -1.0
    assert (canny.module, canny.weight, canny.guidance_start, canny.guidance_end) == ("canny", 0.8, 0.1, 0.9)
    assert canny.resize_mode is ResizeMode.CROP_AND_RESIZE and canny.control_mode is ControlMode.PROMPT
    assert (canny.processor_res, canny.threshold_a, canny.threshold_b, canny.pixel_perfect) == (512, 100.0, 200.0, True)


def test_a_single_legacy_unit_without_a_number_is_unit_0():
    # extension versions before 1.1.4 wrote "ControlNet" alone when the UI had a single unit
    text = (
        "a cat\nSteps: 20, Seed: 1, "
        'ControlNet: "preprocessor: none, model: control_sd15_depth [fef5e48e], weight: 1, starting/ending: (0, 1), '
        'resize mode: Crop and Resize, pixel perfect: False, control mode: Balanced, preprocessor params: (-1, -1, -1)"'
    )
    assert units_from_infotext(parse_infotext(text)) == {
        0: ControlNetUnit(module="none", model="control_sd15_depth [fef5e48e]")
    }


def test_unreadable_entries_are_skipped_not_fatal(caplog):
    params = {
        "ControlNet 0": CANNY_ENTRY,
        "ControlNet 1": "Module: canny, Model: x [1], Weight: 7.5",  # out of bounds
        "ControlNet 2": "this is not a unit",
        "ControlNet 3": "Module: none, Model: None",  # an empty unit
        "ControlNet extra": "Module: canny, Model: x",  # not a unit key
        "Steps": "20",
    }
    assert units_from_infotext(params) == {0: canny_unit()}
    assert "cannot read the infotext entry ControlNet 1" in caplog.text
    assert "cannot read the infotext entry ControlNet 2" in caplog.text


def test_entry_fields_map_display_names_to_unit_fields():
    assert entry_fields("Module: canny, Low Vram: True, Save Detected Map: False") == {
        "module": "canny",
        "low_vram": "True",
        "save_detected_map": "False",
    }
    with pytest.raises(ValueError, match="'Weight 1' is not 'Key: value'"):
        entry_fields("Module: canny, Weight 1")
