"""Masks: reading (alpha / black-and-white), resize, invert, A1111's blur, "only masked" region, fill, paste back,
outpaint canvas, latent mask. Pixel assertions throughout; the blur is checked against a reference written here."""

import math

import numpy as np
import pytest
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.imaging import masking
from sdui.imaging.image_ops import resize_image
from sdui.imaging.masking import (
    composite,
    crop_region,
    crop_to_region,
    expand_to_aspect,
    fill_masked,
    latent_mask,
    mask_to_tensor,
    outpaint_canvas,
    overlay_mask,
    prepare_mask,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def arr(image):
    return np.asarray(image).astype(int)


def noise_image(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def square_mask(w, h, box, value=255):
    mask = Image.new("L", (w, h), 0)
    mask.paste(value, box)
    return mask


# ----------------------------------------------------------------------------------------------- reading the mask


def test_rgba_mask_uses_alpha_and_rounds_it():
    rgba = np.zeros((4, 4, 4), np.uint8)  # black colour everywhere: only alpha can carry the mask
    rgba[0, 0, 3] = 255
    rgba[0, 1, 3] = 200
    rgba[0, 2, 3] = 100
    image = Image.fromarray(rgba, "RGBA")
    rounded = arr(prepare_mask(image, blur_x=0, blur_y=0, round=True).mask)
    assert list(rounded[0, :4]) == [255, 255, 0, 0] and rounded[1:].max() == 0
    raw = arr(prepare_mask(image, blur_x=0, blur_y=0, round=False).mask)
    assert list(raw[0, :4]) == [255, 200, 100, 0]


def test_opaque_rgba_and_rgb_masks_use_brightness():
    rgb = Image.new("RGB", (6, 6), "black")
    rgb.paste((255, 255, 255), (2, 2, 4, 4))
    expected = np.zeros((6, 6), int)
    expected[2:4, 2:4] = 255
    for mask in (rgb, rgb.convert("RGBA"), rgb.convert("L")):
        prepared = prepare_mask(mask, blur_x=0, blur_y=0)
        assert prepared.mask.mode == "L" and prepared.note is None
        assert np.array_equal(arr(prepared.mask), expected)
    # A1111 1.10: mask_round binarises only alpha masks; a grey brightness mask stays grey
    assert arr(prepare_mask(Image.new("L", (2, 2), 100), blur_x=0, blur_y=0, round=True).mask).max() == 100


def test_invert_swaps_masked_and_kept():
    mask = square_mask(6, 6, (0, 0, 3, 6))
    out = arr(prepare_mask(mask, invert=True, blur_x=0, blur_y=0).mask)
    assert (out[:, :3] == 0).all() and (out[:, 3:] == 255).all()


def test_a_mask_of_another_size_is_resized_and_noted():
    mask = square_mask(16, 16, (0, 0, 8, 16))  # left half
    prepared = prepare_mask(mask, blur_x=0, blur_y=0, size=(32, 24))
    assert prepared.mask.size == (32, 24)
    assert "resized" in prepared.note and "16x16" in prepared.note and "32x24" in prepared.note
    out = arr(prepared.mask)
    assert (out[:, :14] == 255).all() and (out[:, 18:] == 0).all()
    assert prepare_mask(mask, blur_x=0, blur_y=0, size=(16, 16)).note is None


# ----------------------------------------------------------------------------------------------- blur


def reference_kernel(sigma):
    size = 2 * int(2.5 * sigma + 0.5) + 1
    centre = (size - 1) / 2
    weights = [math.exp(-((i - centre) ** 2) / (2 * sigma**2)) for i in range(size)]
    total = sum(weights)
    return [w / total for w in weights]


def reflect_101(p, length):
    """OpenCV's borderInterpolate for BORDER_REFLECT_101, written independently."""
    if length == 1:
        return 0
    while p < 0 or p >= length:
        p = -p if p < 0 else 2 * length - 2 - p
    return p


def reference_blur_row(row, sigma):
    kernel = reference_kernel(sigma)
    r = len(kernel) // 2
    n = len(row)
    return [sum(kernel[j] * row[reflect_101(i + j - r, n)] for j in range(len(kernel))) for i in range(n)]


def reference_blur(mask, blur_x, blur_y):
    a = np.asarray(mask, dtype=np.float64)
    if blur_x > 0:
        a = np.clip(np.rint(np.array([reference_blur_row(list(row), blur_x) for row in a])), 0, 255)
    if blur_y > 0:
        a = np.clip(np.rint(np.array([reference_blur_row(list(col), blur_y) for col in a.T]).T), 0, 255)
    return a.astype(int)


def test_kernel_size_and_weights_follow_a1111():
    assert len(masking.gaussian_kernel(4)) == 21  # 2 * int(2.5*4 + 0.5) + 1
    assert len(masking.gaussian_kernel(1)) == 7
    assert len(masking.gaussian_kernel(64)) == 321
    assert np.allclose(masking.gaussian_kernel(3), reference_kernel(3), rtol=0, atol=1e-15)


@pytest.mark.parametrize("blur_x,blur_y", [(2, 0), (0, 3), (4, 4), (1, 6), (9, 2)])
def test_blur_matches_an_independent_reference(blur_x, blur_y):
    rng = np.random.default_rng(blur_x * 10 + blur_y)
    mask = Image.fromarray((rng.random((13, 17)) > 0.7).astype(np.uint8) * 255, "L")
    mask.paste(255, (0, 0, 1, 13))  # a white border column: reflect-101 and edge-repeat give different results
    out = arr(prepare_mask(mask, blur_x=blur_x, blur_y=blur_y).mask)
    assert np.array_equal(out, reference_blur(mask, blur_x, blur_y))


def test_blur_wider_than_the_mask_reflects_repeatedly():
    mask = square_mask(5, 3, (0, 0, 1, 3))
    out = arr(prepare_mask(mask, blur_x=4, blur_y=0).mask)  # kernel of 21 taps on 5 pixels
    assert np.array_equal(out, reference_blur(mask, 4, 0))


def test_blur_x_only_blurs_horizontally():
    mask = square_mask(16, 16, (6, 6, 10, 10))
    out = arr(prepare_mask(mask, blur_x=2, blur_y=0).mask)
    assert (out[:6] == 0).all() and (out[10:] == 0).all()  # no vertical spread
    assert 0 < out[8, 4] < out[8, 7] < 255 and (out[6:10, 0] == 0).all()


# ----------------------------------------------------------------------------------------------- only masked


def test_crop_region_is_the_mask_bbox_plus_clamped_padding():
    mask = square_mask(64, 32, (10, 5, 20, 15))
    assert crop_region(mask, 0) == (10, 5, 20, 15)
    assert crop_region(mask, 4) == (6, 1, 24, 19)
    assert crop_region(mask, 100) == (0, 0, 64, 32)


def test_empty_mask_is_refused_with_a_clear_message():
    with pytest.raises(InvalidRequestError, match="the mask is empty: paint the area to change"):
        crop_region(Image.new("L", (8, 8), 0), 32)


def test_expand_to_aspect():
    # A1111's own example: a 128x32 stroke processed at 512x512 becomes a 128x128 crop
    assert expand_to_aspect((100, 200, 228, 232), 512, 512, 512, 512) == (100, 152, 228, 280)
    # at the top edge the box is pushed down, at the bottom edge up
    assert expand_to_aspect((0, 0, 128, 32), 512, 512, 512, 512) == (0, 0, 128, 128)
    assert expand_to_aspect((10, 50, 42, 60), 64, 64, 64, 64) == (10, 32, 42, 64)
    # a wide processing size widens a square region
    assert expand_to_aspect((20, 20, 30, 30), 64, 32, 64, 64) == (15, 20, 35, 30)
    # an image too small for the ratio: the box stops at its edges
    assert expand_to_aspect((0, 0, 64, 16), 64, 64, 64, 32) == (0, 0, 64, 32)


def test_crop_to_region_cuts_and_brings_to_the_processing_size():
    image = noise_image(64, 64)
    out = crop_to_region(image, (16, 16, 48, 48), 32, 32)
    assert out.size == (32, 32)
    assert np.array_equal(arr(out), arr(image)[16:48, 16:48])


# ----------------------------------------------------------------------------------------------- fill


def test_fill_keeps_unmasked_pixels_and_fills_with_nearby_colours():
    image = Image.new("RGB", (64, 32), RED)
    image.paste(BLUE, (32, 0, 64, 32))
    noise = noise_image(64, 32, seed=3)
    noisy = np.asarray(image).copy()
    noisy[28:32] = np.asarray(noise)[28:32]  # bottom rows: noise, to check exact preservation
    image = Image.fromarray(noisy, "RGB")
    mask = Image.new("L", (64, 32), 0)
    mask.paste(255, (44, 8, 56, 20))  # inside the blue half
    mask.paste(255, (8, 8, 20, 20))  # inside the red half
    out = arr(fill_masked(image, mask))
    keep = np.asarray(mask) == 0
    assert np.array_equal(out[keep], arr(image)[keep])
    blue_hole, red_hole = out[8:20, 44:56], out[8:20, 8:20]
    assert (blue_hole[..., 2] > 200).all() and (blue_hole[..., 0] < 60).all()
    assert (red_hole[..., 0] > 200).all() and (red_hole[..., 2] < 60).all()


def test_fill_with_everything_masked_is_black():
    assert arr(fill_masked(noise_image(8, 8), Image.new("L", (8, 8), 255))).max() == 0


# ----------------------------------------------------------------------------------------------- paste back


def test_overlay_mask_doubles_for_whole_picture_only():
    mask = Image.fromarray(np.array([[0, 1, 100, 200, 255]], np.uint8), "L")
    assert list(arr(overlay_mask(mask, only_masked=False))[0]) == [0, 2, 200, 255, 255]
    assert list(arr(overlay_mask(mask, only_masked=True))[0]) == [0, 1, 100, 200, 255]


def test_composite_whole_picture_keeps_unmasked_pixels_exactly():
    original, generated = noise_image(32, 32, 1), noise_image(32, 32, 2)
    mask = prepare_mask(square_mask(32, 32, (8, 8, 24, 24)), blur_x=3, blur_y=3).mask
    out, m = arr(composite(original, generated, mask)), np.asarray(mask)
    assert np.array_equal(out[m == 0], arr(original)[m == 0])
    assert np.array_equal(out[m == 255], arr(generated)[m == 255])
    partial = (m > 0) & (m < 255)
    assert partial.any()
    lo = np.minimum(arr(original), arr(generated))[partial]
    hi = np.maximum(arr(original), arr(generated))[partial]
    assert ((out[partial] >= lo - 1) & (out[partial] <= hi + 1)).all()


def test_composite_only_masked_puts_the_crop_back_in_its_region():
    original = noise_image(64, 64, 4)
    mask = prepare_mask(square_mask(64, 64, (24, 20, 40, 36)), blur_x=2, blur_y=2).mask
    region = expand_to_aspect(crop_region(mask, 4), 32, 32, 64, 64)
    generated = noise_image(32, 32, 5)  # what the model made at the processing size
    out, m = arr(composite(original, generated, mask, region)), np.asarray(mask)
    assert np.array_equal(out[m == 0], arr(original)[m == 0])
    x1, y1, x2, y2 = region
    placed = arr(resize_image(1, generated, x2 - x1, y2 - y1))
    inside = m[y1:y2, x1:x2] == 255
    assert inside.any()
    assert np.array_equal(out[y1:y2, x1:x2][inside], placed[inside])


# ----------------------------------------------------------------------------------------------- outpaint


def test_outpaint_canvas_sizes_placement_and_mask():
    image = noise_image(24, 16, 6)
    canvas, mask = outpaint_canvas(image, left=8, right=16, down=8, fill="edge")
    assert canvas.size == mask.size == (48, 24)
    c, m, src = arr(canvas), arr(mask), arr(image)
    assert np.array_equal(c[0:16, 8:32], src)
    assert (m[0:16, 8:32] == 0).all()
    m_new = m.copy()
    m_new[0:16, 8:32] = 255
    assert (m_new == 255).all()  # everything else is to be painted
    # edge stretch: new columns repeat the outermost column, the corner its corner pixel
    assert np.array_equal(c[0:16, 0], src[:, 0]) and np.array_equal(c[0:16, 47], src[:, -1])
    assert np.array_equal(c[23, 8:32], src[-1]) and tuple(c[23, 0]) == tuple(src[-1, 0])


def test_outpaint_overlap_reaches_into_the_original_on_grown_sides_only():
    _, mask = outpaint_canvas(noise_image(24, 16), left=8, down=8, fill="none", overlap=4)
    m = arr(mask)
    assert (m[0:12, 12:32] == 0).all()  # kept: not the overlap strips
    assert (m[0:16, 8:12] == 255).all()  # left grew: 4 px into the original
    assert (m[12:16, 8:32] == 255).all()  # down grew
    assert (m[0:4, 12:32] == 0).all()  # up did not grow: no overlap there


def test_outpaint_fills():
    image = Image.new("RGB", (16, 16), BLUE)
    black = arr(outpaint_canvas(image, right=8, fill="none").image)
    assert (black[:, 16:] == 0).all() and (black[:, :16] == BLUE).all()
    filled = arr(outpaint_canvas(image, right=8, up=8, fill="fill").image)
    assert filled.shape == (24, 24, 3)
    assert (np.abs(filled - BLUE) <= 2).all()  # only blue around to take colours from


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"left": 5}, "multiple of 8"),
        ({"up": 12, "down": 8}, "'up' is 12 pixels"),
        ({"right": -8}, "multiple of 8"),
        ({}, "nothing to outpaint"),
        ({"left": 8, "fill": "mirror"}, "unknown outpaint fill"),
    ],
)
def test_outpaint_refusals(kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        outpaint_canvas(noise_image(16, 16), **kwargs)


# ----------------------------------------------------------------------------------------------- latent side


def test_latent_mask_is_shrunk_and_rounded():
    mask = square_mask(64, 64, (0, 0, 32, 64))
    lat = latent_mask(mask, (8, 8))
    assert lat.shape == (1, 1, 8, 8)
    assert (lat[..., :4] == 1).all() and (lat[..., 4:] == 0).all()
    soft = prepare_mask(mask, blur_x=12, blur_y=0).mask
    unrounded = latent_mask(soft, (8, 8), round=False)
    values = set(unrounded.flatten().tolist())
    assert any(0 < v < 1 for v in values)
    assert set(latent_mask(soft, (8, 8), round=True).flatten().tolist()) <= {0.0, 1.0}


def test_mask_to_tensor_rounds_for_inpainting_models():
    mask = Image.fromarray(np.array([[0, 100, 128, 200, 255]], np.uint8), "L")
    assert mask_to_tensor(mask).flatten().tolist() == [0, 0, 1, 1, 1]
    assert mask_to_tensor(mask, round=False).shape == (1, 1, 1, 5)
