"""The A1111 routes beyond generation: listings in A1111's shapes (real files where we find them, empty lists where
nothing of the kind exists), extras upscaling, interrogation and training refusals, and the server-stop routes."""

from __future__ import annotations

import base64
import io
import json
import struct

import pytest
from PIL import Image

from tests.helpers import BUILT_IN_SCRIPTS, decode_png


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_safetensors(path, metadata: dict) -> None:
    header = json.dumps({"__metadata__": metadata, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0\0\0\0")


def test_listings_have_a1111_shapes_and_show_dropped_files(make_client, data_dir):
    models = data_dir / "models"
    write_safetensors(models / "VAE" / "sub" / "vae-ft-mse.safetensors", {})
    write_safetensors(models / "Lora" / "detail.safetensors", {"ss_output_name": "add_detail", "ss_network_dim": "16"})
    (models / "hypernetworks").mkdir(parents=True)
    (models / "hypernetworks" / "anime.pt").write_bytes(b"x")
    (data_dir / "styles.csv").write_text(
        'name,prompt,negative_prompt\n"Cinematic","{prompt}, film grain","blurry"\n', encoding="utf-8"
    )
    _, client = make_client(data_dir)

    upscalers = client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in upscalers][:3] == ["None", "Lanczos", "Nearest"]
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    assert {"name": "Latent (bicubic antialiased)"} in client.get("/sdapi/v1/latent-upscale-modes").json()
    assert client.get("/sdapi/v1/sd-vae").json() == [
        {"model_name": "sub/vae-ft-mse.safetensors", "filename": str(models / "VAE" / "sub" / "vae-ft-mse.safetensors")}
    ]
    lora = client.get("/sdapi/v1/loras").json()
    assert lora == [
        {
            "name": "detail",
            "alias": "add_detail",
            "path": str(models / "Lora" / "detail.safetensors"),
            "metadata": {"ss_output_name": "add_detail", "ss_network_dim": "16"},
        }
    ]
    assert client.get("/sdapi/v1/hypernetworks").json() == [
        {"name": "anime", "path": str(models / "hypernetworks" / "anime.pt")}
    ]
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "Cinematic", "prompt": "{prompt}, film grain", "negative_prompt": "blurry"}
    ]
    assert client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
    for route in ("face-restorers", "realesrgan-models", "sd-modules", "extensions"):
        assert client.get(f"/sdapi/v1/{route}").json() == [], route
    assert client.get("/sdapi/v1/scripts").json() == BUILT_IN_SCRIPTS
    infos = client.get("/sdapi/v1/script-info").json()
    assert [(s["name"], s["is_img2img"]) for s in infos] == [
        ("prompt matrix", False),
        ("prompts from file or textbox", False),
        ("x/y/z plot", False),
        ("loopback", True),
        ("prompt matrix", True),
        ("prompts from file or textbox", True),
        ("sd upscale", True),
        ("x/y/z plot", True),
        ("controlnet", False),  # built in, listed as the ControlNet extension's always-on script
        ("controlnet", True),
    ]
    script = infos[6]
    assert {k: script[k] for k in ("name", "is_alwayson", "is_img2img")} == {
        "name": "sd upscale",
        "is_alwayson": False,
        "is_img2img": True,
    }
    assert [arg["label"] for arg in script["args"]] == ["Info", "Tile overlap", "Upscaler", "Scale Factor"]
    for arg in [a for info in infos for a in info["args"]]:  # A1111's ScriptArg fields
        assert set(arg) == {"label", "value", "minimum", "maximum", "step", "choices"}
    for route in ("refresh-embeddings", "refresh-vae", "refresh-loras"):
        response = client.post(f"/sdapi/v1/{route}")
        assert response.status_code == 200 and response.json() is None, route
    memory = client.get("/sdapi/v1/memory").json()
    assert set(memory["ram"]) == {"free", "used", "total"} and memory["ram"]["used"] > 0
    assert "error" in memory["cuda"] or "system" in memory["cuda"]


