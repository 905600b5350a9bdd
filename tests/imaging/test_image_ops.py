"""Resize modes (A1111's 0-3), alpha flattening and PIL -> tensor, checked on synthetic images with known pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import flatten, image_to_tensor, resize_image

RED, GREEN, BLUE, YELLOW, CYAN, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (90, 90, 90)


def bands(sizes_colours, other_side, vertical=True):
    """Columns (vertical=True) or rows of solid colour: [(16, RED), (16, GREEN)] -> 32 x other_side."""
    parts = [
        np.broadcast_to(np.array(c, np.uint8), (other_side, n, 3) if vertical else (n, other_side, 3))
        for n, c in sizes_colours
    ]
    return Image.fromarray(np.ascontiguousarray(np.concatenate(parts, axis=1 if vertical else 0)), "RGB")


def px(image):
    return np.asarray(image).astype(int)


def test_just_resize_stretches_to_the_exact_size():
    image = bands([(16, RED), (16, BLUE)], 16)
    out = resize_image(0, image, 16, 24)
    assert out.size == (16, 24)
    a = px(out)
    assert (np.abs(a[:, :6] - RED) <= 2).all() and (np.abs(a[:, 10:] - BLUE) <= 2).all()


def test_latent_upscale_mode_is_a_plain_stretch_on_the_pixel_side():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    assert np.array_equal(px(resize_image(3, image, 24, 16)), px(resize_image(0, image, 24, 16)))


def test_crop_and_resize_keeps_the_centre_of_a_wide_image():
    image = bands([(16, RED), (16, GREEN), (16, BLUE)], 16)  # 48x16, same height as the target
    out = resize_image(1, image, 16, 16)
    assert out.size == (16, 16)
    assert (px(out) == GREEN).all()


def test_crop_and_resize_keeps_the_centre_of_a_tall_image_after_scaling():
    image = bands([(32, RED), (32, GREEN), (32, BLUE)], 32, vertical=False)  # 32x96 -> scaled to 16x48
    out = resize_image(1, image, 16, 16)
    assert out.size == (16, 16)
    a = px(out)
    assert (np.abs(a[3:13] - GREEN) <= 3).all()
    assert a[:, :, 0].max() < 40 and a[:, :, 2].max() < 40  # neither red nor blue survives the crop


def test_resize_and_fill_pads_a_wide_image_with_its_edge_rows():
    image = bands([(4, YELLOW), (8, GREY), (4, CYAN)], 32, vertical=False)  # 32x16: yellow top, cyan bottom
    out = resize_image(2, image, 32, 32)
    a = px(out)
    assert (a[:8] == YELLOW).all()  # band above = the top edge stretched
    assert np.array_equal(a[8:24], px(image))  # the image, unscaled, centred
    assert (a[24:] == CYAN).all()  # band below = the bottom edge stretched


def test_resize_and_fill_pads_a_tall_image_with_its_edge_columns():
    image = bands([(4, RED), (8, GREY), (4, BLUE)], 32)  # 16x32
    a = px(resize_image(2, image, 32, 32))
    assert (a[:, :8] == RED).all() and (a[:, 24:] == BLUE).all()
    assert np.array_equal(a[:, 8:24], px(image))


def test_resize_and_fill_leaves_no_unfilled_row_when_the_bands_are_uneven():
    image = bands([(4, YELLOW), (8, GREY), (4, CYAN)], 32, vertical=False)
    a = px(resize_image(2, image, 32, 33))  # 17 rows to fill: 8 above, 9 below
    assert (a[:8] == YELLOW).all() and (a[24:] == CYAN).all()


def test_resize_and_fill_stretches_like_a1111_not_just_copying_the_edge():
    # A1111 resamples a zero-height edge box bicubically: the band is 1.125*row0 - 0.125*row1
    rows = np.zeros((4, 8), np.uint8)
    rows[0], rows[1], rows[2], rows[3] = 100, 200, 0, 50
    out = np.asarray(resize_image(2, Image.fromarray(rows, "L"), 8, 8))
    assert out.shape == (8, 8)
    assert (out[:2] == 88).all()
    assert np.array_equal(out[2:6], rows)


def test_modes_keep_a_masks_mode():
    mask = Image.new("L", (20, 10), 255)
    for mode in range(4):
        out = resize_image(mode, mask, 16, 16)
        assert out.mode == "L" and out.size == (16, 16)


def test_upscaler_is_used_only_to_enlarge():
    calls = []

    def upscaler(image, w, h):
        calls.append((image.size, w, h))
        return Image.new(image.mode, (w, h), GREEN)

    image = Image.new("RGB", (8, 8), RED)
    assert (px(resize_image(0, image, 16, 16, upscaler=upscaler)) == GREEN).all()
    assert calls == [((8, 8), 16, 16)]
    assert (px(resize_image(0, image, 4, 4, upscaler=upscaler)) == RED).all()
    assert len(calls) == 1


def test_bad_mode_and_size_are_refused():
    image = Image.new("RGB", (8, 8))
    with pytest.raises(InvalidRequestError, match="resize_mode must be 0"):
        resize_image(4, image, 8, 8)
    with pytest.raises(InvalidRequestError, match="must be positive"):
        resize_image(0, image, 0, 8)


def test_flatten_puts_transparency_on_the_background_colour():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # transparent
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black
    out = px(flatten(Image.fromarray(rgba, "RGBA"), "#00ff00"))
    assert tuple(out[0, 0]) == RED
    assert tuple(out[0, 1]) == GREEN
    assert abs(out[1, 0, 1] - 127) <= 1 and out[1, 0, 0] == 0
    assert flatten(Image.new("RGB", (2, 2), BLUE)).mode == "RGB"
    assert tuple(px(flatten(Image.fromarray(rgba, "RGBA")))[0, 1]) == (255, 255, 255)  # default white


def test_image_to_tensor_is_nchw_in_minus_one_to_one():
    red = Image.new("RGB", (4, 2), RED)
    grey = Image.new("L", (4, 2), 0).convert("RGB")
    t = image_to_tensor([red, grey])
    assert t.shape == (2, 3, 2, 4) and t.dtype == torch.float32
    assert torch.all(t[0, 0] == 1) and torch.all(t[0, 1:] == -1)
    assert torch.all(t[1] == -1)
    assert image_to_tensor(red).shape == (1, 3, 2, 4)
    with pytest.raises(InvalidRequestError, match="share a size"):
        image_to_tensor([red, Image.new("RGB", (2, 2))])


@pytest.mark.parametrize("mode", [1, 2])
def test_a_sliver_meeting_a_flat_target_still_resizes(mode):
    # 3x40 into 128x8: A1111's integer arithmetic scales the sliver to 0 pixels wide (a PIL error, an HTTP 500 in
    # "only masked" inpainting); at least one pixel is kept
    sliver = Image.new("RGB", (3, 40), (200, 10, 10))
    out = resize_image(mode, sliver, 128, 8)
    assert out.size == (128, 8) and out.getpixel((64, 4)) == (200, 10, 10)
