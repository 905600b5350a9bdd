"""Grids: several images in rows and columns, as A1111 lays them out."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageColor


def image_grid(
    images: Sequence[Image.Image],
    rows: int | None = None,
    *,
    batch_size: int = 1,
    prevent_empty_spots: bool = False,
    background: str = "#ffffff",
) -> Image.Image:
    """Images in a rows x cols grid (A1111 n_rows: None/-1 = about square, 0 = batch_size), each centred in a cell
    the size of the largest image."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if rows is None or rows < 0:
        if prevent_empty_spots:
            rows = math.floor(math.sqrt(n))
            while n % rows:
                rows -= 1
        else:
            rows = round(math.sqrt(n))
    elif rows == 0:
        rows = batch_size
    rows = max(1, min(rows, n))
    cols = math.ceil(n / rows)

    cell_w, cell_h = max(im.width for im in images), max(im.height for im in images)
    grid = Image.new("RGB", (cols * cell_w, rows * cell_h), ImageColor.getcolor(background, "RGB"))
    for i, im in enumerate(images):
        x = i % cols * cell_w + (cell_w - im.width) // 2
        y = i // cols * cell_h + (cell_h - im.height) // 2
        grid.paste(im, (x, y))
    return grid
