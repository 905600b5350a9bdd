"""depth2img: an SD2 depth checkpoint through the one core, with the checkpoint's own MiDaS or an uploaded map."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionDepth2ImgPipeline
from PIL import Image

from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import image_to_tensor
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint, tiny_state_dict
from tests.fixtures.diffusers_reference import a1111_sigmas, euler_on_sigmas, img2img_strength, keep_latents
from tests.helpers import CPU32, process_with_latents

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    depth = load_sd_model(build_tiny_checkpoint(root / "depth.safetensors", arch="sd2", variant="depth"), CPU32)
    # the same model without its MiDaS weights, as some pruned depth checkpoints come
    from safetensors.torch import save_file

    sd = {k: v for k, v in tiny_state_dict("sd2", "depth").items() if not k.startswith("depth_model.")}
    save_file(sd, str(root / "no-midas.safetensors"))
    bare = load_sd_model(root / "no-midas.safetensors", CPU32)
    plain = load_sd_model(build_tiny_checkpoint(root / "sd2.safetensors", arch="sd2"), CPU32)
    return {"depth": depth, "bare": bare, "plain": plain}


def picture() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(np.stack([x * 4, y * 4, (x * y) % 256], -1).astype(np.uint8))


def depth_picture() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(((x + y) * 2).astype(np.uint8))


def mean_encoding(vae):
    """diffusers' depth pipeline encodes pixels itself by sampling the VAE posterior; ours takes its mean. Patched on
    the reference's side only, this gives it the same init latents (the other img2img pipelines take ready latents)."""
    original = vae.encode

    def encode(x, return_dict=True):
        out = original(x)
        out.latent_dist.sample = lambda generator=None: out.latent_dist.mean
        return out

    return mock.patch.object(vae, "encode", encode)


@pytest.mark.slow  # fidelity: equality with a diffusers pipeline
def test_depth2img_equals_diffusers_given_the_same_depth_map(models):
    model = models["depth"]
    req = Img2ImgRequest(
        prompt="a stone bridge",
        negative_prompt="",
        seed=5,
        steps=8,
        cfg_scale=6.0,
        width=64,
        height=64,
        sampler_name="Euler",
        init_images=[picture()],
        depth_map=depth_picture(),
        denoising_strength=0.75,
    )
    ours, ours_latents = process_with_latents(req, model, policy=CPU32, settings=OPTIONS)

    pipe = StableDiffusionDepth2ImgPipeline(
        vae=model.vae,
        unet=model.unet,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        scheduler=euler_on_sigmas(model, a1111_sigmas(model, req.steps)),
        depth_estimator=None,
        feature_extractor=None,
    )
    captured = {}
    raw_depth = torch.from_numpy(np.asarray(depth_picture(), dtype=np.float32) / 255.0)[None]
    with mean_encoding(model.vae):
        pipe(
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            image=image_to_tensor(picture()),
            depth_map=raw_depth,
            strength=img2img_strength(req.steps, req.denoising_strength),
            guidance_scale=req.cfg_scale,
            generator=[torch.Generator().manual_seed(req.seed)],
            callback_on_step_end=keep_latents(captured),
            num_inference_steps=req.steps,
        )
    scale = captured["latents"].abs().max().item()
    assert (ours_latents - captured["latents"]).abs().max().item() <= 1e-4 * scale
    shown = ours.depth_maps[0]
    assert shown.size == (8, 8) and np.asarray(shown).min() == 0 and np.asarray(shown).max() == 255


def test_the_checkpoints_own_midas_estimates_depth(models):
    req = Img2ImgRequest(
        prompt="x",
        seed=1,
        steps=4,
        width=64,
        height=64,
        sampler_name="Euler",
        init_images=[picture()],
        denoising_strength=0.6,
    )
    first = process(req, models["depth"], policy=CPU32, settings=OPTIONS)
    depth = np.asarray(first.depth_maps[0])
    assert depth.min() == 0 and depth.max() == 255  # a real estimate, normalised over the image
    uploaded = process(
        Img2ImgRequest(**{**req.__dict__, "depth_map": depth_picture()}),
        models["depth"],
        policy=CPU32,
        settings=OPTIONS,
    )
    assert not np.array_equal(np.asarray(first.images[0]), np.asarray(uploaded.images[0]))


def test_clear_messages_when_depth_is_missing_or_misused(models):
    base = dict(prompt="x", seed=1, steps=2, width=64, height=64, init_images=[picture()])
    with pytest.raises(InvalidRequestError) as err:
        process(Img2ImgRequest(**base), models["bare"], policy=CPU32, settings=OPTIONS)
    assert "carries no depth estimator" in err.value.message and "depth_map" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        process(Img2ImgRequest(depth_map=depth_picture(), **base), models["plain"], policy=CPU32, settings=OPTIONS)
    assert "not a depth model" in err.value.message and "512-depth-ema" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        process(
            GenerationRequest(prompt="x", steps=2, width=64, height=64), models["depth"], policy=CPU32, settings=OPTIONS
        )
    assert "depth checkpoint" in err.value.message
    # an uploaded map makes a checkpoint without MiDaS usable
    ok = process(Img2ImgRequest(depth_map=depth_picture(), **base), models["bare"], policy=CPU32, settings=OPTIONS)
    assert ok.images[0].size == (64, 64)


def test_depth_checkpoint_without_midas_uses_a_dpt_folder_under_models_depth(tmp_path):
    from safetensors.torch import save_file

    from tests.fixtures.midas_ldm import tiny_dpt

    sd = {k: v for k, v in tiny_state_dict("sd2", "depth").items() if not k.startswith("depth_model.")}
    save_file(sd, str(tmp_path / "no-midas.safetensors"))
    depth_dir = tmp_path / "models" / "depth"
    tiny_dpt().save_pretrained(depth_dir / "tiny-dpt")
    model = load_sd_model(tmp_path / "no-midas.safetensors", CPU32, depth_dir=depth_dir)
    assert model.depth_estimator is not None
    result = process(
        Img2ImgRequest(prompt="x", seed=1, steps=2, width=64, height=64, init_images=[picture()]),
        model,
        policy=CPU32,
        settings=OPTIONS,
    )
    assert np.asarray(result.depth_maps[0]).max() == 255
    assert load_sd_model(tmp_path / "no-midas.safetensors", CPU32, depth_dir=tmp_path / "empty").depth_estimator is None
