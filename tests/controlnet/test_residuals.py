"""ControlNet model files (catalog, titles, every layout loaded through the real loader), control maps at a call's
size, and one unit's residuals as the Denoiser asks for them. Whole generations: tests/fidelity/test_controlnet.py."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sdui.controlnet.control_image import control_tensor, resize_map
from sdui.controlnet.model_files import (
    ControlNetCache,
    ControlNetCatalog,
    ControlNetModelError,
    UnknownControlNetError,
    load_controlnet,
)
from sdui.controlnet.modes import ControlMode, ResizeMode, control_mode, resize_mode
from sdui.controlnet.residuals import ControlNetResiduals, block_scales, check_fits, in_guidance
from sdui.core.denoiser import Denoiser, TextConditioning, UNetCall
from sdui.core.schedules import training_sigmas
from sdui.errors import InvalidRequestError, UserError
from tests.fixtures.checkpoints import build_tiny_checkpoint, tiny_components
from tests.fixtures.controlnet import controlnet_to_original, tiny_controlnet, write_controlnet
from tests.fixtures.text_encoder_ldm import CONTEXT_DIM
from tests.helpers import CPU32

LAYOUTS = [
    ("canny.safetensors", {}),
    ("canny_bare.safetensors", {"prefix": False}),
    ("canny.pth", {}),
    ("canny_bare.pth", {"prefix": False}),
    ("canny_folder", {"fmt": "diffusers"}),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ControlNet")
    for name, options in LAYOUTS:
        write_controlnet(root / name, **options)
    write_controlnet(root / "xl" / "sdxl_canny.safetensors", arch="sdxl")
    return root


def _legacy_hash(path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]


# --- files and titles ---------------------------------------------------------------------------------------------


def test_titles_are_name_and_a1111_short_hash(folder):
    catalog = ControlNetCatalog([folder])
    titles = catalog.titles()
    assert titles[0] == "None"
    expected = {
        f"canny [{_legacy_hash(folder / 'canny.safetensors')}]",
        f"canny_bare [{_legacy_hash(folder / 'canny_bare.pth')}]",
        f"canny_folder [{_legacy_hash(folder / 'canny_folder' / 'diffusion_pytorch_model.safetensors')}]",
        f"sdxl_canny [{_legacy_hash(folder / 'xl' / 'sdxl_canny.safetensors')}]",
    }
    assert expected <= set(titles)
    # the weights inside a diffusers folder are listed once, as the folder
    assert not any(t.startswith("diffusion_pytorch_model") for t in titles)


def test_find_by_title_name_other_hash_and_part(folder):
    catalog = ControlNetCatalog([folder])
    entry = next(e for e in catalog.entries() if e.path.name == "canny_folder")
    assert catalog.find(entry.title) == entry
    assert catalog.find("CANNY_FOLDER") == entry
    assert catalog.find("canny_folder [0123abcd]") == entry  # a title from another copy of the file
    assert catalog.find("sdxl").name == "sdxl_canny"  # the shortest name containing it, as the extension does
    assert catalog.find("None") is None and catalog.find("") is None and catalog.find(None) is None


def test_unknown_model_names_the_known_ones(folder):
    catalog = ControlNetCatalog([folder])
    with pytest.raises(UnknownControlNetError) as caught:
        catalog.find("control_v11p_sd15_openpose [cab727d4]")
    assert isinstance(caught.value, UserError) and caught.value.status_code == 422
    assert "control_v11p_sd15_openpose" in caught.value.message
    assert "sdxl_canny [" in caught.value.message and "models" in caught.value.api_extra


def test_earlier_folder_wins_and_refresh_sees_new_files(tmp_path, folder):
    first, second = tmp_path / "first", tmp_path / "second"
    write_controlnet(first / "same.safetensors", seed=1)
    write_controlnet(second / "same.safetensors", seed=1)
    catalog = ControlNetCatalog([first, second, tmp_path / "missing"])
    assert [e.path for e in catalog.entries()] == [first / "same.safetensors"]
    write_controlnet(second / "later.pth", seed=2)
    catalog.refresh()
    assert catalog.find("later").path == second / "later.pth"


# --- loading ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [name for name, _ in LAYOUTS])
def test_every_layout_loads_the_weights_it_was_saved_from(folder, name):
    entry = next(e for e in ControlNetCatalog([folder]).entries() if e.path.name == name)
    loaded = load_controlnet(entry)
    original = tiny_controlnet()
    expected = original.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # the architecture read from the weights computes what the original does (heads, projections, depths)
    sample, hint = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 64, 64)
    text = torch.randn(2, 5, CONTEXT_DIM["sd1"])
    theirs = original(sample, 500, encoder_hidden_states=text, controlnet_cond=hint, return_dict=False)
    ours = loaded(sample, 500, encoder_hidden_states=text, controlnet_cond=hint, return_dict=False)
    assert all(torch.equal(a, b) for a, b in zip([*ours[0], ours[1]], [*theirs[0], theirs[1]], strict=True))


@pytest.mark.parametrize("arch", ["sd2", "sdxl"])
def test_sd2_and_sdxl_controlnets_load_from_the_original_layout(tmp_path, arch):
    write_controlnet(tmp_path / f"{arch}_canny.safetensors", arch=arch)
    loaded = load_controlnet(ControlNetCatalog([tmp_path]).find(f"{arch}_canny"))
    original = tiny_controlnet(arch)
    expected, got = original.state_dict(), loaded.state_dict()
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    assert loaded.config.addition_embed_type == ("text_time" if arch == "sdxl" else None)
    # linear projections, 64-channel heads, SDXL's per-level depths and added embedding: it computes the same
    generator = torch.Generator().manual_seed(0)
    inputs = dict(
        sample=torch.randn(2, 4, 8, 8, generator=generator),
        timestep=300,
        encoder_hidden_states=torch.randn(2, 5, original.config.cross_attention_dim, generator=generator),
        controlnet_cond=torch.rand(2, 3, 64, 64, generator=generator),
        return_dict=False,
    )
    if arch == "sdxl":
        pooled = original.config.projection_class_embeddings_input_dim - 6 * 256
        inputs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, pooled), "time_ids": torch.rand(2, 6) * 64}
    theirs, ours = original(**inputs), loaded(**inputs)
    assert all(torch.equal(a, b) for a, b in zip([*ours[0], ours[1]], [*theirs[0], theirs[1]], strict=True))


def test_diffusers_names_in_one_file_load_too(tmp_path):
    path = tmp_path / "diffusers_xl_canny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_controlnet("sdxl").state_dict().items()}, str(path))
    entry = ControlNetCatalog([tmp_path]).find("diffusers_xl_canny")
    expected, loaded = tiny_controlnet("sdxl").state_dict(), load_controlnet(entry).state_dict()
    assert set(loaded) == set(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_shuffle_models_pool_globally(tmp_path):
    write_controlnet(tmp_path / "control_v11e_sd15_shuffle.safetensors")
    entry = ControlNetCatalog([tmp_path]).find("shuffle")
    assert load_controlnet(entry).config.global_pool_conditions is True


@pytest.mark.parametrize(
    "what,make,message",
    [
        ("garbage", lambda p: p.write_bytes(b"not a model at all" * 100), "not a valid safetensors file"),
        ("checkpoint", lambda p: build_tiny_checkpoint(p), "not a ControlNet in a known layout"),
        (
            "adapter",
            lambda p: save_file({"body.0.block1.weight": torch.zeros(2, 2)}, str(p)),
            "T2I-Adapter, which is not supported",
        ),
        (
            "truncated hint encoder",
            lambda p: save_file(
                {k: v for k, v in controlnet_to_original(tiny_controlnet()).items() if "input_hint_block.14" not in k},
                str(p),
            ),
            "hint encoder ends at conv 12",
        ),
    ],
)
def test_bad_files_are_refused_saying_what_they_are(tmp_path, what, make, message):
    path = tmp_path / f"{what.replace(' ', '_')}.safetensors"
    make(path)
    entry = ControlNetCatalog([tmp_path]).find(path.stem)
    with pytest.raises(ControlNetModelError) as caught:
        load_controlnet(entry)
    assert message in caught.value.message and entry.title in caught.value.message


def test_cache_keeps_the_most_recent(folder):
    catalog = ControlNetCatalog([folder])
    a, b = catalog.find("canny"), catalog.find("canny_bare")
    cache = ControlNetCache(size=1)
    first = cache.get(a, CPU32)
    assert cache.get(a, CPU32) is first
    cache.get(b, CPU32)
    assert len(cache) == 1 and cache.get(a, CPU32) is not first  # evicted, loaded again
    assert ControlNetCache(size=0).get(a, CPU32) is not ControlNetCache(size=0).get(a, CPU32)
    bf16 = cache.get(a, CPU32.__class__(torch.device("cpu"), torch.bfloat16, torch.float32))
    assert bf16.dtype == torch.bfloat16


# --- control maps -------------------------------------------------------------------------------------------------


def _quadrants(width: int, height: int) -> np.ndarray:
    """Four flat colours (a label map: resized by nearest, so every pixel stays one of them)."""
    array = np.zeros((height, width, 3), np.uint8)
    array[: height // 2, : width // 2] = (255, 0, 0)
    array[: height // 2, width // 2 :] = (0, 255, 0)
    array[height // 2 :, : width // 2] = (0, 0, 255)
    array[height // 2 :, width // 2 :] = (255, 255, 0)
    return array


def test_resize_modes_and_their_aliases():
    assert [resize_mode(v) for v in (0, 1, 2, 3, "2", 1.0, "crop and resize")] == [
        ResizeMode.JUST_RESIZE,
        ResizeMode.CROP_AND_RESIZE,
        ResizeMode.RESIZE_AND_FILL,
        ResizeMode.JUST_RESIZE,  # A1111's "Just resize (latent upscale)"
        ResizeMode.RESIZE_AND_FILL,
        ResizeMode.CROP_AND_RESIZE,
        ResizeMode.CROP_AND_RESIZE,
    ]
    assert resize_mode("Scale to Fit (Inner Fit)") is ResizeMode.CROP_AND_RESIZE
    assert resize_mode("Envelope (Outer Fit)") is ResizeMode.RESIZE_AND_FILL
    assert resize_mode(9) is ResizeMode.JUST_RESIZE  # the extension's fallback for numbers past the list
    for wrong in ("Stretch", "9", -1, True, None):
        with pytest.raises(InvalidRequestError, match="is not accepted; send one of 'Just Resize' \\(0\\), 'Crop and"):
            resize_mode(wrong)


def test_just_resize_stretches():
    out = resize_map(_quadrants(40, 20), 16, 16, "Just Resize")
    assert out.shape == (16, 16, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 15]) == (0, 255, 0) and tuple(out[15, 15]) == (255, 255, 0)


def test_crop_and_resize_covers_and_crops_evenly():
    # 40x20 into 16x16: scaled to 32x16, 8 columns cropped off each side; the colour edge stays in the middle
    out = resize_map(_quadrants(40, 20), 16, 16, "Crop and Resize")
    assert out.shape == (16, 16, 3)
    assert (out[:8, :8] == (255, 0, 0)).all() and (out[:8, 8:] == (0, 255, 0)).all()
    assert (out[8:, :8] == (0, 0, 255)).all() and (out[8:, 8:] == (255, 255, 0)).all()


def test_resize_and_fill_pads_with_the_border_colour():
    image = np.full((20, 40, 3), 200, np.uint8)
    image[5:15, 10:30] = 0  # a dark box inside a light border
    out = resize_map(image, 16, 16, "Resize and Fill")  # scaled to 16x8, centred: 4 rows of fill above and below
    assert (out[:4] == 200).all() and (out[12:] == 200).all()
    assert (out[6:10, 6:10] == 0).all()


def test_edge_maps_stay_black_and_white_and_tensor_is_unit_range():
    edges = np.zeros((30, 30), np.uint8)
    edges[:, 14:16] = 255
    edges[14:16, :] = 255
    out = resize_map(edges, 64, 64, "Just Resize")
    assert set(np.unique(out)) == {0, 255}
    tensor = control_tensor(Image.fromarray(edges), 64, 48, "Crop and Resize")
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == torch.float32
    assert tensor.min() == 0.0 and tensor.max() == 1.0


def test_inpaint_maps_carry_the_mask_as_minus_one():
    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[:, :, :3] = 102  # 0.4 grey
    rgba[:, 20:, 3] = 255  # the right half is to be repainted
    hint = control_tensor(rgba, 32, 16, "Just Resize", inpaint=True)[0]
    assert hint.shape == (3, 16, 32)
    assert (hint[:, :, :16] == 0.4).all() and (hint[:, :, 16:] == -1.0).all()
    # "Resize and Fill": the margins are new content too
    filled = control_tensor(rgba, 32, 32, "Resize and Fill", inpaint=True)[0]
    assert (filled[:, :8] == -1.0).all() and (filled[:, 24:] == -1.0).all()
    assert (filled[:, 8:24, :16] == 0.4).all()


def test_transparency_is_laid_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent
    assert (resize_map(rgba, 4, 4, "Just Resize") == 255).all()


# --- one unit's residuals -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def controlnet():
    return tiny_controlnet()


def _call(rows=2, uncond_rows=1, step=0, total=10, size=8):
    generator = torch.Generator().manual_seed(0)
    return UNetCall(
        sample=torch.randn(rows, 4, size, size, generator=generator),
        timestep=torch.tensor(700.0),
        encoder_hidden_states=torch.randn(rows, 7, CONTEXT_DIM["sd1"], generator=generator),
        added_cond_kwargs=None,
        step=step,
        total=total,
        uncond_rows=uncond_rows,
    )


def _map(size=64):
    return _quadrants(size, size)


def test_guidance_range_is_inclusive_fractions_of_the_steps():
    assert [i for i in range(10) if in_guidance(i, 10, 0.2, 0.5)] == [2, 3, 4, 5]
    assert [i for i in range(6) if in_guidance(i, 6, 0.0, 1.0)] == list(range(6))


def test_balanced_residuals_are_the_controlnet_output_times_weight(controlnet):
    call = _call()
    unit = ControlNetResiduals(controlnet, _map(), weight=0.7)
    got = unit(call)
    hint = control_tensor(_map(), 64, 64).expand(2, -1, -1, -1)
    down, mid = controlnet(
        call.sample, call.timestep, encoder_hidden_states=call.encoder_hidden_states, controlnet_cond=hint,
        return_dict=False,
    )  # fmt: skip
    assert len(got.down) == 4
    assert all(torch.allclose(a, b * 0.7) for a, b in zip(got.down, down, strict=True))
    assert torch.allclose(got.mid, mid * 0.7) and got.mid.abs().max() > 0


def test_weight_zero_and_outside_the_range_add_nothing(controlnet):
    assert ControlNetResiduals(controlnet, _map(), weight=0.0)(_call()) is None
    unit = ControlNetResiduals(controlnet, _map(), guidance_start=0.3, guidance_end=0.6)
    assert [unit(_call(step=i)) is not None for i in range(10)] == [i in (3, 4, 5, 6) for i in range(10)]


def test_prompt_more_important_is_the_soft_injection(controlnet):
    balanced = ControlNetResiduals(controlnet, _map(), control_mode="Balanced")(_call())
    soft = ControlNetResiduals(controlnet, _map(), control_mode=1)(_call())
    scales = block_scales(5, 1.0, soft=True)
    assert scales[-1] == 1.0 and scales[0] == pytest.approx(0.825**4)
    for a, b, s in zip([*soft.down, soft.mid], [*balanced.down, balanced.mid], scales, strict=True):
        assert torch.allclose(a, b * s)


def test_controlnet_more_important_leaves_the_negative_rows_alone(controlnet):
    balanced = ControlNetResiduals(controlnet, _map())(_call(rows=3, uncond_rows=1))
    cond_only = ControlNetResiduals(controlnet, _map(), control_mode="ControlNet is more important")
    got = cond_only(_call(rows=3, uncond_rows=1))
    scales = block_scales(5, 1.0, soft=True)
    for a, b, s in zip([*got.down, got.mid], [*balanced.down, balanced.mid], scales, strict=True):
        assert (a[:1] == 0).all()
        assert torch.allclose(a[1:], b[1:] * s)
    # a call of the negative prompt alone (token counts differ: separate calls) gets zeros; the prompt's alone all
    assert all((r == 0).all() for r in cond_only(_call(rows=1, uncond_rows=1)).down)
    assert all(r.abs().max() > 0 for r in cond_only(_call(rows=1, uncond_rows=0)).down)


def test_the_map_is_made_once_per_size_the_calls_work_at(controlnet):
    unit = ControlNetResiduals(controlnet, _quadrants(50, 30), resize_mode="Just Resize")
    for size in (8, 8, 16, 8):
        unit(_call(size=size))
    assert sorted(unit._maps) == [(64, 64), (128, 128)]
    assert unit.calls == 4


def test_soft_in_hires_softens_only_the_second_pass(controlnet):
    plain = ControlNetResiduals(controlnet, _map())
    softened = ControlNetResiduals(controlnet, _map(), soft_in_hires=True, guidance_start=0.5)
    assert softened(_call(size=8, step=0)) is None  # outside its steps, but the first pass's size is known now
    first, hires = softened(_call(size=8, step=5)), softened(_call(size=16, step=5))
    assert torch.equal(first.mid, plain(_call(size=8, step=5)).mid)
    expected = plain(_call(size=16, step=5))
    assert torch.allclose(hires.down[0], expected.down[0] * 0.825**4) and torch.equal(hires.mid, expected.mid)


def test_bad_unit_settings_are_refused(controlnet):
    with pytest.raises(InvalidRequestError, match="guidance_end must be between 0 and 1"):
        ControlNetResiduals(controlnet, _map(), guidance_end=1.5)
    with pytest.raises(InvalidRequestError, match="finite"):
        ControlNetResiduals(controlnet, _map(), weight=float("nan"))
    with pytest.raises(
        InvalidRequestError, match="control_mode 'Prompt first' is not accepted; send one of 'Balanced'"
    ):
        control_mode("Prompt first")
    assert control_mode(2) is ControlMode.CONTROLNET


def test_a_controlnet_for_another_base_model_is_refused_by_name():
    unet = tiny_components("sd1")["unet"]
    check_fits(tiny_controlnet("sd1"), unet, "canny")
    with pytest.raises(InvalidRequestError, match="ControlNet model xl_canny does not fit the checkpoint"):
        check_fits(tiny_controlnet("sdxl"), unet, "xl_canny")


def test_sdxl_unit_uses_the_added_embeddings():
    controlnet = tiny_controlnet("sdxl")
    unet = tiny_components("sdxl")["unet"]
    call = _call()
    call.encoder_hidden_states = torch.randn(2, 7, unet.config.cross_attention_dim)
    pooled = unet.config.projection_class_embeddings_input_dim - 6 * 256
    call.added_cond_kwargs = {"text_embeds": torch.randn(2, pooled), "time_ids": torch.rand(2, 6) * 64}
    got = ControlNetResiduals(controlnet, _map())(call)
    assert len(got.down) == 6
    # the residuals fit the UNet's skip connections
    out = unet(
        call.sample, call.timestep, encoder_hidden_states=call.encoder_hidden_states,
        added_cond_kwargs=call.added_cond_kwargs, down_block_additional_residuals=got.down,
        mid_block_additional_residual=got.mid,
    ).sample  # fmt: skip
    assert out.shape == call.sample.shape


# --- which rows the Denoiser marks as the negative prompt's -------------------------------------------------------


@pytest.mark.parametrize(
    "uncond_tokens,cfg,expected",
    [
        (77, 7.0, [(4, 2)]),  # one batched call: the negative prompt's 2 rows first
        (154, 7.0, [(2, 2), (2, 0)]),  # token counts differ: its own call first, then the prompt's
        (77, 1.0, [(2, 0)]),  # CFG 1 skips the negative prompt
    ],
)
def test_the_denoiser_tells_contributors_the_negative_prompts_rows(uncond_tokens, cfg, expected):
    unet = tiny_components("sd1")["unet"]
    width = unet.config.cross_attention_dim
    seen = []
    denoiser = Denoiser(
        unet,
        TextConditioning(torch.randn(2, 77, width), torch.randn(2, uncond_tokens, width)),
        cfg_scale=cfg,
        prediction_type="epsilon",
        train_sigmas=training_sigmas({}),
        contributors=[lambda call: seen.append((call.sample.shape[0], call.uncond_rows))],
    )
    denoiser(torch.randn(2, 4, 8, 8), 3.0, step=0, total=4)
    assert seen == expected


def test_a_one_pixel_edge_map_shrunk_eight_times_keeps_its_line():
    # a canny map at 512 for a 64x64 generation: the line is 1/8 as bright after averaging; Otsu's level keeps it
    edges = np.zeros((512, 512, 3), np.uint8)
    edges[:, 200] = 255
    small = resize_map(edges, 64, 64, "Just Resize")
    assert set(np.unique(small)) == {0, 255}
    columns = np.flatnonzero(small[..., 0].max(axis=0))
    assert list(columns) == [25] and small[:, 25, 0].min() == 255
