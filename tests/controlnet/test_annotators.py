"""depth_midas and normal_midas run: from sd-webui-controlnet's annotator file (a tiny random MiDaS DPT-Hybrid
written in that file's key layout, loaded through the real loader), or from an SD 2 depth checkpoint's own MiDaS
when the file is missing.

The depth map equals the extension's recipe done by hand on the same network (short side at the resolution, edge
padding to multiples of 64, [-1, 1] input at the image's own size, min-max over the padded map, truncation to uint8,
crop), and stays within one level of MiDaS' forward written independently on the file's names; normals are the
extension's Sobel recipe on the same depth. Without file and depth model the module is refused naming the file; a
pickle that asks for code is refused; the API and a generation job run the same map.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import webui
from sdui.controlnet import annotators, midas_annotator, preprocessors
from sdui.controlnet.model_files import ControlNetCatalog, load_controlnet
from sdui.controlnet.residuals import ControlNetResiduals
from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.errors import CheckpointError, UserError
from sdui.models.depth_estimator import load_depth_estimator_from_checkpoint
from sdui.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.controlnet import write_controlnet
from tests.fixtures.midas_ldm import PREFIX, midas_reference_depth, tiny_midas_state_dict
from tests.helpers import LOCAL, install_checkpoint, make_ctx

pytestmark = pytest.mark.filterwarnings("ignore:Should have")

FILE = "dpt_hybrid-midas-501f0c75.pt"
SEED = 0


def annotator_weights(seed: int = SEED) -> dict[str, torch.Tensor]:
    """The tiny MiDaS as the extension's annotator file holds it: MiDaS' own names, no checkpoint prefix."""
    return {k[len(PREFIX) :]: v for k, v in tiny_midas_state_dict(seed).items()}


def write_annotator(folder: Path, seed: int = SEED, flat: bool = False) -> Path:
    path = folder / FILE if flat else folder / "midas" / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(annotator_weights(seed), path)
    return path


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour noise: enough structure for a random network to give a varied depth map."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2)


def by_hand(image: np.ndarray, resolution: int, forward, normal_background: float | None = None) -> np.ndarray:
    """The extension's midas preprocessors written out: resize_image_with_pad, apply_midas (its depth image, or its
    normal image with bg_th), remove_pad, HWC3."""
    height, width = image.shape[:2]
    k = resolution / min(height, width)
    new_h, new_w = int(np.round(height * k)), int(np.round(width * k))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    padded = np.pad(resized, ((0, -new_h % 64), (0, -new_w % 64), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).float() / 127.5 - 1.0
    with torch.no_grad():
        depth = forward(x.permute(2, 0, 1)[None])[0]
    depth_pt = depth - depth.min()
    depth_pt = (depth_pt / depth_pt.max()).numpy()
    if normal_background is None:
        single = (depth_pt * 255.0).clip(0, 255).astype(np.uint8)[:new_h, :new_w]
        return np.repeat(single[:, :, None], 3, axis=2)
    sobel_x = cv2.Sobel(depth.numpy(), cv2.CV_32F, 1, 0, ksize=3)
    sobel_y = cv2.Sobel(depth.numpy(), cv2.CV_32F, 0, 1, ksize=3)
    sobel_x[depth_pt < normal_background] = 0
    sobel_y[depth_pt < normal_background] = 0
    normal = np.stack([sobel_x, sobel_y, np.ones_like(sobel_x) * np.pi * 2.0], axis=2)
    normal /= np.sum(normal**2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:new_h, :new_w]


@pytest.fixture(autouse=True)
def fresh_cache():
    midas_annotator.CACHE.clear()
    yield
    midas_annotator.CACHE.clear()


# ----------------------------------------------------------------------------------------------- from the file


def test_depth_midas_from_the_annotator_file_is_the_extensions_map(tmp_path):
    write_annotator(tmp_path)
    image = picture(48, 80)

    result = preprocessors.run("depth_midas", image, resolution=64, annotator_dir=tmp_path)

    assert result.shape == (64, 107, 3) and result.dtype == np.uint8, "short side at the resolution, 3 channels"
    assert (result == result[:, :, :1]).all(), "grey"
    estimator = load_depth_estimator_from_checkpoint(tiny_midas_state_dict(SEED))
    assert np.array_equal(result, by_hand(image, 64, estimator)), "the same network by hand, the same recipe"
    independent = by_hand(image, 64, lambda x: midas_reference_depth(tiny_midas_state_dict(SEED), x))
    assert np.abs(result.astype(int) - independent).max() <= 1, "MiDaS' forward written on the file's own names"
    assert len(np.unique(result)) > 50, "a varied map, not a flat one"


def test_an_unpadded_map_spans_0_to_255_and_the_alias_and_flat_layout_give_the_same(tmp_path):
    write_annotator(tmp_path / "in_subfolder")
    write_annotator(tmp_path / "flat", flat=True)
    image = picture(96, 192, seed=1)  # at resolution 64: 64x128, no padding, so the min-max shows whole

    result = preprocessors.run("depth_midas", image, resolution=64, annotator_dir=tmp_path / "in_subfolder")

    assert result.shape == (64, 128, 3) and result.min() == 0 and result.max() == 255
    assert np.array_equal(result, preprocessors.run("depth", image, resolution=64, annotator_dir=tmp_path / "flat"))


def test_normal_midas_from_the_annotator_file_is_the_extensions_normal_map(tmp_path):
    write_annotator(tmp_path)
    image = picture(48, 80, seed=3)
    estimator = load_depth_estimator_from_checkpoint(tiny_midas_state_dict(SEED))

    default = preprocessors.run("normal_midas", image, resolution=64, annotator_dir=tmp_path)
    everything_far = preprocessors.run("normal_map", image, resolution=64, threshold_a=1.0, annotator_dir=tmp_path)

    assert default.shape == (64, 107, 3) and default.dtype == np.uint8
    assert np.array_equal(default, by_hand(image, 64, estimator, normal_background=0.4)), "the slider's default 0.4"
    assert np.array_equal(everything_far, by_hand(image, 64, estimator, normal_background=1.0))
    flat = (everything_far == [127, 127, 255]).all(axis=2)
    assert flat.mean() > 0.99 and (default != [127, 127, 255]).any(axis=2).mean() > 0.3, "tilted where near"


def test_with_its_file_midas_is_available_and_the_others_keep_their_refusal(tmp_path):
    assert {"depth", "normal_map"} <= set(preprocessors.unavailable(tmp_path))
    write_annotator(tmp_path)

    reasons = preprocessors.unavailable(tmp_path)

    assert annotators.available("depth", tmp_path) and annotators.available("normal_map", tmp_path)
    assert set(reasons) == annotators.NAMES - {"depth", "normal_map"}
    assert "hed/ControlNetHED.pth" in reasons["hed"]
    (tmp_path / "hed").mkdir()
    (tmp_path / "hed" / "ControlNetHED.pth").write_bytes(b"x")
    assert "does not run annotator models yet" in preprocessors.unavailable(tmp_path)["hed"], "file, but no runner"


def test_the_loaded_annotator_is_cached_and_reloaded_when_its_file_changes(tmp_path):
    path = write_annotator(tmp_path)
    cpu = torch.device("cpu")
    first = midas_annotator.CACHE.get(path, cpu)
    assert midas_annotator.CACHE.get(path, cpu) is first
    assert next(first.parameters()).dtype == torch.float32

    image = picture(64, 64)
    before = preprocessors.run("depth", image, resolution=64, annotator_dir=tmp_path)
    write_annotator(tmp_path, seed=5)
    os.utime(path, ns=(1, 1))  # another mtime even where the clock's step is coarse

    after = preprocessors.run("depth", image, resolution=64, annotator_dir=tmp_path)

    assert midas_annotator.CACHE.get(path, cpu) is not first
    estimator = load_depth_estimator_from_checkpoint(tiny_midas_state_dict(5))
    assert np.array_equal(after, by_hand(image, 64, estimator)) and not np.array_equal(after, before)


# ----------------------------------------------------------------------------------------- the SD 2 depth model


def test_without_the_file_an_sd2_depth_models_midas_gives_the_same_map(tmp_path):
    write_annotator(tmp_path / "with_file")
    (tmp_path / "empty").mkdir()
    image = picture(40, 72, seed=2)
    checkpoint_midas = load_depth_estimator_from_checkpoint(tiny_midas_state_dict(SEED))

    from_file = preprocessors.run("depth_midas", image, resolution=64, annotator_dir=tmp_path / "with_file")
    from_model = preprocessors.run(
        "depth_midas", image, resolution=64, annotator_dir=tmp_path / "empty", depth_estimator=checkpoint_midas
    )

    assert np.array_equal(from_model, from_file)
    normals = preprocessors.run("normal_map", image, resolution=64, annotator_dir=tmp_path / "with_file")
    assert np.array_equal(
        preprocessors.run("normal_map", image, resolution=64, depth_estimator=checkpoint_midas), normals
    )
    reasons = preprocessors.unavailable(tmp_path / "empty", depth_estimator=checkpoint_midas)
    assert "depth" not in reasons and "normal_map" not in reasons
    other = load_depth_estimator_from_checkpoint(tiny_midas_state_dict(3))
    with_both = preprocessors.run(
        "depth_midas", image, resolution=64, annotator_dir=tmp_path / "with_file", depth_estimator=other
    )
    assert np.array_equal(with_both, from_file), "the annotator file comes first"


def test_without_file_or_depth_model_the_refusal_names_the_file(tmp_path):
    with pytest.raises(annotators.AnnotatorUnavailableError) as raised:
        preprocessors.run("depth_midas", picture(32, 32), annotator_dir=tmp_path)

    assert raised.value.status_code == 422
    message = raised.value.message
    assert FILE in message and f"midas/{FILE}" in message and str(tmp_path) in message
    assert "SD 2 depth checkpoint" in message and "preprocessor 'none'" in message


# ------------------------------------------------------------------------------------------------ bad files


def test_a_pickle_that_asks_for_code_is_refused(tmp_path):
    path = tmp_path / "midas" / FILE
    path.parent.mkdir()
    torch.save({**annotator_weights(), "hook": os.system}, path)  # pickled by reference: GLOBAL posix.system

    with pytest.raises(CheckpointError) as raised:
        preprocessors.run("depth_midas", picture(32, 32), resolution=64, annotator_dir=tmp_path)

    assert f"Refused to load {FILE}" in raised.value.message and "run code" in raised.value.message


def test_another_network_in_the_annotators_place_is_refused_saying_what_to_put_there(tmp_path):
    path = tmp_path / FILE
    weights = {k: v for k, v in annotator_weights().items() if not k.startswith("scratch.output_conv.4")}
    torch.save(weights, path)

    with pytest.raises(UserError) as raised:
        preprocessors.run("depth_midas", picture(32, 32), resolution=64, annotator_dir=tmp_path)

    message = raised.value.message
    assert str(path) in message and "not the MiDaS DPT-Hybrid that depth_midas runs" in message
    assert "scratch.output_conv.4" in message and f"Replace it with sd-webui-controlnet's {FILE}" in message


def test_a_huge_map_is_refused_before_the_model_loads(tmp_path):
    path = tmp_path / FILE
    path.write_bytes(b"not even a pickle")  # never read: the size check comes first
    with pytest.raises(UserError) as raised:
        preprocessors.run("depth_midas", picture(32, 32), resolution=100_000, annotator_dir=tmp_path)
    assert "lower the preprocessor resolution" in raised.value.message


# ------------------------------------------------------------------------------------------ through the server

SIZE = 64
BASE = dict(prompt="a red fox", negative_prompt="", seed=7, steps=3, width=SIZE, height=SIZE, cfg_scale=7)
BASE.update(sampler_name="Euler", scheduler="Automatic")


def b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decoded(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("midas-data")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    build_tiny_checkpoint(data / "models" / "Stable-diffusion" / "depth.safetensors", arch="sd2", variant="depth")
    write_controlnet(data / "models" / "ControlNet" / "control_tiny_depth.safetensors")
    ctx = make_ctx(data, "--nowebui")
    yield ctx, TestClient(webui.create_app(ctx), base_url=LOCAL)
    ctx.jobs.shutdown()


@pytest.fixture
def annotator_file(served):
    """The annotator file in the served app's models/ControlNet-annotators/midas/ for one test."""
    ctx, _ = served
    path = write_annotator(ctx.controlnet.annotator_dir)
    yield path
    shutil.rmtree(path.parent)


