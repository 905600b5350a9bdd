"""ControlNet's sampling-time modules on a served app (tiny SD1 checkpoint, a tiny ControlNet in lllyasviel's layout):
tile_colorfix(+sharp) corrects the denoised prediction toward the control image's low frequencies, reference_only
injects a reference image into the UNet's self-attention without a model. Pure parts are checked on tensors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

import webui
from sdui.controlnet import colorfix, reference
from sdui.controlnet.infotext import units_from_infotext
from sdui.controlnet.modes import ControlMode, HiresOption, ResizeMode
from sdui.controlnet.units import unit_from_dict
from sdui.core.denoiser import Denoiser, TextConditioning, UNetCall
from sdui.core.hooks import DenoisedParams, DenoiserParams, ProcessingHooks
from sdui.core.schedules import training_sigmas
from sdui.core.token_merging import self_attention_layers
from sdui.errors import InvalidRequestError
from sdui.infotext.parse import parse_infotext
from tests.fixtures.checkpoints import tiny_components
from tests.fixtures.controlnet import BASE, SIZE, b64, decoded, shapes_image, txt2img, write_controlnet
from tests.helpers import LOCAL, install_checkpoint, make_ctx

pytestmark = pytest.mark.filterwarnings("ignore:Should have")


def colour_blocks() -> Image.Image:
    """Large flat colours: what colorfix carries over are low frequencies."""
    image = Image.new("RGB", (SIZE, SIZE), (220, 40, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle((32, 0, 63, 63), fill=(30, 60, 230))
    draw.rectangle((0, 40, 63, 63), fill=(240, 220, 40))
    return image


class FinalLatents(ProcessingHooks):
    """Keeps each batch's final latents (what post_sample sees), to measure in the space colorfix works in."""

    def __init__(self):
        self.latents: list[torch.Tensor] = []

    def post_sample(self, run, batch, args):
        self.latents.append(args.samples.detach().float().clone())


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("cn-sampling")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_tiny_tile.safetensors")
    ctx = make_ctx(data, "--nowebui")
    recorder = FinalLatents()
    ctx.hooks.append(recorder)
    yield ctx, TestClient(webui.create_app(ctx), base_url=LOCAL), recorder
    ctx.jobs.shutdown()


def image_of(client, *units, **fields) -> np.ndarray:
    return decoded(txt2img(client, *units, **fields)["images"][0])


def tile(module: str = "tile_colorfix", image: Image.Image | None = None, **fields) -> dict:
    image = colour_blocks() if image is None else image
    return {"enabled": True, "module": module, "model": "control_tiny_tile", "image": b64(image), **fields}


def ref(image: Image.Image | None = None, **fields) -> dict:
    image = shapes_image() if image is None else image
    return {"enabled": True, "module": "reference_only", "model": "None", "image": b64(image), **fields}


# ---------------------------------------------------------------------------------------------- colorfix, pure
def test_box_blur_is_the_mean_of_the_neighbourhood_with_edges_replicated():
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    blurred = colorfix.box_blur(x, 1)
    assert blurred.shape == x.shape
    assert blurred[0, 0, 2, 2] == x[0, 0, 1:4, 1:4].mean()
    corner = torch.tensor([[0.0, 0, 1], [0, 0, 1], [5, 5, 6]]).mean()  # replicated row/column at the edge
    assert torch.isclose(blurred[0, 0, 0, 0], corner)
    assert torch.equal(colorfix.box_blur(x, 0), x)


def test_colorfix_keeps_the_details_and_takes_the_controls_low_frequencies():
    torch.manual_seed(0)
    x0, control = torch.randn(2, 4, 16, 16), torch.randn(1, 4, 16, 16) + 3.0
    fixed = colorfix.colorfix(x0, control, 3)
    assert torch.allclose(colorfix.box_blur(fixed, 3), colorfix.box_blur(control, 3).expand(2, -1, -1, -1), atol=0.6)
    assert torch.allclose(fixed - colorfix.box_blur(fixed, 3), x0 - colorfix.box_blur(x0, 3), atol=0.6)
    # weight 0 is the prediction itself; weight above 1 is held at 1
    assert torch.equal(colorfix.corrected(x0, control, k=3, weight=0.0, detail=None, uncond_rows=1), x0)
    full = colorfix.corrected(x0, control, k=3, weight=2.0, detail=None, uncond_rows=1)
    assert torch.allclose(full, fixed)


