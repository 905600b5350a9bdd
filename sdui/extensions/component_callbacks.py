"""A1111's before_component / after_component: extensions see every component of the page, with its elem_id and
label, and may add their own next to it or attach events to it.

A1111 gets this by patching Gradio's component constructor. Here the page is built first; then, still inside its
Blocks, every component is visited in creation order. What a callback creates is made inside the component's
parent and moved just before (before_component) or just after (after_component) the component, where A1111's
would have landed.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from sdui.extensions import registry

log = logging.getLogger(__name__)


@dataclass
class OnComponent:
    """What Script.on_before_component / on_after_component callbacks receive (A1111 1.7+)."""

    component: Any


def _kwargs(component) -> dict:
    """The constructor arguments A1111 hands the callbacks, as far as extensions read them."""
    names = ("elem_id", "label", "value", "visible", "interactive", "elem_classes")
    return {name: getattr(component, name) for name in names if hasattr(component, name)}


def _tab_of(component) -> str | None:
    """ "txt2img" or "img2img" for a component of those tabs, whose scripts see it (A1111's scripts_current)."""
    block = component
    while block is not None:
        if getattr(block, "elem_id", None) in ("tab_txt2img", "tab_img2img"):
            return block.elem_id.removeprefix("tab_")
        block = getattr(block, "parent", None)
    return None


def _script_calls(scripts, when: str, component, kwargs: dict) -> list:
    """(description, function) of every script of the component's tab that wants it: its before_/after_component
    method and the callbacks it registered for this elem_id."""
    calls = []
    mode = _tab_of(component)
    for loaded in scripts.scripts if scripts is not None and mode is not None else ():
        if loaded.mode != mode:
            continue
        instance = loaded.instance
        method = getattr(instance, f"{when}_component", None)
        if method is not None and getattr(type(instance), f"{when}_component", None) is not _base(when):
            calls.append((loaded.title, lambda m=method: m(component, **kwargs)))
        for elem_id, callback in getattr(instance, f"on_{when}_component_elem_id", None) or ():
            if elem_id == kwargs.get("elem_id"):
                calls.append((loaded.title, lambda c=callback: c(OnComponent(component=component))))
    return calls


def _base(when: str):
    from sdui.extensions.script_api import Script

    return getattr(Script, f"{when}_component")


def _anyone_listens(scripts) -> bool:
    for when in ("before", "after"):
        if registry.callbacks(f"{when}_component"):
            return True
        for loaded in scripts.scripts if scripts is not None else ():
            overridden = getattr(type(loaded.instance), f"{when}_component", None) is not _base(when)
            if overridden or getattr(loaded.instance, f"on_{when}_component_elem_id", None):
                return True
    return False


def run_component_callbacks(blocks, scripts) -> None:
    """Call the before_component and after_component callbacks and scripts' methods for every component in
    `blocks` (which must still be open)."""
    from gradio.blocks import BlockContext
    from gradio.components import Component

    from sdui.extensions.gradio3 import gradio3

    if not _anyone_listens(scripts):
        return
    components = [b for b in list(blocks.blocks.values()) if isinstance(b, Component)]
    with gradio3():
        for component in components:
            parent = getattr(component, "parent", None)
            if not isinstance(parent, BlockContext):
                continue
            kwargs = _kwargs(component)
            for when, offset in (("before", 0), ("after", 1)):
                calls = _script_calls(scripts, when, component, kwargs)  # before `with`: it reads the parents
                grandparent = parent.parent
                with parent:
                    count = len(parent.children)
                    registry.call(f"{when}_component", component, **kwargs)
                    for title, call in calls:
                        try:
                            call()
                        except Exception:  # noqa: BLE001 - one script's error must not break the page
                            log.error("Error in %s_component of script %r:\n%s", when, title, traceback.format_exc())
                parent.parent = grandparent  # entering a layout made the page its parent
                made = parent.children[count:]
                if made:
                    del parent.children[count:]
                    at = parent.children.index(component) + offset
                    parent.children[at:at] = made
