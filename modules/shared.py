"""A1111's `modules.shared`: the running app's settings (`opts`), flags (`cmd_opts`), model, device and the
settings declarations (OptionInfo, options_section). Resolved when read, from the app this process runs
(sdui.extensions.shared_api)."""

from sdui.extensions.shared_api import OptionHTML, OptionInfo, lookup, options_section


def __getattr__(name):
    return lookup(name)


__all__ = ["OptionHTML", "OptionInfo", "options_section"]