def test_sharp_changes_only_the_negative_prompts_rows():
    torch.manual_seed(1)
    x0, control = torch.randn(4, 4, 12, 12), torch.randn(1, 4, 12, 12)
    plain = colorfix.corrected(x0, control, k=2, weight=1.0, detail=None, uncond_rows=2)
    sharp = colorfix.corrected(x0, control, k=2, weight=1.0, detail=0.5, uncond_rows=2)
    assert torch.equal(sharp[2:], plain[2:])
    assert not torch.allclose(sharp[:2], plain[:2])
    assert torch.allclose(sharp[:2], 0.5 * colorfix.box_blur(plain[:2], 2) + 0.5 * plain[:2])


@pytest.mark.parametrize("hr_option", [HiresOption.BOTH, HiresOption.LOW_RES_ONLY])
def test_colorfix_doubles_its_radius_in_hires_fixs_second_pass(hr_option):
    vae = tiny_components("sd1")["vae"]
    control = np.asarray(colour_blocks())
    fix = colorfix.ColorFix(
        control, vae, variation=3, sharpness=None, weight=1.0, resize_mode=ResizeMode.JUST_RESIZE, hr_option=hr_option
    )
    torch.manual_seed(3)
    for size, k in ((8, 3), (12, 6 if hr_option == HiresOption.BOTH else 3)):
        x0 = torch.randn(2, 4, size, size)
        fix.on_denoiser(DenoiserParams(x0[:1], None, torch.ones(1), 0, 1, None, None))  # CFG: 1 uncond + 1 cond
        params = DenoisedParams(x0.clone(), 0, 1)
        fix.on_denoised(params)
        expected = colorfix.colorfix(x0, fix.latent(size, size, x0.device), k)
        assert torch.allclose(params.x, expected, atol=1e-6), (size, k)


# ------------------------------------------------------------------------------------------- colorfix, served
def test_colorfix_at_weight_zero_equals_no_unit(served):
    _, client, _ = served
    baseline = image_of(client)
    assert np.array_equal(image_of(client, tile(weight=0)), baseline)
    assert np.array_equal(image_of(client, tile("tile_colorfix+sharp", weight=0)), baseline)


