"""A1111's "generation parameters" text (infotext): writing it (build) and reading it back (parse)."""

from sdui.infotext.build import build_infotext, generation_params, quote
from sdui.infotext.parse import parse_infotext

__all__ = ["build_infotext", "generation_params", "parse_infotext", "quote"]
