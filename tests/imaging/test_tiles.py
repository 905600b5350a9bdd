"""Tiles for SD upscale: where they lie, and how processed tiles blend back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.imaging.tiles import combine_tiles, split_tiles, tile_count


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("size, tile, overlap", [((128, 128), 64, 8), ((200, 120), 64, 16), ((64, 64), 64, 0)])
def test_tiles_cover_the_image_edge_to_edge_and_put_back_give_it_unchanged(size, tile, overlap):
    image = noise_image(*size)
    grid = split_tiles(image, tile, tile, overlap)
    xs = [t.x for t in grid.rows[0].tiles]
    ys = [row.y for row in grid.rows]
    assert xs[0] == 0 and xs[-1] + tile == size[0] and ys[0] == 0 and ys[-1] + tile == size[1]
    assert all(b - a <= tile - overlap for a, b in zip(xs, xs[1:], strict=False))  # neighbours overlap enough
    for t in grid.tiles():
        assert t.image.size == (tile, tile)
    assert np.array_equal(np.asarray(combine_tiles(grid)), np.asarray(image.convert("RGB")))


def test_a1111s_tile_counts():
    # 128 wide, tiles of 64 overlapping by 8: (128 - 8) / 56 -> 3 columns at x = 0, 32, 64
    assert tile_count(128, 128, 64, 64, 8) == (3, 3)
    assert [t.x for t in split_tiles(noise_image(128, 64), 64, 64, 8).rows[0].tiles] == [0, 32, 64]
    assert tile_count(64, 64, 64, 64, 8) == (1, 1)
    with pytest.raises(ValueError, match="smaller than the tile"):
        tile_count(128, 128, 64, 64, 64)


def test_the_seam_fades_linearly_from_one_tile_into_the_next():
    grid = split_tiles(Image.new("RGB", (96, 64)), 64, 64, 32)  # two tiles: x = 0 and x = 32
    first, second = grid.rows[0].tiles
    first.image = Image.new("RGB", (64, 64), (0, 0, 0))
    second.image = Image.new("RGB", (64, 64), (255, 255, 255))
    row = np.asarray(combine_tiles(grid))[10, :, 0].astype(int)
    assert (row[:32] == 0).all() and (row[64:] == 255).all()
    seam = row[32:64]
    assert seam[0] == 0 and (np.diff(seam) > 0).all()  # rises across the overlap
    assert abs(seam[16] - 127) <= 2
