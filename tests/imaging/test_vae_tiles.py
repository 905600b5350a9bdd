"""Tiled VAE: the tile grid, the cross-fade, and tiled decode/encode against the untiled VAE on the test VAE.

Tolerances, measured on the test VAE (tests/fixtures, random weights) with tiles of at most 256 px (32 latents) and
an overlap of 64 px; a 416x320 image is cut into 2 x 2 tiles of 240x192 px:
- decode: mean |tiled - untiled| = 0.049 x the image's standard deviation (2.1/255 in 8-bit; other seeds up to
  0.058), about the same inside single tiles as in the overlaps; asserted <= 0.08 x. A tile sees zero padding at its
  edges and its own GroupNorm statistics and attention, so no pixel is exact; the cross-fade spreads that instead of
  leaving seams. (This small VAE reaches far for its tiles; the full-size SD VAE at 1024x1024 in tiles of at most
  512 px differs by 1.4/255: bench/bench_vae_tiling.py.)
- seams: the jump of (tiled - untiled) from one pixel row/column to the next, averaged along a line, is 0.7-1.4x its
  average over all lines on every tile edge; tiles put side by side without the cross-fade give 5-7x. Asserted <= 2x.
- encode: mean |tiled - untiled| latents = 0.22 x the latents' standard deviation on a picture-like image; asserted
  <= 0.3 x. Larger than decoding, and larger inside the tiles than where they overlap: the encoder's GroupNorm
  statistics of a tile follow the picture's content there (a darker tile normalises differently), where the
  decoder's latents are alike everywhere.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from sdui.imaging.vae import JobVae, decode, encode
from sdui.imaging.vae_tiles import NEVER, VaeTiling, blend_tiles, ramp, spans
from tests.fixtures.ldm_unet_vae import tiny_vae

TILE = 256  # px: at most 32 latents, overlap 8 latents
TILED = VaeTiling(above_pixels=1, tile=TILE)
SMALL_TILES = VaeTiling(above_pixels=1, tile=128)  # where closeness is not measured: 16 latents, overlap 4


@pytest.fixture(scope="module")
def vae():
    return tiny_vae("sd1")


@pytest.fixture(scope="module")
def decoded(vae):
    """(latents, untiled decode, tiled decode) of a 416x320 image: four tiles."""
    z = latents(52, 40)
    return z, decode(vae, z), decode(vae, z, TILED)


def latents(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Scaled latents as the sampler hands them over (about unit variance)."""
    return torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(seed))


def picture(height: int, width: int) -> torch.Tensor:
    """A (1, 3, H, W) image in [-1, 1] whose content differs across it (gradients, waves, grain)."""
    y = torch.linspace(-1, 1, height)[:, None]
    x = torch.linspace(-1, 1, width)[None, :]
    rgb = torch.stack([0.6 * y + 0.3 * torch.sin(9 * x), 0.5 * x * y + 0.2 * torch.cos(7 * y), -0.4 * x + 0.3 * y])
    grain = 0.1 * torch.randn(rgb.shape, generator=torch.Generator().manual_seed(1))
    return (rgb + grain).clamp(-1, 1)[None]


def tile_edges(size: int, cells: list[tuple[int, int]], cell: int) -> list[int]:
    """Indices i (in output elements) where a tile starts or ends between element i - 1 and i."""
    return sorted({v * cell for a, b in cells for v in (a, b) if 0 < v * cell < size})


def seam_ratios(diff: torch.Tensor, rows: list, columns: list, cell: int) -> list[float]:
    """For every tile edge: the mean jump of `diff` (tiled - untiled) across it, over its mean jump across all other
    lines. About 1 without seams."""
    ratios = []
    for axis, cells in ((2, rows), (3, columns)):
        jumps = diff.diff(dim=axis).abs().mean(dim=(0, 1, 5 - axis))  # one value per line between two rows/columns
        edges = [i - 1 for i in tile_edges(diff.shape[axis], cells, cell)]
        elsewhere = torch.ones_like(jumps, dtype=torch.bool)
        elsewhere[edges] = False
        ratios += [(jumps[i] / jumps[elsewhere].mean()).item() for i in edges]
    return ratios


# ------------------------------------------------------------------------------------------------ the grid


@pytest.mark.parametrize(
    "size, tile, overlap", [(52, 32, 8), (33, 32, 8), (256, 64, 16), (128, 64, 16), (100, 64, 16), (32, 32, 8)]
)
def test_tiles_are_whole_cover_the_image_edge_to_edge_and_overlap_enough(size, tile, overlap):
    cells = spans(size, tile, overlap)
    assert cells[0][0] == 0 and cells[-1][1] == size
    assert all(prev_end - start >= overlap for (_, prev_end), (start, _) in zip(cells, cells[1:], strict=False))
    count = 1 if size <= tile else math.ceil((size - overlap) / (tile - overlap))  # as few as the tile size allows
    assert len(cells) == count
    # all of one length, no short strip at the far edge, and no longer than that many tiles need
    assert {b - a for a, b in cells} == {math.ceil((size + (count - 1) * overlap) / count)}
    assert cells[0][1] - cells[0][0] <= tile


def test_the_cross_fade_of_two_neighbours_sums_to_one_and_never_drops_a_tile():
    w = ramp(64, 16)
    assert w.min() > 0 and (w[16:48] == 1).all()
    fading_out, fading_in = w[-16:], w[:16]  # the overlap of a tile and the next one, 48 elements further
    assert torch.allclose(fading_out + fading_in, torch.ones(16))
    assert (fading_in.diff() > 0).all()


