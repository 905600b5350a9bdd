"""Model upscaler files through the API: listed by /sdapi/v1/upscalers, used by the extras routes and by hires fix."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from tests.fixtures.upscalers import tiny_esrgan, write_tiny_esrgan
from tests.helpers import decode_png, install_checkpoint


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_listed_with_their_files_and_used_by_extras(make_client, data_dir):
    import torch

    write_tiny_esrgan(data_dir / "models" / "RealESRGAN" / "RealESRGAN_x2plus.pth", scale=2)
    _, client = make_client(data_dir)
    listed = {u["name"]: u for u in client.get("/sdapi/v1/upscalers").json()}
    entry = listed["R-ESRGAN 2x+"]
    assert entry["model_name"] == "RealESRGAN_x2plus" and entry["model_path"].endswith("RealESRGAN_x2plus.pth")
    assert entry["scale"] == 2 and list(listed)[:3] == ["None", "Lanczos", "Nearest"]

    source = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    body = client.post(
        "/sdapi/v1/extra-single-image",
        json={"image": _b64(source), "upscaler_1": "R-ESRGAN 2x+", "upscaling_resize": 2},
    ).json()
    result = decode_png(body["image"])
    x = torch.from_numpy(np.asarray(source, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = (tiny_esrgan(2)(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round()
    assert result.size == (64, 48)
    assert np.abs(np.asarray(result).astype(float) - expected).max() <= 1
    assert result.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 2x+"


def test_hires_fix_with_a_model_upscaler(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    write_tiny_esrgan(data_dir / "models" / "ESRGAN" / "2x_Tiny.pth", scale=2)
    _, client = make_client(data_dir)
    request = {
        "prompt": "a cat",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 3,
        "enable_hr": True,
        "hr_scale": 2,
        "denoising_strength": 0.5,
        "do_not_save_samples": True,
        "do_not_save_grid": True,
    }
    by_model = client.post("/sdapi/v1/txt2img", json={**request, "hr_upscaler": "2x_tiny"})
    by_lanczos = client.post("/sdapi/v1/txt2img", json={**request, "hr_upscaler": "Lanczos"})
    assert by_model.status_code == by_lanczos.status_code == 200, by_model.text
    model_image, lanczos_image = (decode_png(r.json()["images"][0]) for r in (by_model, by_lanczos))
    assert model_image.size == lanczos_image.size == (128, 128)
    assert np.abs(np.asarray(model_image).astype(int) - np.asarray(lanczos_image)).max() > 0
    assert "Hires upscaler: 2x_Tiny" in by_model.json()["info"]
