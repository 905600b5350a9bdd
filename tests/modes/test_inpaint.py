"""Inpaint and outpaint through the one core: fidelity with A1111's loop (its blending of the kept area, its
inpainting-model conditioning), and the promise users care about most: pixels outside the mask come back exactly
as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging import masking
from sdui.imaging import vae as vae_io
from sdui.imaging.image_ops import image_to_tensor
from sdui.models.loading import load_sd_model
from sdui.request import MASKED_CONTENT, Img2ImgRequest
from sdui.settings.snapshot import Settings
from tests.fixtures import a1111_loop
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.diffusers_reference import decode
from tests.helpers import CPU32, process_with_latents

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint")
    return {
        variant: load_sd_model(build_tiny_checkpoint(root / f"{variant}.safetensors", variant=variant), CPU32)
        for variant in ("base", "inpaint")
    }


def picture(w=64, h=64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, 255 - (x + y) * 127 // (w + h)], -1).astype(np.uint8))


def box_mask(w=64, h=64, box=(16, 16, 48, 40)) -> Image.Image:
    arr = np.zeros((h, w), np.uint8)
    arr[box[1] : box[3], box[0] : box[2]] = 255
    return Image.fromarray(arr)


def request(**fields) -> Img2ImgRequest:
    base = dict(
        prompt="a red door",
        negative_prompt="blurry",
        seed=11,
        steps=8,
        cfg_scale=6.0,
        width=64,
        height=64,
        sampler_name="Euler",
        init_images=[picture()],
        mask=box_mask(),
        denoising_strength=0.75,
        mask_blur_x=0,
        mask_blur_y=0,
        inpainting_fill=1,
    )
    base.update(fields)
    return Img2ImgRequest(**base)


def a1111_keep_mask(mask: Image.Image, h: int, w: int) -> torch.Tensor:
    """A1111's p.mask for the blend: the mask resized to the latent size (PIL's default filter), rounded, inverted."""
    latmask = np.asarray(mask.convert("RGB").resize((w, h)), dtype=np.float32)[..., 0] / 255
    return torch.from_numpy(1.0 - np.around(latmask))[None, None]


def a1111_conditioning(model, image: Image.Image, mask: Image.Image) -> torch.Tensor:
    """An inpainting model's extra channels as A1111 builds them: the rounded mask at latent size and the latents
    of the image with the masked area blanked (A1111's inpainting_image_conditioning, mask weight 1)."""
    pixels = image_to_tensor(image)
    hard = (torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255)[None, None]).round()
    masked = vae_io.encode(model.vae, pixels * (1 - hard))
    return torch.cat([torch.nn.functional.interpolate(hard, size=masked.shape[-2:]), masked], 1)


