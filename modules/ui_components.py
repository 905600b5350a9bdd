"""A1111's `modules.ui_components`: ToolButton, FormRow, FormColumn, FormGroup, FormHTML, DropdownMulti,
InputAccordion."""

from sdui.ui.a1111_components import (
    DropdownMulti,
    FormColumn,
    FormGroup,
    FormHTML,
    FormRow,
    InputAccordion,
    ToolButton,
)

__all__ = ["DropdownMulti", "FormColumn", "FormGroup", "FormHTML", "FormRow", "InputAccordion", "ToolButton"]
