"""Cutting an image into overlapping tiles and blending them back, as A1111's SD upscale does it.

Tiles are spread evenly so that the first starts at the left/top edge and the last ends at the right/bottom edge;
neighbours overlap by at least `overlap` pixels. When tiles are put back, each one's first `overlap` columns (and
each row's first `overlap` lines) fade in linearly over what lies beneath, so processed tiles meet without seams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class Tile:
    x: int
    image: Image.Image


@dataclass
class TileRow:
    y: int
    tiles: list[Tile] = field(default_factory=list)


@dataclass
class TileGrid:
    width: int  # of the whole image
    height: int
    tile_width: int
    tile_height: int
    overlap: int
    rows: list[TileRow] = field(default_factory=list)

    def tiles(self) -> list[Tile]:
        """Every tile, row by row (the order they are processed in)."""
        return [tile for row in self.rows for tile in row.tiles]


def tile_count(width: int, height: int, tile_width: int, tile_height: int, overlap: int) -> tuple[int, int]:
    """(columns, rows) of the grid split_tiles makes; overlap must be smaller than both tile sides."""
    if not 0 <= overlap < min(tile_width, tile_height):
        raise ValueError(f"overlap {overlap} must be at least 0 and smaller than the tile ({tile_width}x{tile_height})")
    columns = max(1, math.ceil((width - overlap) / (tile_width - overlap)))
    rows = max(1, math.ceil((height - overlap) / (tile_height - overlap)))
    return columns, rows


def _offsets(size: int, tile: int, count: int) -> list[int]:
    step = (size - tile) / (count - 1) if count > 1 else 0
    # the last tile ends at the edge (a tile larger than the image starts before it: the crop is padded)
    return [size - tile if int(i * step) + tile >= size else int(i * step) for i in range(count)]


def split_tiles(image: Image.Image, tile_width: int, tile_height: int, overlap: int) -> TileGrid:
    columns, rows = tile_count(image.width, image.height, tile_width, tile_height, overlap)
    grid = TileGrid(image.width, image.height, tile_width, tile_height, overlap)
    for y in _offsets(image.height, tile_height, rows):
        row = TileRow(y)
        for x in _offsets(image.width, tile_width, columns):
            row.tiles.append(Tile(x, image.crop((x, y, x + tile_width, y + tile_height))))
        grid.rows.append(row)
    return grid


def _ramp(length: int, across: int, horizontal: bool) -> Image.Image:
    """A mask rising from 0 towards 255 over `length` pixels (across the seam), constant along it."""
    ramp = (np.arange(length, dtype=np.float32) * 255 / length).astype(np.uint8)
    values = np.tile(ramp, (across, 1)) if horizontal else np.tile(ramp[:, None], (1, across))
    return Image.fromarray(values, "L")


def combine_tiles(grid: TileGrid) -> Image.Image:
    """The image the (possibly processed) tiles make together; the grid's tiles must keep their size."""
    o = grid.overlap
    result = Image.new("RGB", (grid.width, grid.height))
    fade_in_x = _ramp(o, grid.tile_height, horizontal=True) if o else None
    fade_in_y = _ramp(o, grid.width, horizontal=False) if o else None
    for row in grid.rows:
        strip = Image.new("RGB", (grid.width, grid.tile_height))
        for tile in row.tiles:
            if tile.x == 0 or fade_in_x is None:
                strip.paste(tile.image, (tile.x, 0))
                continue
            strip.paste(tile.image.crop((0, 0, o, grid.tile_height)), (tile.x, 0), mask=fade_in_x)
            strip.paste(tile.image.crop((o, 0, grid.tile_width, grid.tile_height)), (tile.x + o, 0))
        if row.y == 0 or fade_in_y is None:
            result.paste(strip, (0, row.y))
            continue
        result.paste(strip.crop((0, 0, grid.width, o)), (0, row.y), mask=fade_in_y)
        result.paste(strip.crop((0, o, grid.width, grid.tile_height)), (0, row.y + o))
    return result
