"""The bfloat16 CPU path (channels-last UNet and VAE) with the features that touch the UNet, through the API on a
tiny checkpoint: a LoRA on a 3x3 conv, a ControlNet unit, token merging and hires fix in one job. Each run is
finite, a picture, repeatable, and the LoRA and ControlNet change it; a LoRA's merged weights keep the loaded
channels-last layout (in the default layout the merged layers would run at the slower speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open
from safetensors.torch import save_file

import webui
from tests.fixtures.controlnet import BASE, b64, decoded, shapes_image, write_controlnet
from tests.helpers import LOCAL, install_checkpoint, make_ctx

pytestmark = pytest.mark.filterwarnings("ignore:Should have")
CONV = "output_blocks.0.0.in_layers.2"  # diffusers' up_blocks[0].resnets[0].conv1


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("bf16-data")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_tiny_canny.safetensors")
    with safe_open(str(tiny_sd1_checkpoint), "pt") as weights:  # a 3x3 conv of the UNet, kohya's LDM name
        out_channels, in_channels = weights.get_slice(f"model.diffusion_model.{CONV}.weight").get_shape()[:2]
    g = torch.Generator().manual_seed(0)
    name = "lora_unet_" + CONV.replace(".", "_")
    (data / "models" / "Lora").mkdir(parents=True)
    save_file(
        {
            f"{name}.lora_down.weight": torch.randn(2, in_channels, 3, 3, generator=g) * 0.3,
            f"{name}.lora_up.weight": torch.randn(out_channels, 2, 1, 1, generator=g) * 0.3,
            f"{name}.alpha": torch.tensor(1.0),
        },
        str(data / "models" / "Lora" / "conv.safetensors"),
    )
    ctx = make_ctx(data, "--nowebui", "--cpu-precision", "bf16")
    yield ctx, TestClient(webui.create_app(ctx), base_url=LOCAL)
    ctx.jobs.shutdown()


def run(client, **fields) -> np.ndarray:
    response = client.post("/sdapi/v1/txt2img", json={**BASE, **fields})
    assert response.status_code == 200, response.text
    return decoded(response.json()["images"][0])


def test_every_unet_feature_runs_in_bf16_channels_last(served):
    ctx, client = served
    unit = {"enabled": True, "module": "canny", "model": "control_tiny_canny", "image": b64(shapes_image())}
    everything = dict(
        prompt=BASE["prompt"] + " <lora:conv:1>",
        alwayson_scripts={"controlnet": {"args": [unit]}},
        override_settings={"token_merging_ratio": 0.5, "token_merging_ratio_hr": 0.5},
        enable_hr=True,
        hr_scale=1.5,
        hr_upscaler="Latent",
        hr_second_pass_steps=2,
        denoising_strength=0.5,
    )
    first, again = run(client, **everything), run(client, **everything)
    model = ctx.store.current
    assert model.unet.dtype == torch.bfloat16
    conv = model.unet.up_blocks[0].resnets[0].conv1.weight  # the LoRA's layer, merged in the loaded layout
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert first.shape == (96, 96, 3) and first.std() > 10  # a picture, hires-fixed to 1.5x
    assert np.array_equal(first, again)  # same seed, same image
    # each feature acts: without the LoRA or without the ControlNet the image differs
    without_lora = dict(everything, prompt=BASE["prompt"])
    without_controlnet = {k: v for k, v in everything.items() if k != "alwayson_scripts"}
    for other in (without_lora, without_controlnet):
        assert np.abs(run(client, **other) - first).mean() > 0.5
