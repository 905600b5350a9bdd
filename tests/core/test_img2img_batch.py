"""img2img/inpaint Batch (A1111's process_batch): each input runs exactly as its own img2img job would, with the mask
of the same name, its PNG info fields when asked, and lands in the output folder under its own name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sdui.core.img2img_batch import BatchArgs, BatchItem, img2img_batch, request_for
from sdui.core.processing import process
from sdui.models.loading import load_sd_model
from sdui.request import Img2ImgRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32
from tests.imaging.test_tiles import noise_image


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("batch") / "m.safetensors"), CPU32)


def request(**changes) -> Img2ImgRequest:
    fields = dict(prompt="a castle", seed=5, steps=2, width=64, height=64, sampler_name="Euler", cfg_scale=5.0)
    fields.update(init_images=[noise_image(64, 64, seed=1)], denoising_strength=0.6)
    return Img2ImgRequest(**{**fields, **changes})


def with_parameters(image: Image.Image, text: str) -> Image.Image:
    """The image as read back from a PNG carrying `text` (what a batch folder holds)."""
    import io

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_each_input_equals_its_own_job_and_is_named_after_it(model, tmp_path):
    first, second = noise_image(64, 64, seed=2), noise_image(64, 64, seed=3)
    args = BatchArgs([BatchItem(first, "one.png"), BatchItem(second, "two.jpg")], output_dir=tmp_path / "out")
    result = img2img_batch(request(), model, args=args, policy=CPU32, data_dir=tmp_path)
    for got, init in zip(result.images, (first, second), strict=True):
        alone = process(request(init_images=[init]), model, policy=CPU32).images[0]
        assert np.array_equal(np.asarray(got), np.asarray(alone))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000-one.png", "00001-two.png"]
    assert len(result.infotexts) == 2 and result.all_seeds == [5, 5]


def test_png_info_fields_fill_the_request_prompts_appended():
    own = with_parameters(
        noise_image(8, 8), "a red boat\nNegative prompt: fog\nSteps: 3, Sampler: Euler a, CFG scale: 4, Seed: 77"
    )
    job = request_for(request(negative_prompt="blur"), BatchItem(own, "x.png"), ("Prompt", "Negative prompt", "Seed"))
    assert (job.prompt, job.negative_prompt, job.seed, job.steps) == ("a castle a red boat", "blur fog", 77, 2)
    job = request_for(request(), BatchItem(own, "x.png"), ("Steps", "Sampler", "CFG scale"))
    assert (job.prompt, job.steps, job.sampler_name, job.cfg_scale, job.seed) == ("a castle", 3, "Euler a", 4.0, 5)
    plain = request_for(request(), BatchItem(noise_image(8, 8), "y.png"), ("Prompt", "Seed"))
    assert (plain.prompt, plain.seed) == ("a castle", 5)  # no parameters in the file: nothing taken


def test_an_inpaint_batch_uses_each_mask(model):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    init = noise_image(64, 64, seed=4)
    args = BatchArgs([BatchItem(init, "a.png", mask)])
    (got,) = img2img_batch(request(), model, args=args, policy=CPU32).images
    alone = process(request(init_images=[init], mask=mask), model, policy=CPU32).images[0]
    assert np.array_equal(np.asarray(got), np.asarray(alone))
    unmasked = process(request(init_images=[init]), model, policy=CPU32).images[0]
    assert not np.array_equal(np.asarray(got), np.asarray(unmasked))  # the mask took part