def test_extra_single_image_upscales_by_a_factor_or_to_a_size(make_client, data_dir):
    _, client = make_client(data_dir)
    source = Image.new("RGB", (32, 16), (10, 200, 30))
    response = client.post(
        "/sdapi/v1/extra-single-image", json={"image": b64(source), "upscaler_1": "Lanczos", "upscaling_resize": 2}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    image = decode_png(body["image"])
    assert image.size == (64, 32) and image.getpixel((30, 10)) == (10, 200, 30)
    assert "Postprocess upscale by: 2" in body["html_info"] and "Postprocess upscaler: Lanczos" in body["html_info"]
    assert image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"

    to_size = client.post(
        "/sdapi/v1/extra-single-image",
        json={
            "image": b64(source),
            "upscaler_1": "Nearest",
            "resize_mode": 1,
            "upscaling_resize_w": 40,
            "upscaling_resize_h": 40,
            "upscaling_crop": True,
        },
    ).json()
    assert decode_png(to_size["image"]).size == (40, 40) and "Postprocess crop to: 40x40" in to_size["html_info"]
    unchanged = client.post("/sdapi/v1/extra-single-image", json={"image": b64(source)}).json()
    assert decode_png(unchanged["image"]).size == (32, 16) and unchanged["html_info"] == ""

    batch = client.post(
        "/sdapi/v1/extra-batch-images",
        json={
            "imageList": [{"data": b64(source), "name": "a.png"}, {"data": b64(source), "name": "b.png"}],
            "upscaler_1": "Lanczos",
            "upscaling_resize": 1.5,
        },
    )
    assert batch.status_code == 200 and [decode_png(i).size for i in batch.json()["images"]] == [(48, 24)] * 2


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"upscaler_1": "R-ESRGAN 4x+"}, 422, "is not an upscaler here; choose one of: None, Lanczos, Nearest"),
        ({"upscaler_1": "Lanczos", "upscaling_resize": 1000}, 422, "larger than"),
        ({"upscaler_1": "Lanczos", "upscaling_resize": float("nan")}, 422, "upscaling_resize must be more than 0"),
        ({"upscaler_1": "Lanczos", "extras_upscaler_2_visibility": 2}, 422, "between 0 and 1"),
        ({"gfpgan_visibility": 1}, 422, "gfpgan_visibility: face restoration with GFPGAN is not available"),
        ({"image": ""}, 404, "Image not found"),
        ({"image": "not base64!"}, 422, "Invalid encoded image"),
    ],
)
def test_extras_mistakes_are_4xx(make_client, data_dir, fields, status, message):
    _, client = make_client(data_dir)
    body = {"image": b64(Image.new("RGB", (8, 8))), **fields}
    response = client.post(
        "/sdapi/v1/extra-single-image", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == status and message in response.json()["detail"], response.text


def test_interrogate_and_training_say_what_is_missing(make_client, data_dir):
    _, client = make_client(data_dir)
    image = b64(Image.new("RGB", (8, 8)))
    assert client.post("/sdapi/v1/interrogate", json={"image": image, "model": "nope"}).status_code == 404
    response = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
    assert response.status_code == 400 and "model_base_caption_capfilt_large.pth" in response.json()["detail"]
    deepbooru = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "deepdanbooru"})
    assert "model-resnet_custom_v3.pt" in deepbooru.json()["detail"]
    for route in ("create/embedding", "create/hypernetwork", "train/embedding", "train/hypernetwork"):
        response = client.post(f"/sdapi/v1/{route}", json={"name": "x"})
        assert response.status_code == 400 and "training is not supported" in response.json()["detail"], route


def test_server_routes_exist_only_with_their_flag(make_client, data_dir, tmp_path):
    _, plain = make_client(data_dir)
    assert plain.post("/sdapi/v1/server-stop").status_code == 404
    ctx, client = make_client(tmp_path / "other", "--api-server-stop")
    stopped = []
    ctx.server.attach(lambda: stopped.append(True))
    assert client.post("/sdapi/v1/server-stop").json() == "Stopping." and stopped == [True]