def test_colorfix_moves_the_low_frequencies_toward_the_control_images(served):
    ctx, client, recorder = served
    model = ctx.store.get()
    pixels = torch.from_numpy(np.asarray(colour_blocks(), dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        target = model.vae.encode(pixels).latent_dist.mean * model.vae.config.scaling_factor

    # measured on the final latents: the tiny VAE's random decoder draws no faithful colours, so the low
    # frequencies are compared where colorfix puts them (mean distance of the blurred latents)
    def distance_to_control(unit) -> tuple[float, np.ndarray]:
        image = image_of(client, unit)
        latent = recorder.latents[-1]
        return float((colorfix.box_blur(latent, 8) - colorfix.box_blur(target, 8)).abs().mean()), image

    plain, plain_image = distance_to_control(tile("tile_resample"))
    fixed, fixed_image = distance_to_control(tile(threshold_a=8))
    assert fixed < plain * 0.5, (fixed, plain)
    assert np.abs(fixed_image - plain_image).mean() > 1, "the correction must show in the picture"


def test_sharp_differs_from_colorfix_only_through_the_negative_prompts_rows(served):
    _, client, _ = served
    # CFG 1 runs no negative prompt: no rows for +sharp to change
    plain = image_of(client, tile(threshold_a=6), cfg_scale=1)
    sharp = image_of(client, tile("tile_colorfix+sharp", threshold_a=6, threshold_b=2), cfg_scale=1)
    assert np.array_equal(plain, sharp)
    plain = image_of(client, tile(threshold_a=6))
    sharp = image_of(client, tile("tile_colorfix+sharp", threshold_a=6, threshold_b=2))
    assert not np.array_equal(plain, sharp)


def test_colorfix_api_and_infotext(served):
    _, client, _ = served
    result = txt2img(client, tile("tile_colorfix+sharp", threshold_a=5, threshold_b=1.5))
    text = json.loads(result["info"])["infotexts"][0]
    assert 'ControlNet 0: "Module: tile_colorfix+sharp, Model: control_tiny_tile [' in text
    assert "Threshold A: 5.0, Threshold B: 1.5" in text


# ------------------------------------------------------------------------------------------ reference, pure
def test_style_fidelity_follows_the_control_mode_and_the_pass():
    assert reference.style_fidelity(0.5, ControlMode.BALANCED, sdxl=False, second_pass=False) == 0.5
    assert reference.style_fidelity(0.5, ControlMode.BALANCED, sdxl=True, second_pass=False) == 0.125
    assert reference.style_fidelity(7, ControlMode.BALANCED, sdxl=False, second_pass=False) == 1.0
    assert reference.style_fidelity(0.5, ControlMode.CONTROLNET, sdxl=False, second_pass=True) == 1.0
    assert reference.style_fidelity(0.5, ControlMode.PROMPT, sdxl=False, second_pass=False) == 0.0
    assert reference.style_fidelity(0.5, ControlMode.BALANCED, sdxl=False, second_pass=True) == 0.0


def test_noised_is_q_sample_at_the_rounded_training_step():
    acp = torch.linspace(0.99, 0.01, 1000, dtype=torch.float64)
    latent, noise = torch.ones(2, 4, 2, 2), torch.full((2, 4, 2, 2), 2.0)
    out = reference.noised(latent, noise, torch.tensor([10.4, 998.7]), acp)
    for row, t in ((0, 10), (1, 999)):
        a = float(acp[t])
        assert torch.allclose(out[row], torch.full((4, 2, 2), a**0.5 + 2 * (1 - a) ** 0.5))


def test_the_negative_prompts_rows_blend_plain_attention_by_the_fidelity():
    with_reference, plain = torch.ones(3, 5, 8), torch.zeros(1, 5, 8)
    out = reference.blended(with_reference, plain, 0.25)
    assert torch.equal(out[0], torch.full((5, 8), 0.75)) and torch.equal(out[1:], with_reference[1:])
    assert reference.blended(with_reference, None, 0.25) is with_reference


def test_layer_thresholds_take_the_widest_layers_first(served):
    ctx, _, _ = served
    layers = self_attention_layers(ctx.store.get().unet)
    thresholds = reference.layer_thresholds(layers)
    assert sorted(thresholds.values()) == [i / len(layers) for i in range(len(layers))]
    widest = max(layer.to_q.in_features for layer in layers)
    assert all(layer.to_q.in_features == widest for layer in layers if thresholds[layer] == 0)


def test_adain_moves_each_rows_channels_to_the_kept_statistics():
    torch.manual_seed(2)
    x, reference_rows = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6) * 3 + 5
    mean, var = reference.channel_stats(reference_rows)
    moved = reference.adain(x, mean, var)
    moved_mean, moved_var = reference.channel_stats(moved)
    assert torch.allclose(moved_mean, mean, atol=1e-5) and torch.allclose(moved_var, var, atol=1e-4)


def test_adain_blocks_are_the_extensions_ldm_blocks_on_an_sd1_shaped_unet():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
        layers_per_block=2,
        sample_size=8,
    )
    blocks = reference.adain_blocks(unet)
    down, up = unet.down_blocks, unet.up_blocks
    expected = [unet.mid_block, down[1].attentions[0], down[1].attentions[1], down[2].attentions[0]]
    expected += [down[2].attentions[1], down[3].resnets[0], down[3].resnets[1]]
    expected += [up[0].resnets[0], up[0].resnets[1], up[0].upsamplers[0], up[1].attentions[0]]
    expected += [up[1].attentions[1], up[1].upsamplers[0], up[2].attentions[0], up[2].attentions[1]]
    assert [module for module, _ in blocks] == expected
    thresholds = [t for _, t in blocks]
    assert thresholds[:7] == pytest.approx([0, 2, 2 * 5 / 6, 2 * 4 / 6, 1, 2 * 2 / 6, 2 / 6])
    assert thresholds[7:] == pytest.approx([2 * w / 8 for w in range(8)])


