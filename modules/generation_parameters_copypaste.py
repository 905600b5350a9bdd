"""A1111's old name of `modules.infotext_utils`."""

from modules.infotext_utils import parse_generation_parameters, read_info_from_image

__all__ = ["parse_generation_parameters", "read_info_from_image"]