def detect(client, image: np.ndarray, module: str = "depth_midas", res: int = 64):
    body = {"controlnet_module": module, "controlnet_input_images": [b64(image)], "controlnet_processor_res": res}
    return client.post("/controlnet/detect", json=body)


def test_detect_runs_depth_midas_from_the_annotator_file(served, annotator_file):
    ctx, client = served
    image = picture(48, 80, seed=4)

    answer = detect(client, image)

    assert answer.status_code == 200, answer.text
    expected = preprocessors.run("depth", image, resolution=64, annotator_dir=annotator_file.parent.parent)
    assert np.array_equal(decoded(answer.json()["images"][0]), expected)


def test_detect_uses_the_loaded_sd2_depth_model_and_never_loads_one(served):
    ctx, client = served
    ctx.store.unload()
    image = picture(64, 64, seed=6)

    refused = detect(client, image)
    assert refused.status_code == 422 and FILE in refused.json()["detail"] and ctx.store.current is None

    model = ctx.store.get("depth")
    answer = detect(client, image)
    assert answer.status_code == 200, answer.text
    expected = preprocessors.run("depth", image, resolution=64, depth_estimator=model.depth_estimator)
    assert np.array_equal(decoded(answer.json()["images"][0]), expected)

    ctx.store.get("tiny")  # SD1 has no depth model: the refusal again
    assert detect(client, image).status_code == 422


