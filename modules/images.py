"""A1111's `modules.images`: save_image, image_grid, resize_image, read_info_from_image and file name helpers
(sdui.extensions.images_api)."""

from sdui.extensions.images_api import (
    LANCZOS,
    NEAREST,
    ImageSaveParams,
    get_next_sequence_number,
    image_grid,
    read_info_from_image,
    resize_image,
    sanitize_filename_part,
    save_image,
)

__all__ = [
    "LANCZOS",
    "NEAREST",
    "ImageSaveParams",
    "get_next_sequence_number",
    "image_grid",
    "read_info_from_image",
    "resize_image",
    "sanitize_filename_part",
    "save_image",
]
