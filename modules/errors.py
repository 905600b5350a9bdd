"""A1111's `modules.errors`: report(), display(), display_once() into our log."""

from sdui.extensions.a1111_helpers import display, display_once, print_error_explanation, report

__all__ = ["display", "display_once", "print_error_explanation", "report"]