def test_detect_refuses_a_pickle_that_asks_for_code(served):
    ctx, client = served
    path = ctx.controlnet.annotator_dir / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(1), "hook": os.system}, path)
    try:
        response = detect(client, picture(32, 32))
    finally:
        path.unlink()
    assert response.status_code == 400 and "Refused to load" in response.json()["detail"]


class WithResiduals(ProcessingHooks):
    def __init__(self, contributor):
        self.contributor = contributor

    def process(self, run):
        run.residual_contributors.append(self.contributor)


def test_a_depth_midas_unit_in_a_job_equals_process_with_the_files_map(served, annotator_file):
    ctx, client = served
    image = picture(SIZE, SIZE, seed=8)
    unit = {"module": "depth_midas", "model": "control_tiny_depth", "image": b64(image), "processor_res": 64}
    body = {**BASE, "override_settings": {"sd_model_checkpoint": "tiny"}}

    response = client.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"controlnet": {"args": [unit]}}})

    assert response.status_code == 200, response.text
    depth_map = preprocessors.run("depth", image, resolution=64, annotator_dir=annotator_file.parent.parent)
    entry = ControlNetCatalog([ctx.paths.models_dir / "ControlNet"]).find("control_tiny_depth")
    hooks = [WithResiduals(ControlNetResiduals(load_controlnet(entry), depth_map))]
    model = ctx.store.get("tiny")
    expected = process(
        GenerationRequest(**BASE), model, policy=ctx.policy, settings=ctx.options.snapshot(), hooks=hooks
    )
    got = decoded(response.json()["images"][0])
    assert np.array_equal(got, np.asarray(expected.images[0].convert("RGB")))
    assert "Module: depth" in json.loads(response.json()["info"])["infotexts"][0]


def test_a_job_on_an_sd2_depth_model_runs_depth_midas_with_its_midas(served):
    _, client = served
    image = b64(picture(SIZE, SIZE))
    unit = {"module": "depth_midas", "model": "control_nope", "image": image, "processor_res": 64}
    body = {**BASE, "init_images": [image], "alwayson_scripts": {"controlnet": {"args": [unit]}}}

    on_sd1 = client.post("/sdapi/v1/img2img", json={**body, "override_settings": {"sd_model_checkpoint": "tiny"}})
    on_depth = client.post("/sdapi/v1/img2img", json={**body, "override_settings": {"sd_model_checkpoint": "depth"}})

    assert on_sd1.status_code == 422 and FILE in on_sd1.text, "SD1: no depth model, no file"
    # the map is made before the ControlNet model is looked up: on the depth checkpoint the map was made (with its
    # MiDaS), so the unknown ControlNet model is what stops the job (the answer names the known ones)
    assert on_depth.status_code == 422 and "control_tiny_depth" in on_depth.text and FILE not in on_depth.text
