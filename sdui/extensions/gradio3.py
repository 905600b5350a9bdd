"""Gradio 3 spellings that A1111 extensions use, understood while extension code runs (and only then).

A1111 1.10 ran Gradio 3.41; we run Gradio 6. While an extension builds its UI (a script's ui(), an on_ui_tabs
callback) and while the event handlers it registered run, `gradio3()` makes these work:

| extension writes (Gradio 3)              | runs as (Gradio 6)                          |
|------------------------------------------|---------------------------------------------|
| `button.click(fn, ..., _js="f")`         | `button.click(fn, ..., js="f")`             |
| `gr.Button.update(visible=True)`         | `gr.update(visible=True)` (any component)   |
| `component.style(...)`                   | ignored (layout options moved to arguments) |
| `gr.Box()`                               | `gr.Group()`                                |
| `gr.Image(source="upload", tool=...)`    | `gr.Image(sources=["upload"])`              |

It adds these names to Gradio's classes on entry and takes them away on exit (counted, so that handlers of
several extensions may run at once); Gradio's own code never uses them, so the rest of the page is unaffected.
"""

from __future__ import annotations

import functools
import inspect
import threading

import gradio as gr
from gradio.components import Component

_lock = threading.Lock()
_depth = 0
_saved: list[tuple[object, str, object]] = []
_MISSING = object()


def _classes() -> list[type]:
    found = []
    for module in (gr.components, gr.layouts):
        for value in vars(module).values():
            if isinstance(value, type) and (issubclass(value, Component) or module is gr.layouts):
                found.append(value)
    return found


def _update(**kwargs):
    return gr.update(**kwargs)


def _style(self, *args, **kwargs):
    return self


def _event_names(cls) -> list[str]:
    return [e if isinstance(e, str) else e.event_name for e in getattr(cls, "EVENTS", [])]


def _translating(method):
    @functools.wraps(method)
    def event(self, *args, _js=None, **kwargs):
        if _js is not None and "js" not in kwargs:
            kwargs["js"] = _js
        fn = kwargs.get("fn", args[0] if args else None)
        if callable(fn):
            wrapped = _in_gradio3(fn)
            if "fn" in kwargs:
                kwargs["fn"] = wrapped
            else:
                args = (wrapped, *args[1:])
        return method(self, *args, **kwargs)

    return event


def _in_gradio3(fn):
    """The handler, run with the Gradio 3 spellings available (Gradio reads its signature through __wrapped__)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with gradio3():
                yield from fn(*args, **kwargs)

        return generator

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        with gradio3():
            return fn(*args, **kwargs)

    return handler


def _image_init(original):
    @functools.wraps(original)
    def init(self, *args, source=None, tool=None, **kwargs):
        if source is not None and "sources" not in kwargs:
            kwargs["sources"] = [source] if isinstance(source, str) else list(source)
        return original(self, *args, **kwargs)

    return init


def _set(obj, name: str, value) -> None:
    _saved.append((obj, name, obj.__dict__.get(name, _MISSING) if isinstance(obj, type) else getattr(obj, name, _MISSING)))
    setattr(obj, name, value)


def _apply() -> None:
    for cls in _classes():
        if "update" not in cls.__dict__:
            _set(cls, "update", staticmethod(_update))
        if "style" not in cls.__dict__:
            _set(cls, "style", _style)
        for name in _event_names(cls):
            method = cls.__dict__.get(name)
            if method is not None:
                _set(cls, name, _translating(method))
    _set(gr.Image, "__init__", _image_init(gr.Image.__init__))
    if not hasattr(gr, "Box"):
        _set(gr, "Box", gr.Group)


def _restore() -> None:
    while _saved:
        obj, name, value = _saved.pop()
        if value is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, value)


class gradio3:  # noqa: N801 - used as `with gradio3():`, like a function
    def __enter__(self):
        global _depth
        with _lock:
            if _depth == 0:
                _apply()
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()
        return False
