"""Seamless tiling: with circular padding a network is a function on a torus, so rolling its input rolls its output.

Roll-equivariance is the seam test: decode(roll(z, half)) == roll(decode(z), half * 8) means the image rolled by half
its width (its left/right wrap now in the middle) is exactly what the decoder paints as an ordinary interior region.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from sdui.imaging.tiling import padded_convs, tiled

ATOL = 1e-5  # the same sums, possibly in another order inside conv/attention kernels


def _roll(x: torch.Tensor, shift: int) -> torch.Tensor:
    return torch.roll(x, shifts=(shift, shift), dims=(-2, -1))


def _conv_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.SiLU(),
        torch.nn.Conv2d(4, 4, 5, padding=2),
        torch.nn.SiLU(),
        torch.nn.Conv2d(4, 4, 1),  # padding 0: nothing to wrap
        torch.nn.Conv2d(4, 3, 3, padding=1),
    ).eval()


@pytest.fixture(scope="module")
def vae() -> AutoencoderKL:
    # the SD layout (four levels, 8x) at a few thousand parameters
    torch.manual_seed(1)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        sample_size=32,
    ).eval()


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    # three levels (two stride-2 down-sampling convs with padding 1, like SD's), cross-attention on the first
    torch.manual_seed(2)
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    ).eval()


# ------------------------------------------------------------------------------------------------ conv stack
@torch.no_grad()
def test_conv_stack_output_rolls_with_input_only_when_tiled():
    net = _conv_net()
    x = torch.randn(1, 3, 16, 20, generator=torch.Generator().manual_seed(3))
    with tiled(net):
        torch.testing.assert_close(net(_roll(x, 5)), _roll(net(x), 5), atol=ATOL, rtol=0)
    # zero padding: the borders differ, so the same check must fail
    assert (net(_roll(x, 5)) - _roll(net(x), 5)).abs().max() > 1e-2


@torch.no_grad()
def test_stride_2_conv_wraps_for_even_shifts():
    torch.manual_seed(4)
    down = torch.nn.Conv2d(3, 3, 3, stride=2, padding=1)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with tiled(down):
        torch.testing.assert_close(down(_roll(x, 6)), _roll(down(x), 3), atol=ATOL, rtol=0)
    assert (down(_roll(x, 6)) - _roll(down(x), 3)).abs().max() > 1e-2


# ------------------------------------------------------------------------------------------------ diffusers models
@torch.no_grad()
def test_vae_decoder_tiles_seamlessly(vae):
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    half = z.shape[-1] // 2
    with tiled(vae):
        image = vae.decode(z).sample
        rolled_latent_image = vae.decode(_roll(z, half)).sample
    assert image.shape == (1, 3, 64, 64)
    torch.testing.assert_close(rolled_latent_image, _roll(image, half * 8), atol=ATOL, rtol=0)
    # without tiling the former edges meet in the middle as a seam
    untiled = vae.decode(z).sample
    assert not torch.allclose(untiled, image)
    assert (vae.decode(_roll(z, half)).sample - _roll(untiled, half * 8)).abs().max() > 1e-2


@torch.no_grad()
def test_vae_encoder_pads_with_zeros_even_when_tiled(vae):
    # documented limitation (diffusers' Downsample2D pads (0,1,0,1) with zeros before a padding=0 conv), as in A1111
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with tiled(vae):
        encoded = vae.encode(x).latent_dist.mean
        encoded_rolled = vae.encode(_roll(x, 16)).latent_dist.mean
    assert (encoded_rolled - _roll(encoded, 2)).abs().max() > 1e-3


@torch.no_grad()
def test_unet_wraps_for_shifts_aligned_to_its_coarsest_level(unet):
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(8))
    context = torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(9))
    shift = 4  # 2 ** (levels - 1): the stride-2 convs sample the same phase after the roll
    with tiled(unet):
        torch.testing.assert_close(
            unet(_roll(z, shift), 500, context).sample, _roll(unet(z, 500, context).sample, shift), atol=ATOL, rtol=0
        )
    assert (unet(_roll(z, shift), 500, context).sample - _roll(unet(z, 500, context).sample, shift)).abs().max() > 1e-2


# ------------------------------------------------------------------------------------------------ switching
def test_padding_modes_restored_after_exception(unet, vae):
    before = {id(m): m.padding_mode for model in (unet, vae) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    with pytest.raises(RuntimeError, match="boom"), tiled(unet, vae) as convs:
        assert convs and all(conv.padding_mode == "circular" for conv in convs)
        raise RuntimeError("boom")
    after = {id(m): m.padding_mode for model in (unet, vae) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert after == before and set(before.values()) == {"zeros"}


def test_only_padded_convs_switch_and_other_modes_come_back():
    net = _conv_net()
    net[2].padding_mode = "reflect"
    with tiled(net, None) as convs:
        assert [conv.padding_mode for conv in convs] == ["circular"] * 3
        assert net[4].padding_mode == "zeros"  # 1x1, padding 0: untouched
    assert [net[i].padding_mode for i in (0, 2, 4, 5)] == ["zeros", "reflect", "zeros", "zeros"]


def test_nested_and_shared_modules():
    net = _conv_net()
    assert len(padded_convs(net, net[0], net)) == 3  # each conv once
    with tiled(net):
        with tiled(net[0]):
            assert net[0].padding_mode == "circular"
        assert net[0].padding_mode == "circular"  # the inner block restores what it found
    assert net[0].padding_mode == "zeros"


def test_disabled_is_a_no_op():
    net = _conv_net()
    with tiled(net, enabled=False) as convs:
        assert convs == [] and all(m.padding_mode == "zeros" for m in net if isinstance(m, torch.nn.Conv2d))