# --------------------------------------------------------------------------------------- reference, served
def test_model_free_units_need_no_model():
    unit = unit_from_dict({"module": "reference_only", "model": "None", "image": b64(shapes_image())})
    assert unit is not None and not unit.uses_model
    with pytest.raises(InvalidRequestError, match="no model"):
        unit_from_dict({"module": "canny", "model": "None", "image": b64(shapes_image())})


def test_reference_only_steers_the_image_and_weight_zero_equals_no_unit(served):
    ctx, client, _ = served
    unet = ctx.store.get().unet
    own = dict(unet.attn_processors)
    baseline = image_of(client)
    with_reference = image_of(client, ref())
    assert np.abs(with_reference - baseline).mean() > 0.5, "the reference must visibly steer the image (1.1 levels)"
    assert all(unet.attn_processors[name] is processor for name, processor in own.items()), "processors restored"
    assert np.array_equal(image_of(client), baseline), "the next job equals the baseline bit for bit"
    assert np.array_equal(image_of(client, ref(weight=0)), baseline)
    assert np.array_equal(image_of(client, ref(guidance_start=1.0, guidance_end=1.0)), baseline)


def test_a_reference_of_the_image_itself_differs_from_another_reference(served):
    _, client, _ = served
    baseline = Image.fromarray(image_of(client).astype(np.uint8))
    itself = image_of(client, ref(baseline))
    other = image_of(client, ref(colour_blocks()))
    # small in the picture: the tiny VAE's latents are ~0.08 wide, so the noised reference is mostly its noise
    # (the prediction-level test below measures the content's share)
    assert not np.array_equal(itself, other)
    # the same request twice gives the same pixels (the reference noise is seeded by the job)
    assert np.array_equal(itself, image_of(client, ref(baseline)))


def test_the_reference_images_content_reaches_the_prediction(served):
    ctx, _, _ = served
    model = ctx.store.get()
    sigmas = training_sigmas(model.scheduler_config)
    generator = torch.Generator().manual_seed(0)
    width = model.unet.config.cross_attention_dim
    cond, uncond = torch.randn(1, 77, width, generator=generator), torch.randn(1, 77, width, generator=generator)
    x = torch.randn(1, 4, 8, 8, generator=generator) * 0.1  # late in sampling, where the reference shows most

    def predict(image: Image.Image | None) -> torch.Tensor:
        units = []
        if image is not None:
            unit = reference.ReferenceUnit(
                module="reference_only",
                image=np.asarray(image),
                weight=1.0,
                threshold_a=0.5,
                control_mode=ControlMode.BALANCED,
                guidance_start=0.0,
                guidance_end=1.0,
                resize_mode=ResizeMode.CROP_AND_RESIZE,
            )
            acp = 1.0 / (1.0 + sigmas.double() ** 2)
            units.append(reference.ReferenceInjection([unit], model, seed=0, alphas_cumprod=acp))
        denoiser = Denoiser(
            model.unet,
            TextConditioning(cond, uncond),
            cfg_scale=7,
            prediction_type=model.prediction_type,
            train_sigmas=sigmas,
            hooks=units[0] if units else None,
            contributors=units,
        )
        return denoiser(x, torch.tensor(0.1), step=0, total=1)

    shapes, blocks, plain = predict(shapes_image()), predict(colour_blocks()), predict(None)
    change = float((shapes - plain).abs().mean())
    assert change > 0
    assert float((shapes - blocks).abs().mean()) > 0.25 * change, "which image is the reference must matter"


def test_style_fidelity_changes_the_image_through_the_negative_prompt(served):
    _, client, _ = served
    loose = image_of(client, ref(threshold_a=0.0))
    faithful = image_of(client, ref(threshold_a=1.0))
    assert not np.array_equal(loose, faithful)
    # without a negative prompt's rows (CFG 1) the fidelity has nothing to blend
    assert np.array_equal(image_of(client, ref(threshold_a=0.0), cfg_scale=1), image_of(client, ref(), cfg_scale=1))


