"""A1111's `modules.paths`: the program's and the user's folders (script_path, data_path, models_path, ...)."""

from sdui.extensions.a1111_helpers import path_constant


def __getattr__(name):
    return path_constant(name)
