"""A1111's `modules.paths_internal`: the same folder constants as modules.paths."""

from sdui.extensions.a1111_helpers import path_constant


def __getattr__(name):
    return path_constant(name)