def test_reference_api_infotext_and_refusals(served):
    _, client, _ = served
    result = txt2img(client, ref(threshold_a=0.7))
    text = json.loads(result["info"])["infotexts"][0]
    assert 'ControlNet 0: "Module: reference_only, Model: None, Weight: 1.0' in text
    assert "Threshold A: 0.7" in text
    pasted = units_from_infotext(parse_infotext(text))[0]  # pasting restores the unit without a model
    assert (pasted.module, pasted.model, pasted.threshold_a) == ("reference_only", "None", 0.7)

    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [ref(module="revision_clipvision")]}}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422 and "revision_clipvision is not built yet" in response.text


def hook_count(unet) -> int:
    return sum(len(module._forward_hooks) for module in unet.modules())


def test_reference_adain_steers_the_image_and_leaves_the_unet_as_it_was(served):
    ctx, client, _ = served
    unet = ctx.store.get().unet
    own, hooks = dict(unet.attn_processors), hook_count(unet)
    baseline = image_of(client)
    only = image_of(client, ref())
    adain = image_of(client, ref(module="reference_adain"))
    both = image_of(client, ref(module="reference_adain+attn"))
    assert np.abs(adain - baseline).mean() > 1, "the reference's statistics must visibly steer the image"
    assert not np.array_equal(both, adain) and not np.array_equal(both, only)
    assert hook_count(unet) == hooks and all(unet.attn_processors[k] is p for k, p in own.items())
    assert np.array_equal(image_of(client), baseline)
    assert np.array_equal(image_of(client, ref(module="reference_adain", weight=0)), baseline)


def test_what_a_failed_step_left_on_the_unet_is_gone_in_the_next_job(served):
    ctx, client, _ = served
    model = ctx.store.get()
    unet = model.unet
    own, hooks = dict(unet.attn_processors), hook_count(unet)
    baseline = image_of(client)
    # a reference step that never reaches on_denoised (the job failed in the UNet call after the reference pass)
    unit = reference.ReferenceUnit(
        "reference_adain+attn", np.asarray(shapes_image()), 1.0, 0.5, ControlMode.BALANCED, 0, 1, ResizeMode.JUST_RESIZE
    )
    sigmas = training_sigmas(model.scheduler_config)
    injection = reference.ReferenceInjection([unit], model, seed=0, alphas_cumprod=1 / (1 + sigmas.double() ** 2))
    width = unet.config.cross_attention_dim
    call = UNetCall(torch.zeros(2, 4, 8, 8), torch.tensor(500.0), torch.zeros(2, 77, width), None, 0, 3, 1)
    injection(call)
    assert hook_count(unet) > hooks and any(unet.attn_processors[k] is not p for k, p in own.items())
    assert np.array_equal(image_of(client), baseline)
    assert hook_count(unet) == hooks and all(unet.attn_processors[k] is p for k, p in own.items())


def test_several_reference_units_write_into_the_same_banks(served):
    _, client, _ = served
    first = image_of(client, ref())
    second = image_of(client, ref(colour_blocks(), module="reference_adain"))
    together = image_of(client, ref(), ref(colour_blocks(), module="reference_adain"))
    assert not np.array_equal(together, first) and not np.array_equal(together, second)
    text = json.loads(txt2img(client, ref(), ref(module="reference_adain+attn"))["info"])["infotexts"][0]
    assert "ControlNet 0: \"Module: reference_only" in text and "ControlNet 1: \"Module: reference_adain+attn" in text


def test_reference_with_a_tile_colorfix_unit_and_hires_fix(served):
    ctx, client, _ = served
    unet = ctx.store.get().unet
    own = dict(unet.attn_processors)
    hires = dict(enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.6, hr_second_pass_steps=2)
    image = image_of(client, ref(), tile(threshold_a=4), **hires)
    assert image.shape == (96, 96, 3)
    assert all(unet.attn_processors[name] is processor for name, processor in own.items())
