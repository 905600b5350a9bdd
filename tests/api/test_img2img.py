"""POST /sdapi/v1/img2img: A1111's request and response shapes, through the real app and a tiny checkpoint."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from tests.helpers import decode_png, output_files, small


def b64png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def gradient(w=64, h=64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8))


def test_img2img_returns_a1111_shape_with_denoising_in_the_infotext(served):
    ctx, client = served
    body = small(init_images=[b64png(gradient())], denoising_strength=0.5, steps=4)
    response = client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"images", "parameters", "info"}
    image = decode_png(data["images"][0])
    assert image.size == (64, 64)
    info = json.loads(data["info"])
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    assert data["parameters"]["init_images"] is None  # not echoed unless include_init_images
    assert output_files(ctx.paths.data_dir) == []

    # same request, same pixels; a data: URL prefix is accepted too
    body["init_images"] = ["data:image/png;base64," + body["init_images"][0]]
    again = client.post("/sdapi/v1/img2img", json=body).json()
    assert decode_png(again["images"][0]).tobytes() == image.tobytes()


def test_img2img_include_init_images_and_save(served):
    ctx, client = served
    init = b64png(gradient())
    data = client.post(
        "/sdapi/v1/img2img",
        json=small(init_images=[init], steps=2, include_init_images=True, save_images=True, seed=41),
    ).json()
    assert data["parameters"]["init_images"] == [init]
    saved = [p for p in output_files(ctx.paths.data_dir) if p.parent.parent.name == "img2img-images"]
    assert [p.name for p in saved] == ["00000-41.png"]
    for p in saved:
        p.unlink()


def test_img2img_bad_inputs(served):
    ctx, client = served
    missing = client.post("/sdapi/v1/img2img", json=small())
    assert missing.status_code == 404 and "Init image not found" in missing.json()["detail"]
    garbage = client.post("/sdapi/v1/img2img", json=small(init_images=["bm90IGFuIGltYWdl"]))
    assert 400 <= garbage.status_code < 500 and "Invalid encoded image" in garbage.json()["detail"]
    strength = client.post("/sdapi/v1/img2img", json=small(init_images=[b64png(gradient())], denoising_strength=2))
    assert strength.status_code == 422 and "denoising strength" in strength.json()["detail"]
    assert output_files(ctx.paths.data_dir) == []
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1)).status_code == 200


def test_img2img_with_a_mask_inpaints_only_inside(served):
    _, client = served
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 20:44] = 255
    body = small(
        init_images=[b64png(gradient())],
        mask=b64png(Image.fromarray(mask)),
        mask_blur=0,
        inpainting_fill=1,
        inpaint_full_res=False,
        steps=4,
    )
    data = client.post("/sdapi/v1/img2img", json=body)
    assert data.status_code == 200, data.text
    out = np.asarray(decode_png(data.json()["images"][0]).convert("RGB"))
    outside = mask == 0
    assert np.array_equal(out[outside], np.asarray(gradient())[outside])
    assert "Mask blur: 0" in json.loads(data.json()["info"])["infotexts"][0]
    empty = client.post("/sdapi/v1/img2img", json={**body, "mask": b64png(Image.new("L", (64, 64), 0))})
    assert empty.status_code == 422 and "mask is empty" in empty.json()["detail"]


def test_outpaint_through_the_api_keeps_the_original(served):
    _, client = served
    body = small(
        init_images=[b64png(gradient(48, 64))],
        outpaint_right=16,
        mask_blur=0,
        inpainting_fill=1,
        denoising_strength=0.8,
        steps=3,
    )
    data = client.post("/sdapi/v1/img2img", json=body)
    assert data.status_code == 200, data.text
    out = np.asarray(decode_png(data.json()["images"][0]).convert("RGB"))
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[:, :48], np.asarray(gradient(48, 64)))
    bad = client.post("/sdapi/v1/img2img", json={**body, "outpaint_right": 12})
    assert bad.status_code in (400, 422) and "multiple of 8" in bad.json()["detail"]


def test_init_image_over_the_pixel_limit_is_refused(served):
    ctx, client = served
    body = small(init_images=[b64png(gradient(96, 96))], override_settings={"max_image_pixels": 64 * 64})
    response = client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 422 and "init image is 96x96" in response.json()["detail"]
    assert output_files(ctx.paths.data_dir) == []


def test_hires_fix_through_the_api(served):
    _, client = served
    data = client.post(
        "/sdapi/v1/txt2img",
        json=small(steps=2, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent (bicubic)", denoising_strength=0.6),
    )
    assert data.status_code == 200, data.text
    assert decode_png(data.json()["images"][0]).size == (96, 96)
    text = json.loads(data.json()["info"])["infotexts"][0]
    assert "Hires upscale: 1.5" in text and "Hires upscaler: Latent (bicubic)" in text and "Size: 64x64" in text


def test_depth2img_through_the_api_with_an_uploaded_depth_map(make_client, data_dir, tmp_path):
    from tests.fixtures.checkpoints import build_tiny_checkpoint
    from tests.helpers import install_checkpoint

    install_checkpoint(build_tiny_checkpoint(tmp_path / "depth.safetensors", arch="sd2", variant="depth"), data_dir)
    _, client = make_client(data_dir)
    depth = Image.fromarray((np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8))
    body = small(init_images=[b64png(gradient())], depth_map=b64png(depth), steps=3)
    first = client.post("/sdapi/v1/img2img", json=body)
    assert first.status_code == 200, first.text
    flipped = client.post(
        "/sdapi/v1/img2img", json={**body, "depth_map": b64png(Image.fromarray(255 - np.asarray(depth)))}
    )
    assert decode_png(first.json()["images"][0]).tobytes() != decode_png(flipped.json()["images"][0]).tobytes()
    no_image = client.post("/sdapi/v1/txt2img", json=small(steps=1))
    assert no_image.status_code == 422 and "depth checkpoint" in no_image.json()["detail"]


def test_mask_padding_beyond_a_small_image_is_accepted_as_in_a1111(served):
    """A1111's default padding (32) on a 16x16 generation: the region stops at the edges, nothing is refused."""
    _, client = served
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    body = small(
        init_images=[b64png(gradient(16, 16))],
        mask=b64png(mask),
        width=16,
        height=16,
        inpaint_full_res=True,
        inpaint_full_res_padding=32,
    )
    response = client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    assert "Masked area padding: 32" in json.loads(response.json()["info"])["infotexts"][0]
