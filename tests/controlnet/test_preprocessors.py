"""ControlNet preprocessors: the weight-free maps (pixels), the extension's module list (names, aliases, sliders),
the refusals of unknown modules and of annotator modules without their files, pixel perfect's resolution, and what
recolor and inpaint_only do to the decoded picture."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sdui.controlnet import annotators, preprocessors
from sdui.controlnet.builtin_preprocessors import inpaint_hint, shuffle_seed
from sdui.controlnet.modes import ResizeMode
from sdui.controlnet.postprocessing import after_decode
from sdui.controlnet.preprocessors import (
    ALIASES,
    NAMES,
    UnknownPreprocessorError,
    find,
    module_list,
    pixel_perfect_resolution,
    run,
)
from sdui.errors import InvalidRequestError, UserError


def half_black_half_white(height: int = 64, width: int = 64) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2 :] = 255
    return image


def smooth_noise(size: int = 96, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2)


def channel(image: np.ndarray) -> np.ndarray:
    assert image.ndim == 3 and image.shape[2] == 3
    assert (image == image[:, :, :1]).all(), "a grey map has three equal channels"
    return image[:, :, 0]


# ------------------------------------------------------------------------------------------------------------- maps


def test_canny_marks_exactly_the_hard_edge_and_nothing_where_the_image_is_flat():
    edges = channel(run("canny", half_black_half_white(), resolution=64))

    assert set(np.unique(edges)) == {0, 255}
    rows, columns = np.nonzero(edges)
    assert set(columns) <= {31, 32}, "white only along the edge between columns 31 and 32"
    assert set(rows) == set(range(64)), "the whole edge, top to bottom"
    assert not edges[:, :30].any() and not edges[:, 34:].any()


def test_canny_thresholds_change_how_many_edges_are_kept():
    def count(low, high):
        return int((run("canny", smooth_noise(), resolution=96, threshold_a=low, threshold_b=high) > 0).sum())

    loose, strict = count(20, 60), count(50, 100)
    assert loose > strict > 0


def test_canny_works_at_the_preprocessor_resolution_short_side():
    edges = run("canny", half_black_half_white(64, 96), resolution=128)
    assert edges.shape == (128, 192, 3)
    assert set(np.nonzero(edges[:, :, 0])[1]) <= {95, 96}, "the edge scaled with the image"


def test_canny_defaults_are_the_extension_sliders_values():
    image = smooth_noise(seed=1)
    chosen = run("canny", image, resolution=96, threshold_a=100, threshold_b=200)
    assert np.array_equal(run("canny", image, resolution=96), chosen)


def test_invert_inverts_every_pixel_at_the_image_size():
    image = smooth_noise(40)
    assert np.array_equal(run("invert (from white bg & black line)", image), 255 - image)


@pytest.mark.parametrize("level", [60, 127, 200])
def test_threshold_is_binary_at_the_given_level(level):
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 64, axis=0).repeat(3, axis=2)  # 64 x 256
    binary = channel(run("threshold", ramp, resolution=64, threshold_a=level))

    assert set(np.unique(binary)) == {0, 255}
    assert (binary[:, : level + 1] == 0).all() and (binary[:, level + 1 :] == 255).all()


def test_threshold_looks_at_the_darkest_channel():
    image = np.full((64, 64, 3), 250, np.uint8)
    image[:, :32, 1] = 10  # one dark channel is enough to stay black
    binary = channel(run("threshold", image, resolution=64, threshold_a=127))
    assert not binary[:, :32].any() and binary[:, 32:].all()


def test_scribble_xdog_and_lineart_standard_find_a_dark_line_on_white():
    page = np.full((64, 64, 3), 255, np.uint8)
    page[:, 30:33] = 0

    scribble = channel(run("scribble_xdog", page, resolution=64))
    lines = channel(run("lineart_standard (from white bg & black line)", page, resolution=64))

    for found in (scribble, lines):
        assert found[:, 30:33].all(), "the line is white in the map"
        assert not found[:, :26].any() and not found[:, 37:].any(), "flat paper stays black"


def test_tile_resample_downsamples_by_the_factor():
    blocks = np.kron(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, np.ones((16, 16), np.uint8))  # 48 x 64
    image = np.repeat(blocks[:, :, None], 3, axis=2)

    halved = run("tile_resample", image, threshold_a=2.0)
    assert halved.shape == (24, 32, 3)
    assert np.array_equal(halved[::8, ::8, 0], blocks[::16, ::16]), "each 16-pixel block averaged to 8 pixels"
    assert run("tile_resample", image, threshold_a=3.0).shape == (16, 21, 3)  # int(48 / 3), int(64 / 3)
    assert np.array_equal(run("tile_resample", image, threshold_a=1.05), image), "below 1.1 the image is kept"


def test_blur_is_smooth_and_keeps_the_mean():
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    blurred = run("blur_gaussian", image, resolution=64, threshold_a=3.0)

    assert blurred.shape == image.shape
    assert abs(blurred.astype(float).mean() - image.astype(float).mean()) < 1.0
    steps = np.abs(np.diff(blurred.astype(int), axis=1)).mean()
    assert steps < np.abs(np.diff(image.astype(int), axis=1)).mean() / 10


def test_shuffle_is_deterministic_per_seed_and_differs_across_seeds():
    image = smooth_noise(80)
    first = run("shuffle", image, resolution=80, seed=1234)

    assert first.shape == image.shape
    assert np.array_equal(first, run("shuffle", image, resolution=80, seed=1234))
    assert not np.array_equal(first, run("shuffle", image, resolution=80, seed=1235))
    flat = np.full((80, 80, 3), 77, np.uint8)
    assert (run("shuffle", flat, resolution=80, seed=5) == 77).all(), "it moves pixels, it does not change them"


def test_shuffle_draws_what_the_extensions_seeded_global_generator_draws():
    # the extension's content shuffle, written out independently: np.random.seed(seed), then for x and y a
    # uniform grid one cell (256 px) apart plus a margin, bicubic up, cropped, scaled to [0, 1], then a remap
    image = smooth_noise(80, seed=4)
    np.random.seed(99)
    flows = []
    for extent in (79.0, 79.0):  # W - 1, H - 1
        grid = np.random.uniform(low=0, high=1, size=(80 // 256 + 2, 80 // 256 + 2, 1))
        field = cv2.resize(grid, (80 + 512, 80 + 512), interpolation=cv2.INTER_CUBIC)[256:336, 256:336]
        field = (field - field.min()) / (field - field.min()).max()
        flows.append(field * extent)
    expected = cv2.remap(image, np.stack(flows, axis=2).astype(np.float32), None, cv2.INTER_LINEAR)

    assert np.array_equal(run("shuffle", image, resolution=80, seed=99), expected)


def test_shuffle_seed_is_the_extensions_numpy_seed():
    assert shuffle_seed(1000, 5) == 1005
    assert shuffle_seed(2**32 - 1, 3) == 2, "wraps at 2^32"
    assert shuffle_seed(7, -1) == 7


def test_recolor_gives_grey_maps():
    colours = smooth_noise(32)
    intensity = channel(run("recolor_intensity", colours))
    assert np.array_equal(intensity, colours.max(axis=2)), "HSV value at gamma 1"
    brighter = channel(run("recolor_intensity", colours, threshold_a=0.5))
    assert (brighter >= intensity).all() and (brighter > intensity).any(), "gamma below 1 brightens"

    channel(run("recolor_luminance", colours))
    # lightness as the extension computes it, reading RGB as BGR: pure red weighs as blue (L* 32) and vice versa
    red, blue = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    assert channel(run("recolor_luminance", red))[0, 0] == round(32.30 * 255 / 100)
    assert channel(run("recolor_luminance", blue))[0, 0] == round(53.24 * 255 / 100)


def test_color_grid_is_flat_in_64_pixel_cells():
    grid = run("t2ia_color_grid", smooth_noise(96), resolution=128)
    assert grid.shape == (128, 128, 3)
    for y in (0, 64):
        for x in (0, 64):
            cell = grid[y : y + 64, x : x + 64]
            assert (cell == cell[0, 0]).all()


def test_grey_and_transparent_uploads_are_read_as_the_extension_reads_them():
    grey = half_black_half_white()[:, :, 0]
    assert np.array_equal(run("canny", grey, resolution=64), run("canny", half_black_half_white(), resolution=64))

    transparent = np.zeros((8, 8, 4), np.uint8)  # black, alpha 0: laid over white
    transparent[:, :4, 3] = 255  # the left half opaque black
    inverted = run("invert", transparent)
    assert (inverted[:, :4] == 255).all() and (inverted[:, 4:] == 0).all()


@pytest.mark.parametrize("module", ["tile_colorfix", "tile_colorfix+sharp", "reference_only", "none"])
def test_modules_that_act_later_pass_the_image_on(module):
    image = smooth_noise(40)
    assert np.array_equal(run(module, image, threshold_a=10), image)


# ---------------------------------------------------------------------------------------------------------- inpaint


@pytest.mark.parametrize("module", ["inpaint", "inpaint_global_harmonious", "inpaint_only"])
def test_inpaint_maps_carry_the_mask_in_alpha_and_the_model_sees_minus_one_there(module):
    image = smooth_noise(32)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:24] = 255

    rgba = run(module, image, mask=mask)
    assert rgba.shape == (32, 32, 4)
    assert np.array_equal(rgba[:, :, :3], image) and np.array_equal(rgba[:, :, 3], mask)

    hint = inpaint_hint(rgba)
    assert (hint[8:16, 8:24] == -1).all()
    kept = np.ones((32, 32), bool)
    kept[8:16, 8:24] = False
    assert np.allclose(hint[kept], image[kept] / 255.0)


def test_inpaint_mask_sources():
    image = smooth_noise(32)
    assert not run("inpaint_only", image)[:, :, 3].any(), "no mask: nothing is repainted"

    upload = np.concatenate([image, np.full((32, 32, 1), 255, np.uint8)], axis=2)
    upload[:4, :4, 3] = 0
    rgba = run("inpaint_only", upload)
    assert np.array_equal(rgba, upload), "an RGBA upload without a mask brings its alpha as the mask"

    small = np.zeros((16, 16, 3), np.uint8)
    small[8:] = 255  # the lower half, at half the size
    alpha = run("inpaint_only", image, mask=small)[:, :, 3]
    assert alpha.shape == (32, 32) and not alpha[:15].any() and alpha[17:].all()


# ------------------------------------------------------------------------------------------- the list and the names


def test_module_list_has_the_extensions_shape_and_order():
    answer = module_list(alias_names=False)
    json.dumps(answer)  # the route answers it as it is

    assert set(answer) == {"module_list", "module_detail"}
    names = answer["module_list"]
    assert names[:3] == ["none", "canny", "depth"] and names[-1] == "te_hed" and len(names) == len(set(names)) == 65
    assert list(answer["module_detail"]) == names
    assert answer["module_detail"]["canny"] == {
        "model_free": False,
        "sliders": [
            {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048},
            {"name": "Canny Low Threshold", "value": 100, "min": 1, "max": 255},
            {"name": "Canny High Threshold", "value": 200, "min": 1, "max": 255},
        ],
    }
    tile = answer["module_detail"]["tile_resample"]["sliders"]
    assert tile[0] is None and tile[1] == {
        "name": "Down Sampling Rate",
        "value": 1.0,
        "min": 1.0,
        "max": 8.0,
        "step": 0.01,
    }
    assert answer["module_detail"]["reference_only"]["model_free"] is True
    assert answer["module_detail"]["lineart"] == {"model_free": False, "sliders": []}, "no slider config: none listed"


def test_module_list_with_alias_names():
    answer = module_list(alias_names=True)
    labels = answer["module_list"]

    assert len(labels) == len(NAMES)
    for name, alias in (("depth", "depth_midas"), ("inpaint", "inpaint_global_harmonious"), ("hed", "softedge_hed")):
        assert alias in labels and name not in labels
    assert "invert (from white bg & black line)" in labels and "canny" in labels
    assert list(answer["module_detail"]) == labels
    assert answer["module_detail"]["depth_midas"]["sliders"][0]["name"] == "Preprocessor Resolution"


def test_find_takes_a_name_or_its_alias():
    for name, alias in ALIASES.items():
        assert find(name).name == find(alias).name == name
        assert find(alias).label == alias
    assert find(None).name == "none"
    assert find("Canny").name == "canny"


def test_an_unknown_module_names_the_known_ones():
    with pytest.raises(UnknownPreprocessorError) as raised:
        find("cany")

    message = raised.value.message
    assert isinstance(raised.value, UserError) and raised.value.status_code == 422
    assert "Unknown ControlNet preprocessor 'cany'" in message and "Did you mean 'canny'?" in message
    assert all(name in message for name in ("none", "canny", "tile_resample", "depth_zoe"))
    assert "/controlnet/module_list" in message


# ------------------------------------------------------------------------------------------------------ annotators


def test_an_annotator_module_without_its_file_says_which_file_to_put_where(tmp_path):
    folder = tmp_path / "ControlNet-annotators"
    folder.mkdir()
    assert not find("depth_midas").built_in

    with pytest.raises(annotators.AnnotatorUnavailableError) as raised:
        run("depth_midas", smooth_noise(32), annotator_dir=folder)

    message = raised.value.message
    assert "'depth_midas'" in message and "dpt_hybrid-midas-501f0c75.pt" in message and str(folder) in message
    assert "midas/dpt_hybrid-midas-501f0c75.pt" in message and "preprocessor 'none'" in message


def test_openpose_full_names_every_missing_file_and_finds_them_flat_or_in_sub_folders(tmp_path):
    (tmp_path / "openpose").mkdir()
    (tmp_path / "openpose" / "body_pose_model.pth").write_bytes(b"x")
    (tmp_path / "facenet.pth").write_bytes(b"x")
    assert annotators.missing_files("openpose_full", tmp_path) == ["openpose/hand_pose_model.pth"]

    (tmp_path / "hand_pose_model.pth").write_bytes(b"x")
    with pytest.raises(UserError) as raised:
        run("openpose_full", smooth_noise(32), annotator_dir=tmp_path)
    assert "does not run annotator models yet" in raised.value.message and "in place" in raised.value.message


def test_embedding_modules_are_refused_as_unsupported():
    with pytest.raises(UserError) as raised:
        run("ip-adapter_clip_sd15", smooth_noise(32))
    assert "not supported here" in raised.value.message and "IP-Adapter" in raised.value.message


def test_every_listed_module_either_runs_or_says_why_not(tmp_path):
    reasons = preprocessors.unavailable(tmp_path)
    for name in NAMES:
        assert find(name).built_in != (name in reasons), name
    assert set(reasons) == annotators.NAMES


# ---------------------------------------------------------------------------------------------- settings and bounds


def test_negative_settings_take_the_sliders_defaults_and_others_are_held_to_their_range():
    image = smooth_noise(64, seed=3)
    default = run("blur_gaussian", image, resolution=-1, threshold_a=-1)
    assert default.shape == (512, 512, 3), "the resolution slider's default"
    assert np.array_equal(default, run("blur_gaussian", image, resolution=512, threshold_a=9.0))
    assert np.array_equal(
        run("blur_gaussian", image, resolution=64, threshold_a=1000.0),
        run("blur_gaussian", image, resolution=64, threshold_a=64.0),
    ), "sigma held to the slider's 64"
    assert run("shuffle", image, resolution=-1, seed=1).shape == (512, 512, 3), "no slider: the extension's 512"


def test_a_resolution_that_would_make_a_huge_map_is_refused_before_work():
    sliver = np.zeros((10, 400, 3), np.uint8)
    with pytest.raises(InvalidRequestError) as raised:
        run("canny", sliver, resolution=2048)
    assert "processor_res" in raised.value.message and "81920x2048" in raised.value.message


def test_a_threshold_that_is_not_a_number_is_refused():
    with pytest.raises(InvalidRequestError):
        run("canny", smooth_noise(32), threshold_a=float("nan"))


# ----------------------------------------------------------------------------------------------------- pixel perfect


@pytest.mark.parametrize(
    ("image_hw", "target_hw", "mode", "expected"),
    [
        ((512, 768), (512, 512), "Crop and Resize", 512),  # k = max(1, 2/3) = 1; short side 512
        ((1024, 768), (512, 768), "Crop and Resize", 768),  # k = max(1/2, 1) = 1; short side 768
        ((1024, 768), (512, 768), "Resize and Fill", 384),  # k = min(1/2, 1) = 1/2
        ((1024, 768), (512, 768), 2, 384),
        ((1024, 768), (512, 768), "Just Resize", 768),  # as crop: the larger factor
        ((10, 20), (25, 25), "Crop and Resize", 25),  # k = max(2.5, 1.25) = 2.5
        ((10, 20), (25, 25), "Resize and Fill", 12),  # 1.25 * 10 = 12.5, numpy rounds half to even
        ((300, 200), (768, 512), 1, 512),  # 2.56 both ways
        ((1024, 768), (512, 768), ResizeMode.RESIZE_AND_FILL, 384),  # the units' enum
        ((1024, 768), (512, 768), "Envelope (Outer Fit)", 384),  # an old name
    ],
)
def test_pixel_perfect_resolution_matches_hand_computed_cases(image_hw, target_hw, mode, expected):
    assert pixel_perfect_resolution(image_hw, target_hw, mode) == expected


# ------------------------------------------------------------------------------------------ after the VAE decode


def test_recolor_puts_the_maps_lightness_back_into_the_picture():
    picture = (smooth_noise(32, seed=5).astype(np.float32) / 255.0) * 0.5 + 0.25  # colours well inside the gamut
    lightness = np.full((32, 32, 3), 150, np.uint8)

    recoloured = after_decode("recolor_luminance", picture, lightness)
    lab = cv2.cvtColor((recoloured * 255).round().astype(np.uint8), cv2.COLOR_RGB2LAB)
    assert np.median(np.abs(lab[:, :, 0].astype(int) - 150)) <= 1

    brightened = after_decode("recolor_intensity", picture, lightness)
    assert np.abs((brightened * 255).round().max(axis=2) - 150).max() <= 1, "HSV value is the map's"


def test_inpaint_only_keeps_the_units_image_outside_the_mask():
    image = smooth_noise(64, seed=6)
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    rgba = run("inpaint_only", image, mask=mask)
    generated = np.full((64, 64, 3), 0.5, np.float32)

    restored = after_decode("inpaint_only", generated, rgba)
    assert np.allclose(restored[:12], image[:12] / 255.0), "far from the mask: the unit's image"
    assert np.allclose(restored[30:34, 30:34], 0.5), "inside the mask: what was generated"
    assert np.array_equal(after_decode("canny", generated, rgba), generated)