@pytest.mark.parametrize("x_cell, out_cell", [(1, 8), (8, 1)])
def test_a_function_of_each_position_alone_is_tiled_exactly(x_cell, out_cell):
    """With no neighbourhood to lose, tiling changes nothing: this checks the geometry and the weights."""

    def pointwise(t):
        scaled = F.interpolate(t, scale_factor=out_cell) if out_cell > 1 else F.avg_pool2d(t, x_cell)
        return torch.tanh(scaled) * 2 + 1

    x = torch.randn(2, 4, 52 * x_cell, 40 * x_cell, generator=torch.Generator().manual_seed(0))
    tiled = blend_tiles(pointwise, x, grid=(52, 40), tile=32, overlap=8, x_cell=x_cell, out_cell=out_cell)
    assert torch.allclose(tiled, pointwise(x), atol=1e-6)


def test_the_threshold_counts_the_pixels_of_one_image():
    default = VaeTiling(above_pixels=4_000_000)  # the setting's default, 4 megapixels
    assert not default.applies(1024, 1024) and not default.applies(1536, 1536) and default.applies(2048, 2048)
    assert not NEVER.applies(8192, 8192)


# ------------------------------------------------------------------------------------------------ through the VAE


def test_below_the_threshold_nothing_changes_bit_for_bit(vae):
    z, pixels = latents(24, 16), picture(192, 128)
    just_below = VaeTiling(above_pixels=192 * 128, tile=128)
    assert torch.equal(decode(vae, z, just_below), decode(vae, z))
    assert torch.equal(encode(vae, pixels, just_below), encode(vae, pixels))
    fits_in_a_tile = VaeTiling(above_pixels=1, tile=192)
    assert torch.equal(decode(vae, z, fits_in_a_tile), decode(vae, z))


def test_tiled_decode_is_close_to_the_untiled_one_and_has_no_seams(decoded):
    _, untiled, tiled = decoded
    assert tiled.shape == untiled.shape == (1, 3, 416, 320)
    diff = tiled - untiled
    rows, columns = spans(52, 32, 8), spans(40, 32, 8)
    assert len(rows) == len(columns) == 2  # four tiles
    cover = torch.zeros(416, 320)
    for y0, y1 in rows:
        for x0, x1 in columns:
            cover[y0 * 8 : y1 * 8, x0 * 8 : x1 * 8] += 1
    single = cover == 1  # pixels only one tile covers: away from the seams
    error = diff.abs().mean(1)[0]
    assert error.mean() <= 0.08 * untiled.std()
    assert error[single].mean() <= 0.08 * untiled.std()
    assert error[~single].mean() <= 2 * error[single].mean()  # the overlaps are not where it goes wrong
    assert max(seam_ratios(diff, rows, columns, 8)) <= 2.0


@pytest.mark.slow
def test_the_seam_measure_sees_tiles_put_side_by_side_without_the_cross_fade(vae, decoded):
    """The control for the seam assertion above: the same tiles, averaged where they overlap but not faded."""
    z, untiled, _ = decoded
    with torch.no_grad():
        hard = blend_tiles(
            lambda part: vae.decode(part).sample,
            z / vae.config.scaling_factor,
            grid=(52, 40),
            tile=32,
            overlap=0,
            x_cell=1,
            out_cell=8,
        )
    ratios = seam_ratios(hard - untiled, spans(52, 32, 0), spans(40, 32, 0), 8)
    assert min(ratios) > 3.0


def test_tiled_encode_is_close_to_the_untiled_one_and_has_no_seams(vae):
    pixels = picture(416, 320)
    untiled = encode(vae, pixels)
    tiled = encode(vae, pixels, TILED)
    assert tiled.shape == untiled.shape == (1, 4, 52, 40)
    diff = tiled - untiled
    assert diff.abs().mean() <= 0.3 * untiled.std()
    assert max(seam_ratios(diff, spans(52, 32, 8), spans(40, 32, 8), 1)) <= 2.0


def test_a_batch_is_tiled_image_by_image_as_each_image_alone(vae):
    z = torch.cat([latents(24, 16, seed=1), latents(24, 16, seed=2)])
    together = decode(vae, z, SMALL_TILES)
    assert torch.allclose(together[1:], decode(vae, z[1:], SMALL_TILES), atol=1e-5)


def test_an_overflowing_half_precision_vae_is_decoded_again_in_float32_in_tiles(vae, caplog):
    """JobVae's NaN fallback works tile by tile too: the float32 retry is the float32 tiled decode."""
    import logging

    z = latents(24, 16) * 3e4  # passes fp16's 65504 inside the decoder (see tests/core/test_processing.py)
    half = tiny_vae("sd1").to(torch.float16)
    reference = decode(tiny_vae("sd1").to(torch.float16).to(torch.float32), z, SMALL_TILES)  # same rounded weights
    assert torch.isfinite(reference).all()
    model = SimpleNamespace(vae=half, vae_overflows=False)
    with caplog.at_level(logging.WARNING), JobVae(model, tiling=SMALL_TILES) as job_vae:
        decoded = job_vae.decode(z)
    assert "decoding in float32 instead" in caplog.text and model.vae_overflows
    assert half.dtype == torch.float16  # handed back as loaded
    assert torch.equal(decoded, reference)
