"""A1111's `modules.infotext_utils`: reading generation parameters back from text and images."""

from sdui.extensions.a1111_helpers import parse_generation_parameters, read_info_from_image

__all__ = ["parse_generation_parameters", "read_info_from_image"]