@pytest.mark.slow  # fidelity: equality with A1111's loop
@pytest.mark.parametrize("variant", ["base", "inpaint"])
@pytest.mark.parametrize(
    "sampler,schedule",
    [("Euler", "Automatic"), ("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("DDIM", "Automatic")],
)
def test_inpainting_equals_a1111s_loop(models, variant, sampler, schedule):
    """A1111 blends the kept area into the denoised prediction at every step (into x before the model for DDIM),
    for inpainting checkpoints too, and once more after sampling."""
    model = models[variant]
    req = request(sampler_name=sampler, scheduler=schedule)
    ours, ours_latents = process_with_latents(req, model, policy=CPU32, settings=OPTIONS)
    init = vae_io.encode(model.vae, image_to_tensor(picture()))
    keep = a1111_keep_mask(box_mask(), *init.shape[-2:])
    extra = a1111_conditioning(model, picture(), box_mask()) if variant == "inpaint" else None
    theirs = a1111_loop.reference(
        model, req, init_latents=init, denoising=req.denoising_strength, keep_mask=keep, extra_channels=extra
    )
    theirs = theirs * (1 - keep) + init * keep
    scale = theirs.abs().max().item()
    assert (ours_latents - theirs).abs().max().item() <= 1e-4 * scale
    assert torch.equal(ours_latents * keep, init * keep)  # the kept area is the init latents exactly
    before_paste = vae_io.to_pil(vae_io.decode(model.vae, ours_latents))[0]
    assert np.abs(np.asarray(before_paste, dtype=int) - decode(model, theirs)).max() <= 1


@pytest.mark.parametrize("variant", ["base", "inpaint"])
@pytest.mark.parametrize("fill", [0, 1, 2, 3])
def test_pixels_outside_the_mask_are_unchanged(models, variant, fill):
    req = request(mask_blur_x=4, mask_blur_y=4, inpainting_fill=fill)
    result = process(req, models[variant], policy=CPU32, settings=OPTIONS)
    out, original = np.asarray(result.images[0]), np.asarray(picture())
    prepared = masking.prepare_mask(box_mask(), blur_x=4, blur_y=4).mask
    outside = np.asarray(masking.overlay_mask(prepared, only_masked=False)) == 0
    assert outside.sum() > 1000
    assert np.array_equal(out[outside], original[outside])
    inside = np.asarray(box_mask()) == 255
    assert np.abs(out[inside].astype(int) - original[inside].astype(int)).mean() > 5  # something was painted
    text = result.infotexts[0]
    assert "Mask blur: 4" in text and "Denoising strength: 0.75" in text
    assert ("Masked content: " + MASKED_CONTENT[fill] in text) == (fill != 1)


def test_only_masked_works_on_the_crop_and_pastes_into_the_full_image(models):
    big = picture(96, 80)
    mask = box_mask(96, 80, (60, 40, 76, 56))
    req = request(
        init_images=[big], mask=mask, inpaint_full_res=True, inpaint_full_res_padding=8, mask_blur_x=2, mask_blur_y=2
    )
    result = process(req, models["base"], policy=CPU32, settings=OPTIONS)
    out = np.asarray(result.images[0])
    assert out.shape == (80, 96, 3)  # the original's size, not the 64x64 work size
    region = masking.expand_to_aspect(
        masking.crop_region(masking.prepare_mask(mask, blur_x=2, blur_y=2).mask, 8), 64, 64, 96, 80
    )
    keep = np.ones((80, 96), bool)
    keep[region[1] : region[3], region[0] : region[2]] = False
    assert np.array_equal(out[keep], np.asarray(big)[keep])
    assert "Inpaint area: Only masked" in result.infotexts[0] and "Masked area padding: 8" in result.infotexts[0]


def test_inverted_mask_keeps_the_inside(models):
    result = process(request(inpainting_mask_invert=1), models["base"], policy=CPU32, settings=OPTIONS)
    inside = np.asarray(box_mask()) == 255
    inner = np.zeros_like(inside)
    inner[18:38, 18:46] = True  # well inside: blur 0, so the overlay is exact
    assert np.array_equal(np.asarray(result.images[0])[inner], np.asarray(picture())[inner])
    assert "Mask mode: Inpaint not masked" in result.infotexts[0]


def test_empty_mask_is_refused_with_a_hint(models, tmp_path):
    with pytest.raises(InvalidRequestError) as err:
        process(
            request(mask=Image.new("L", (64, 64), 0)), models["base"], policy=CPU32, settings=OPTIONS, data_dir=tmp_path
        )
    assert "mask is empty" in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_mask_of_another_size_is_resized(models):
    small_mask = box_mask(32, 32, (8, 8, 24, 20))
    result = process(request(mask=small_mask), models["base"], policy=CPU32, settings=OPTIONS)
    assert result.images[0].size == (64, 64)
    assert any("32x32" in note and "64x64" in note for note in result.notes), result.notes


def test_outpaint_keeps_the_original_region_exactly(models):
    canvas = masking.outpaint_canvas(picture(48, 64), left=0, right=16, up=0, down=0, fill="edge")
    assert canvas.image.size == (64, 64)
    req = request(
        init_images=[canvas.image],
        mask=canvas.mask,
        inpainting_fill=1,
        mask_blur_x=0,
        mask_blur_y=0,
        denoising_strength=0.8,
    )
    for variant in ("base", "inpaint"):
        out = np.asarray(process(req, models[variant], policy=CPU32, settings=OPTIONS).images[0])
        assert np.array_equal(out[:, :48], np.asarray(picture(48, 64)))
        assert not np.array_equal(out[:, 48:], np.asarray(canvas.image)[:, 48:])


def test_outpaint_of_an_odd_sized_image_keeps_it_exactly(models):
    from sdui.modes.outpaint import outpaint_request

    odd = picture(45, 59)
    req = outpaint_request(request(init_images=[odd], mask=None, mask_blur_x=0, mask_blur_y=0), left=8)
    assert (req.width, req.height) == (56, 64)  # 45+8 -> 56 (3 more on the left), 59 -> 64 (down)
    out = np.asarray(process(req, models["base"], policy=CPU32, settings=OPTIONS).images[0])
    assert np.array_equal(out[:59, 11:56], np.asarray(odd))
