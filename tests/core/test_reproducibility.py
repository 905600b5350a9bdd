"""Same request, same pixels; and the PNG's own `parameters` text, parsed and re-run, gives the same pixels again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.core.infotext_fields import request_fields
from sdui.core.processing import process
from sdui.imaging.pnginfo import read_info_from_image
from sdui.infotext import parse_infotext
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, request_from_fields
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = build_tiny_checkpoint(tmp_path_factory.mktemp("repro") / "tiny.safetensors", arch="sd1")
    return load_sd_model(path, CPU32)


def as_array(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


REQUESTS = [
    GenerationRequest(
        prompt="a (red:1.3) fox, [snow]\nsecond line",
        negative_prompt="blurry, \"bad\"",
        seed=42,
        sampler_name="Euler a",
        steps=5,
        cfg_scale=6.5,
        width=64,
        height=72,
    ),
    GenerationRequest(
        prompt="variation",
        seed=7,
        subseed=99,
        subseed_strength=0.35,
        sampler_name="DPM++ 2M",
        scheduler="Karras",
        steps=4,
        width=64,
        height=64,
    ),
    GenerationRequest(
        prompt="resized seed",
        seed=3,
        seed_resize_from_w=48,
        seed_resize_from_h=48,
        sampler_name="DDIM",
        steps=4,
        width=64,
        height=64,
    ),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=["ancestral-multiline", "variation-karras", "seed-resize"])
def test_infotext_from_saved_png_reproduces_the_image(model, request_, tmp_path):
    first = process(request_, model, policy=CPU32, data_dir=tmp_path)
    saved = first.saved_paths[0]
    assert saved.parent.parent == tmp_path / "outputs" / "txt2img-images"

    text, _ = read_info_from_image(Image.open(saved))
    assert text == first.infotexts[0]
    fields = request_fields(parse_infotext(text))
    overrides = fields.pop("override_settings", {})
    rerun = process(
        request_from_fields(GenerationRequest, fields), model, policy=CPU32, settings=Settings.defaults(**overrides)
    )

    assert np.array_equal(as_array(Image.open(saved)), as_array(rerun.images[0]))
    assert rerun.infotexts[0] == text


def test_batch_seeds_and_count(model):
    request = GenerationRequest(
        prompt="batch", seed=100, steps=3, width=64, height=64, batch_size=2, n_iter=2, sampler_name="Euler"
    )
    result = process(request, model, policy=CPU32)
    assert result.all_seeds == [100, 101, 102, 103]
    assert result.index_of_first_image == 1 and len(result.images) == 5  # grid first, as A1111 returns it
    singles = [as_array(im) for im in result.images[1:]]
    # image i of the batch equals the same seed generated alone
    alone = process(
        GenerationRequest(prompt="batch", seed=102, steps=3, width=64, height=64, sampler_name="Euler"),
        model,
        policy=CPU32,
    )
    assert np.abs(singles[2].astype(int) - as_array(alone.images[0]).astype(int)).max() <= 1
    assert not np.array_equal(singles[0], singles[1])
