"""Hires-fix upscaling: latent modes, pixel upscalers and target-size arithmetic, against A1111 v1.10.1 behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.upscalers import upscaling

LANCZOS = Image.Resampling.LANCZOS

# written out here on purpose (not imported): A1111's latent_upscale_modes
EXPECTED_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def _random_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = 3 if mode == "RGB" else 1
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels if channels == 3 else pixels[..., 0], mode)


# ------------------------------------------------------------------------------------------------ latent modes
def test_latent_mode_names_in_a1111_order():
    assert list(upscaling.LATENT_UPSCALE_MODES) == list(EXPECTED_MODES)


@pytest.mark.parametrize("name", list(EXPECTED_MODES))
def test_latent_upscale_matches_interpolate_settings(name):
    mode, antialias = EXPECTED_MODES[name]
    latents = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(1))
    out = upscaling.upscale_latent(latents, name, 13, 20)
    assert out.shape == (2, 4, 13, 20) and out.dtype == torch.float32
    expected = F.interpolate(latents, size=(13, 20), mode=mode, antialias=antialias)
    assert torch.equal(out, expected)


def test_latent_modes_give_different_results():
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    outs = {name: upscaling.upscale_latent(latents, name, 12, 12) for name in EXPECTED_MODES}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.equal(outs[a], outs[b]), (a, b)


@pytest.mark.parametrize("name", ["Latent (antialiased)", "Latent (bicubic antialiased)", "Latent"])
def test_latent_upscale_half_precision_keeps_dtype(name):
    # torch has no half-precision CPU kernel for antialiased interpolation; we must still work and return fp16
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)).half()
    out = upscaling.upscale_latent(latents, name, 16, 16)
    assert out.dtype == torch.float16 and out.shape == (1, 4, 16, 16)
    mode, antialias = EXPECTED_MODES[name]
    expected = F.interpolate(latents.float(), size=(16, 16), mode=mode, antialias=antialias).half()
    assert torch.equal(out, expected)


def test_unknown_latent_mode_is_a_request_error():
    with pytest.raises(InvalidRequestError, match=r"Latent \(bicubic\)"):
        upscaling.upscale_latent(torch.zeros(1, 4, 8, 8), "Latent (bogus)", 16, 16)


# ------------------------------------------------------------------------------------------------ pixel upscalers
def test_upscalers_list_has_a1111_api_shape():
    assert upscaling.UPSCALERS == [
        {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
        {"name": "Lanczos", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
        {"name": "Nearest", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
    ]


@pytest.mark.parametrize("name", ["None", "Lanczos", "Nearest"])
@pytest.mark.parametrize(
    "source,target",
    [((32, 32), (64, 64)), ((40, 24), (60, 36)), ((32, 48), (77, 101)), ((64, 64), (32, 48)), ((30, 20), (64, 64))],
)
def test_pixel_upscalers_hit_the_exact_target_size(name, source, target):
    out = upscaling.upscale_image(_random_image(*source), name, *target)
    assert out.size == target and out.mode == "RGB"


def test_nearest_duplicates_pixels_exactly():
    image = _random_image(16, 12, seed=4)
    out = upscaling.upscale_image(image, "Nearest", 32, 24)
    expected = np.repeat(np.repeat(np.array(image), 2, axis=0), 2, axis=1)
    assert np.array_equal(np.array(out), expected)


def test_none_is_one_lanczos_resize():
    image = _random_image(40, 40, seed=5)
    out = upscaling.upscale_image(image, "None", 60, 60)
    assert np.array_equal(np.array(out), np.array(image.resize((60, 60), LANCZOS)))


def test_lanczos_follows_a1111_chain_to_multiple_of_8_then_target():
    # 40 -> x1.5 = 60: the upscaler step makes 60x60, A1111 then lands on 56x56 (multiple of 8), then on the target
    image = _random_image(40, 40, seed=6)
    chain = image.resize((60, 60), LANCZOS).resize((56, 56), LANCZOS).resize((60, 60), LANCZOS)
    out = upscaling.upscale_image(image, "Lanczos", 60, 60)
    assert np.array_equal(np.array(out), np.array(chain))
    assert not np.array_equal(np.array(out), np.array(image.resize((60, 60), LANCZOS)))


def test_nearest_non_integer_scale_follows_a1111_chain():
    image = _random_image(40, 40, seed=7)
    chain = image.resize((60, 60), Image.Resampling.NEAREST).resize((56, 56), LANCZOS).resize((60, 60), LANCZOS)
    out = upscaling.upscale_image(image, "Nearest", 60, 60)
    assert np.array_equal(np.array(out), np.array(chain))


def test_aspect_change_scales_by_the_larger_factor():
    # 32x32 -> 64x48: scale = max(2, 1.5) = 2 -> Nearest 64x64 (already a multiple of 8), then Lanczos to 64x48
    image = _random_image(32, 32, seed=8)
    chain = image.resize((64, 64), Image.Resampling.NEAREST).resize((64, 48), LANCZOS)
    assert np.array_equal(np.array(upscaling.upscale_image(image, "Nearest", 64, 48)), np.array(chain))


def test_downscale_and_greyscale_skip_the_upscaler():
    image = _random_image(64, 64, seed=9)
    assert np.array_equal(
        np.array(upscaling.upscale_image(image, "Nearest", 32, 32)), np.array(image.resize((32, 32), LANCZOS))
    )
    grey = _random_image(16, 16, seed=10, mode="L")
    assert np.array_equal(
        np.array(upscaling.upscale_image(grey, "Nearest", 32, 32)), np.array(grey.resize((32, 32), LANCZOS))
    )


def test_unknown_pixel_upscaler_lists_valid_names():
    with pytest.raises(InvalidRequestError) as info:
        upscaling.upscale_image(_random_image(8, 8), "R-ESRGAN 4x+", 16, 16)
    assert "R-ESRGAN 4x+" in info.value.message and "None, Lanczos, Nearest" in info.value.message


def test_resolve_hr_upscaler():
    assert upscaling.resolve_hr_upscaler(None) == "Latent"
    assert upscaling.resolve_hr_upscaler("Latent (nearest-exact)") == "Latent (nearest-exact)"
    assert upscaling.resolve_hr_upscaler("Lanczos") == "Lanczos"
    assert upscaling.is_latent_upscaler(None) and upscaling.is_latent_upscaler("Latent (bicubic)")
    assert not upscaling.is_latent_upscaler("Nearest")
    with pytest.raises(InvalidRequestError) as info:
        upscaling.resolve_hr_upscaler("4x-UltraSharp")
    message = info.value.message
    assert "4x-UltraSharp" in message and "Latent (bicubic antialiased)" in message and "Nearest" in message


# ------------------------------------------------------------------------------------------------ hires sizes
@pytest.mark.parametrize(
    "args,expected,image_size",
    [
        ((512, 512, 2.0, 0, 0), (1024, 1024, 0, 0), (1024, 1024)),
        ((512, 768, 1.5, 0, 0), (768, 1152, 0, 0), (768, 1152)),
        ((512, 512, 1.3, 0, 0), (665, 665, 0, 0), (664, 664)),  # int() truncates, the latent grid floors
        ((520, 512, 1.1, 0, 0), (572, 563, 0, 0), (568, 560)),
        ((512, 768, 2.0, 1024, 0), (1024, 1536, 0, 0), (1024, 1536)),  # width given: height keeps the aspect
        ((768, 512, 2.0, 0, 768), (1152, 768, 0, 0), (1152, 768)),  # height given: width keeps the aspect
        ((512, 512, 2.0, 1000, 0), (1000, 1000, 0, 0), (1000, 1000)),
        ((512, 768, 2.0, 1024, 1024), (1024, 1536, 0, 64), (1024, 1024)),  # cover, crop 64 latent rows
        ((768, 512, 2.0, 1024, 1024), (1536, 1024, 64, 0), (1024, 1024)),  # cover, crop 64 latent columns
        ((512, 768, 2.0, 1000, 1000), (1000, 1500, 0, 62), (1000, 1000)),
        ((640, 512, 2.0, 1024, 768), (1024, 819, 0, 6), (1024, 768)),
        ((512, 512, 2.0, 768, 768), (768, 768, 0, 0), (768, 768)),  # same aspect: nothing to crop
    ],
)
def test_hires_target_size_table(args, expected, image_size):
    result = upscaling.hires_target_size(*args)
    assert result == expected
    assert upscaling.hires_image_size(*result) == image_size


def test_hires_target_size_ignores_scale_when_resize_given():
    assert upscaling.hires_target_size(512, 512, 0, 1024, 0) == (1024, 1024, 0, 0)


@pytest.mark.parametrize(
    "args,fragment",
    [
        ((512, 512, 0, 0, 0), "hr_scale"),
        ((512, 512, -1.0, 0, 0), "hr_scale"),
        ((512, 512, 2.0, -8, 0), "hr_resize"),
        ((512, 512, 0.01, 0, 0), "smaller than 8x8"),
    ],
)
def test_hires_target_size_rejects_impossible_sizes(args, fragment):
    with pytest.raises(InvalidRequestError, match=fragment):
        upscaling.hires_target_size(*args)


def test_crop_latent_takes_half_from_each_side_odd_cell_from_the_end():
    latents = torch.arange(10 * 12, dtype=torch.float32).reshape(1, 1, 10, 12)
    out = upscaling.crop_latent(latents, truncate_x=3, truncate_y=2)
    assert out.shape == (1, 1, 8, 9)
    assert torch.equal(out, latents[..., 1:9, 1:10])
    assert torch.equal(upscaling.crop_latent(latents, 0, 0), latents)


def test_latent_path_end_to_end_size():
    # 512x768 first pass -> cover 1024x1024: latent 64x96 -> 192x128 (hxw) -> crop 64 rows -> 128x128 = 1024x1024
    target_w, target_h, tx, ty = upscaling.hires_target_size(512, 768, 2.0, 1024, 1024)
    latents = torch.randn(1, 4, 96, 64)
    up = upscaling.upscale_latent(latents, "Latent", target_h // 8, target_w // 8)
    cropped = upscaling.crop_latent(up, tx, ty)
    assert tuple(cropped.shape[-2:]) == (128, 128)
    assert (cropped.shape[-1] * 8, cropped.shape[-2] * 8) == upscaling.hires_image_size(target_w, target_h, tx, ty)


def test_hires_steps():
    assert upscaling.hires_steps(20, 0) == 20
    assert upscaling.hires_steps(20, 7) == 7
