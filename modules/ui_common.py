"""A1111's `modules.ui_common`: create_refresh_button, plaintext_to_html (sdui.ui.a1111_components)."""

from sdui.ui.a1111_components import REFRESH_SYMBOL as refresh_symbol
from sdui.ui.a1111_components import ToolButton, create_refresh_button, plaintext_to_html

__all__ = ["ToolButton", "create_refresh_button", "plaintext_to_html", "refresh_symbol"]
