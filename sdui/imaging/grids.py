"""Grids: several images in rows and columns, as A1111 lays them out."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageColor


def grid_shape(
    count: int, rows: int | None = None, *, batch_size: int = 1, prevent_empty_spots: bool = False
) -> tuple[int, int]:
    """(rows, cols) for `count` images (A1111 n_rows: None/-1 = about square, 0 = batch_size)."""
    if count == 0:
        raise ValueError("a grid needs at least one image")
    if rows is None or rows < 0:
        if prevent_empty_spots:
            rows = math.floor(math.sqrt(count))
            while count % rows:
                rows -= 1
        else:
            rows = round(math.sqrt(count))
    elif rows == 0:
        rows = batch_size
    rows = max(1, min(rows, count))
    return rows, math.ceil(count / rows)


def draw_grid(images: Sequence[Image.Image], rows: int, cols: int, *, background: str = "#ffffff") -> Image.Image:
    """Images row by row in a rows x cols grid, each centred in a cell the size of the largest image."""
    if not images:
        raise ValueError("a grid needs at least one image")
    rows, cols = max(1, int(rows)), max(1, int(cols))
    cell_w, cell_h = max(im.width for im in images), max(im.height for im in images)
    grid = Image.new("RGB", (cols * cell_w, rows * cell_h), ImageColor.getcolor(background, "RGB"))
    for i, im in enumerate(images[: rows * cols]):
        x = i % cols * cell_w + (cell_w - im.width) // 2
        y = i // cols * cell_h + (cell_h - im.height) // 2
        grid.paste(im, (x, y))
    return grid


def image_grid(
    images: Sequence[Image.Image],
    rows: int | None = None,
    *,
    batch_size: int = 1,
    prevent_empty_spots: bool = False,
    background: str = "#ffffff",
) -> Image.Image:
    """grid_shape + draw_grid."""
    rows, cols = grid_shape(len(images), rows, batch_size=batch_size, prevent_empty_spots=prevent_empty_spots)
    return draw_grid(images, rows, cols, background=background)


def annotated_grid(
    grid: Image.Image,
    cell_w: int,
    cell_h: int,
    column_labels: Sequence[str],
    row_labels: Sequence[str],
    *,
    margin: int = 0,
) -> Image.Image:
    """`grid` (cells of cell_w x cell_h, plus `margin` pixels between them) with a band of column labels above
    and of row labels on the left, as A1111's X/Y/Z plot draws its legend (black text on white)."""
    from PIL import ImageDraw, ImageFont

    size = max(12, min(cell_w, cell_h) // 16)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        font = ImageFont.load_default()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = draw_probe.multiline_textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    top = (max((text_size(t)[1] for t in column_labels if t), default=0) + size) if any(column_labels) else 0
    left = (max((text_size(t)[0] for t in row_labels if t), default=0) + size) if any(row_labels) else 0
    out = Image.new("RGB", (grid.width + left, grid.height + top), "white")
    out.paste(grid, (left, top))
    draw = ImageDraw.Draw(out)
    for i, label in enumerate(column_labels):
        w, h = text_size(label)
        x = left + i * (cell_w + margin) + (cell_w - w) // 2
        draw.multiline_text((x, (top - h) // 2), label, fill="black", font=font, align="center")
    for j, label in enumerate(row_labels):
        w, h = text_size(label)
        y = top + j * (cell_h + margin) + (cell_h - h) // 2
        draw.multiline_text(((left - w) // 2, y), label, fill="black", font=font, align="center")
    return out
