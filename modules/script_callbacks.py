"""A1111's `modules.script_callbacks`: on_<category>(callback, *, name=None) registrations. The callbacks run at
our hook points (sdui.extensions.bridge) and app events, with A1111's parameter objects."""

from sdui.core.hooks import AfterCFGParams as AfterCFGCallbackParams
from sdui.core.hooks import DenoisedParams as CFGDenoisedParams
from sdui.core.hooks import DenoiserParams as CFGDenoiserParams
from sdui.extensions.registry import CATEGORIES, add_callback


def _register(category):
    def register(callback, *, name=None):
        add_callback(category, callback, name)

    register.__name__ = f"on_{category}"
    register.__doc__ = f"Call `callback` at A1111's {category} point."
    return register


for _category in CATEGORIES:
    globals()[f"on_{_category}"] = _register(_category)


def __getattr__(name):
    """An on_<something> A1111 may add later: accepted (and logged as unknown), never called."""
    if name.startswith("on_"):
        return _register(name[3:])
    raise AttributeError(name)


__all__ = ["AfterCFGCallbackParams", "CFGDenoisedParams", "CFGDenoiserParams", *(f"on_{c}" for c in CATEGORIES)]
