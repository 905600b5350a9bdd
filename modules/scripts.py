"""A1111's `modules.scripts`: the Script class extensions subclass, AlwaysVisible, basedir() and the argument
objects of Script's methods. Defined in sdui.extensions.script_api."""

from sdui.extensions.script_api import (
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostSampleArgs,
    Script,
    basedir,
)

__all__ = [
    "AlwaysVisible",
    "MaskBlendArgs",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "Script",
    "basedir",
]
