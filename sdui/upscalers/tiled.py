"""Running an image-to-image network tile by tile, so a large image never needs the whole activation at once.

Each tile is processed with `overlap` extra input pixels of context on every side, and only its centre goes into the
result. For a convolutional network whose receptive field reaches no further than `overlap` pixels the result equals
the untiled run exactly; for deeper ones the seams stay invisible because every output pixel comes from the tile in
which it sits furthest from an edge (no blending of two disagreeing predictions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


def tile_starts(size: int, tile: int) -> list[int]:
    """Starts of the tiles covering 0..size in steps of `tile` (the last one may be shorter)."""
    return list(range(0, size, tile)) if tile > 0 else [0]


def run_tiled(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """model(image) for a (1, C, H, W) image, computed tile by tile; `tile` 0 (or a tile covering the image) runs
    it whole. `on_tile(done, total)` reports progress."""
    _, _, h, w = image.shape
    if tile <= 0 or (tile >= h and tile >= w):
        out = model(image)
        if on_tile is not None:
            on_tile(1, 1)
        return out
    overlap = max(0, overlap)
    boxes = list(_boxes(h, w, tile))
    result: torch.Tensor | None = None
    for done, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        # 1. the tile with its context, clipped to the image
        cy0, cy1 = max(0, y0 - overlap), min(h, y1 + overlap)
        cx0, cx1 = max(0, x0 - overlap), min(w, x1 + overlap)
        out = model(image[:, :, cy0:cy1, cx0:cx1])
        if result is None:
            result = out.new_zeros((1, out.shape[1], h * scale, w * scale))
        # 2. only the tile's own area goes into the result
        oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
        result[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = out[
            :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
        ]
        if on_tile is not None:
            on_tile(done, len(boxes))
    assert result is not None
    return result


def _boxes(h: int, w: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    for y in tile_starts(h, tile):
        for x in tile_starts(w, tile):
            yield y, min(h, y + tile), x, min(w, x + tile)
