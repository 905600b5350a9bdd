"""Token merging (A1111's "Token merging ratio" settings, ToMe for SD): the matching, merge and unmerge on tensors
made for each claim, A1111's rules for which ratio a pass uses, and whole jobs on a tiny checkpoint: ratio 0 is the
job without it bit for bit, a ratio changes the image a little and the same seed gives the same image, the
infotext carries it and pastes back, the UNet's processors are the very same objects after the job, and it works
together with a hypernetwork's processors."""

from __future__ import annotations

import pytest
import torch

from sdui.core.extra_networks import ExtraNetworks
from sdui.core.hooks import ProcessingHooks
from sdui.core.hypernetworks import HypernetworkAttnProcessor
from sdui.core.infotext_fields import request_fields
from sdui.core.token_merging import (
    MergePlan,
    TokenMergingAttnProcessor,
    _Pass,
    destinations,
    grid_of,
    merge,
    merged_tokens,
    merging_ratio,
    plan_merge,
    self_attention_layers,
    unmerge,
)
from sdui.infotext import parse_infotext
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, Img2ImgRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents, settings

g = torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("tome") / "m.safetensors"), CPU32)


def blocky(height: int, width: int, channels: int = 8) -> torch.Tensor:
    """(2, h*w, C) tokens, equal within each 2x2 cell, integer-valued (means of equal values are exact)."""
    cells = torch.randint(-9, 10, (2, (height + 1) // 2, (width + 1) // 2, channels), generator=g).float()
    grid = cells.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, :height, :width]
    return grid.reshape(2, height * width, channels)


# ---------------------------------------------------------------------------------------------- pure functions
def test_destinations_are_the_top_left_of_each_whole_2x2_cell():
    assert destinations(4, 6).view(4, 6).int().tolist() == [[1, 0, 1, 0, 1, 0], [0] * 6] * 2
    odd = destinations(5, 5).view(5, 5).int()  # the last row and column hold sources only
    assert odd.sum() == 4 and odd[4].sum() == 0 and odd[:, 4].sum() == 0


def test_ratio_zero_merges_nothing_and_an_empty_plan_is_the_identity():
    x = torch.randn(2, 24, 8, generator=g)
    assert plan_merge(x, destinations(4, 6), 0) is None
    empty = MergePlan(
        kept=torch.arange(24).expand(2, -1), merged=torch.zeros(2, 0, dtype=torch.long), into=torch.zeros(2, 0).long()
    )
    assert torch.equal(merge(x, empty), x) and torch.equal(unmerge(merge(x, empty), empty), x)


@pytest.mark.parametrize("size, dtype", [((4, 6), torch.float32), ((5, 7), torch.float32), ((8, 8), torch.bfloat16)])
def test_merging_equal_tokens_loses_nothing(size, dtype):
    x = blocky(*size).to(dtype)
    n = size[0] * size[1]
    r = 3 * (size[0] // 2) * (size[1] // 2)  # every source of a whole cell: each equals its cell's destination
    plan = plan_merge(x, destinations(*size), r)
    merged = merge(x, plan)
    assert merged.shape == (2, n - r, 8) and merged.dtype == dtype
    assert torch.equal(unmerge(merged, plan), x)


def test_each_merged_token_is_the_mean_of_its_group_and_joins_its_most_similar_destination():
    x = torch.randn(1, 16, 8, generator=g)
    d = destinations(4, 4)  # destinations at positions 0, 2, 8, 10
    x[0, 5] = x[0, 10] * 3  # parallel to destination 10: cosine similarity 1, the best match of all
    plan = plan_merge(x, d, 1)
    assert plan.merged.tolist() == [[5]] and plan.kept[0, plan.into[0, 0]].item() == 10
    out = merge(x, plan)
    assert torch.allclose(out[0, plan.into[0, 0]], (x[0, 10] + x[0, 5]) / 2)
    back = unmerge(out, plan)
    assert torch.equal(back[0, 5], back[0, 10])
    others = [i for i in range(16) if i not in (5, 10)]
    assert torch.equal(back[0, others], x[0, others])


def test_grid_levels():
    assert grid_of(8 * 12, (8, 12)) == (8, 12)
    assert grid_of(4 * 6, (8, 12)) is None  # the next level down is left alone (max_downsample 1)
    assert grid_of(4 * 6, (8, 12), max_downsample=2) == (4, 6)
    assert grid_of(5 * 4, (9, 7), max_downsample=2) == (5, 4)  # odd sizes round up, as a stride-2 conv does


def test_the_processor_keeps_the_shape_and_leaves_cross_attention_alone(model):
    layer = self_attention_layers(model.unet)[0]
    state = _Pass(0.5)
    state.latent_size = (8, 8)
    processor = TokenMergingAttnProcessor(layer.processor, state)
    x = torch.randn(2, 64, layer.to_q.in_features, generator=g)
    with torch.no_grad():
        out = processor(layer, x)
        plain = layer.processor(layer, x)
        assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, plain)
        context = torch.randn(2, 77, layer.to_q.in_features, generator=g)
        assert torch.equal(processor(layer, x, context), layer.processor(layer, x, context))
        state.active = False  # after its pass a processor does nothing
        assert torch.equal(processor(layer, x), plain)


# -------------------------------------------------------------------------------------------- A1111's ratio rules
def test_which_ratio_a_pass_uses():
    t2i, i2i = GenerationRequest(prompt="x"), Img2ImgRequest(prompt="x")
    s = settings(token_merging_ratio=0.5)
    assert merging_ratio(t2i, s) == 0.5 and merging_ratio(t2i, s, hires=True) == 0.5  # hr 0: the general one
    s = settings(token_merging_ratio=0.5, token_merging_ratio_hr=0.3, token_merging_ratio_img2img=0.2)
    assert merging_ratio(t2i, s, hires=True) == 0.3 and merging_ratio(i2i, s) == 0.2
    overriding = Img2ImgRequest(prompt="x", override_settings={"token_merging_ratio": 0.5})
    assert merging_ratio(overriding, s) == 0.5  # a request that sets the general ratio means it
    assert merging_ratio(t2i, settings()) == 0.0


def test_the_xyz_axes_override_the_ratio_as_a_request_does():
    from sdui.core.xyz_plot import AXES, Cell

    axis = next(a for a in AXES if a.label == "Token merging ratio")
    cell = Cell()
    axis.apply(cell, 0.5, Img2ImgRequest(prompt="x"), [0.5])
    assert cell.settings == {"token_merging_ratio": 0.5}
    cell_request = Img2ImgRequest(prompt="x", **cell.fields)
    s = settings(token_merging_ratio=0.5, token_merging_ratio_img2img=0.2)
    assert merging_ratio(cell_request, s) == 0.5  # the axis wins over the img2img setting, as in A1111


# ------------------------------------------------------------------------------------------------------ whole jobs
def request(**fields):
    return GenerationRequest(
        **{"prompt": "a cat", "seed": 3, "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler", **fields}
    )


def test_ratio_zero_is_off_bit_for_bit_and_a_ratio_changes_the_image_a_little(model):
    own = dict(model.unet.attn_processors)
    _, off = process_with_latents(request(), model, settings=settings())
    _, zero = process_with_latents(request(), model, settings=settings(token_merging_ratio=0.0))
    assert torch.equal(zero, off)

    processed, merged = process_with_latents(request(), model, settings=settings(token_merging_ratio=0.5))
    _, again = process_with_latents(request(), model, settings=settings(token_merging_ratio=0.5))
    assert torch.isfinite(merged).all() and torch.equal(again, merged)  # same seed, same image
    change = ((merged - off).abs().mean() / off.abs().mean()).item()
    assert 0 < change < 0.05  # measured about 0.01 on this checkpoint at 0.5
    assert "Token merging ratio: 0.5" in processed.infotexts[0]
    assert "Token merging ratio hr" not in processed.infotexts[0]  # only with hires fix
    fields = request_fields(parse_infotext(processed.infotexts[0]), current=settings())
    assert fields["override_settings"] == {"token_merging_ratio": 0.5}  # pasting sets it again
    after = dict(model.unet.attn_processors)
    assert after.keys() == own.keys() and all(after[k] is own[k] for k in own)  # the very same objects


def test_hires_ratio_acts_in_the_second_pass_and_is_written_and_pasted(model):
    hires = dict(enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5, hr_second_pass_steps=2)
    _, off = process_with_latents(request(**hires), model, settings=settings())
    processed, hr_only = process_with_latents(request(**hires), model, settings=settings(token_merging_ratio_hr=0.3))
    assert not torch.equal(hr_only, off) and torch.isfinite(hr_only).all()
    text = processed.infotexts[0]
    assert "Token merging ratio hr: 0.3" in text and "Token merging ratio:" not in text
    fields = request_fields(parse_infotext(text), current=settings())
    assert fields["override_settings"] == {"token_merging_ratio_hr": 0.3}


class ProcessorsSeen(ProcessingHooks):
    """What the self- and cross-attention layers run while the model is called."""

    def __init__(self, unet):
        self.unet, self.seen = unet, set()

    def on_denoiser(self, params) -> None:
        for name, p in self.unet.attn_processors.items():
            self.seen.add((name.split(".")[-2], type(p).__name__))


def test_works_with_a_hypernetwork_and_puts_both_back(model, tmp_path):
    folder = tmp_path / "hypernetworks"
    folder.mkdir()
    dim = model.unet.config.cross_attention_dim
    layer = {"linear.0.weight": torch.randn(dim, dim, generator=g) * 0.2, "linear.0.bias": torch.zeros(dim)}
    torch.save({"layer_structure": [1, 1], "activation_func": "linear", dim: [layer, layer]}, folder / "h.pt")
    networks = ExtraNetworks(tmp_path / "Lora", hypernetwork_dir=folder)
    own = dict(model.unet.attn_processors)

    seen = ProcessorsSeen(model.unet)
    prompt = "<hypernet:h:1> a cat"
    _, hyper = process_with_latents(request(prompt=prompt), model, hooks=[networks])
    _, both = process_with_latents(
        request(prompt=prompt), model, settings=settings(token_merging_ratio=0.5), hooks=[networks, seen]
    )
    assert {("attn1", "TokenMergingAttnProcessor"), ("attn2", "HypernetworkAttnProcessor")} <= seen.seen
    assert torch.isfinite(both).all() and not torch.equal(both, hyper)
    after = model.unet.attn_processors
    for name, processor in after.items():  # the hypernetwork stays (as it does between jobs), token merging is gone
        if ".attn2." in name:
            assert isinstance(processor, HypernetworkAttnProcessor) and processor.inner is own[name]
        else:
            assert processor is own[name]

    process_with_latents(request(), model, hooks=[networks])  # a job without either
    after = dict(model.unet.attn_processors)
    assert all(after[k] is own[k] for k in own)


def test_merged_tokens_restores_the_processors_when_the_pass_fails(model):
    own = dict(model.unet.attn_processors)
    with pytest.raises(RuntimeError), merged_tokens(model.unet, 0.5):
        assert isinstance(self_attention_layers(model.unet)[0].processor, TokenMergingAttnProcessor)
        raise RuntimeError("the sampler failed")
    after = dict(model.unet.attn_processors)
    assert all(after[k] is own[k] for k in own)
