"""The scripts a request can pick by name (A1111's `script_name` / `script_args`) that ship with this program.

A selectable script runs in place of process(): `runner(script_args)` gives the callable that generate() calls with
process()'s arguments. Titles match case-insensitively, as A1111's API matches them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sdui.errors import InvalidRequestError


@dataclass(frozen=True)
class SelectableScript:
    title: str
    modes: tuple[str, ...]  # the tabs it belongs to: "txt2img", "img2img"
    args: tuple[dict, ...]  # /sdapi/v1/script-info's description of script_args, in order
    make_runner: Callable[[Sequence], Callable]

    def runner(self, script_args: Sequence) -> Callable:
        """The callable that replaces process() for these arguments; InvalidRequestError for bad ones."""
        return self.make_runner(script_args)

    def info(self, mode: str) -> dict:
        """A1111's ScriptInfo."""
        return {
            "name": self.title.lower(),
            "is_alwayson": False,
            "is_img2img": mode == "img2img",
            "args": list(self.args),
        }


def _sd_upscale_runner(script_args: Sequence) -> Callable:
    from sdui.core.sd_upscale import SdUpscaleArgs, sd_upscale  # late: it imports torch

    return functools.partial(sd_upscale, args=SdUpscaleArgs.from_script_args(script_args))


def _prompts_runner(script_args: Sequence) -> Callable:
    from sdui.core.prompts_from_file import PromptsArgs, prompts_from_file  # late: it imports torch

    return functools.partial(prompts_from_file, args=PromptsArgs.from_script_args(script_args))


def _matrix_runner(script_args: Sequence) -> Callable:
    from sdui.core.prompt_matrix import MatrixArgs, prompt_matrix  # late: it imports torch

    return functools.partial(prompt_matrix, args=MatrixArgs.from_script_args(script_args))


def _loopback_runner(script_args: Sequence) -> Callable:
    from sdui.core.loopback import LoopbackArgs, loopback  # late: it imports torch

    return functools.partial(loopback, args=LoopbackArgs.from_script_args(script_args))


def _xyz_runner(mode: str) -> Callable[[Sequence], Callable]:
    def make(script_args: Sequence) -> Callable:
        from sdui.core.xyz_plot import XyzArgs, xyz_plot  # late: it imports torch

        return functools.partial(xyz_plot, args=XyzArgs.from_script_args(script_args, mode))

    return make


def _xyz_args(mode: str) -> tuple[dict, ...]:
    from sdui.core.xyz_plot import axes_for

    labels = [a.label for a in axes_for(mode)]
    axis = []
    for name, default in (("X", 1), ("Y", 0), ("Z", 0)):
        axis += [
            _arg(f"{name} type", labels[default], choices=labels),
            _arg(f"{name} values", ""),
            _arg(f"{name} values", None, choices=[]),
        ]
    return (
        *axis,
        _arg("Draw legend", True),
        _arg("Include Sub Images", False),
        _arg("Include Sub Grids", False),
        _arg("Keep -1 for seeds", False),
        _arg("Vary seeds for X", False),
        _arg("Vary seeds for Y", False),
        _arg("Vary seeds for Z", False),
        _arg("Grid margins (px)", 0, minimum=0, maximum=500, step=2),
        _arg("Use text inputs instead of dropdowns", False),
    )


def _arg(label: str, value, **extra) -> dict:
    return {"label": label, "value": value, "minimum": None, "maximum": None, "step": None, "choices": None, **extra}


def builtin_scripts(upscalers: Sequence[str]) -> list[SelectableScript]:
    return [
        SelectableScript(
            title="Loopback",
            modes=("img2img",),
            args=(
                _arg("Loops", 4, minimum=1, maximum=32, step=1),
                _arg("Final denoising strength", 0.5, minimum=0, maximum=1, step=0.01),
                _arg("Denoising strength curve", "Linear", choices=["Aggressive", "Linear", "Lazy"]),
                _arg("Append interrogated prompt at each iteration", "None", choices=["None"]),
            ),
            make_runner=_loopback_runner,
        ),
        SelectableScript(
            title="Prompt matrix",
            modes=("txt2img", "img2img"),
            args=(
                _arg("Put variable parts at start of prompt", False),
                _arg("Use different seed for each picture", False),
                _arg("Select prompt", "positive", choices=["positive", "negative"]),
                _arg("Select joining char", "comma", choices=["comma", "space"]),
                _arg("Grid margins (px)", 0, minimum=0, maximum=500, step=2),
            ),
            make_runner=_matrix_runner,
        ),
        SelectableScript(
            title="Prompts from file or textbox",
            modes=("txt2img", "img2img"),
            args=(
                _arg("Iterate seed every line", False),
                _arg("Use same random seed for all lines", False),
                _arg("Insert prompts at the", "start", choices=["start", "end"]),
                _arg("List of prompt inputs", ""),
            ),
            make_runner=_prompts_runner,
        ),
        SelectableScript(
            title="SD upscale",
            modes=("img2img",),
            args=(
                _arg(
                    "Info", "Enlarges the image by the scale factor, then redraws it in tiles of the width and height"
                ),
                _arg("Tile overlap", 64, minimum=0, maximum=256, step=16),
                _arg("Upscaler", upscalers[0] if upscalers else "None", choices=list(upscalers)),
                _arg("Scale Factor", 2.0, minimum=1.0, maximum=4.0, step=0.05),
            ),
            make_runner=_sd_upscale_runner,
        ),
        *(
            SelectableScript(title="X/Y/Z plot", modes=(mode,), args=_xyz_args(mode), make_runner=_xyz_runner(mode))
            for mode in ("txt2img", "img2img")
        ),
    ]


def find_script(scripts: Sequence[SelectableScript], name: str, mode: str) -> SelectableScript:
    """The script titled `name` in tab `mode`; InvalidRequestError naming the ones there are."""
    for script in scripts:
        if script.title.lower() == name.strip().lower() and mode in script.modes:
            return script
    offered = [s.title.lower() for s in scripts if mode in s.modes]
    there = f"use one of: {', '.join(map(repr, offered))}" if offered else "there are none"
    raise InvalidRequestError(f"Script {name!r} not found for {mode}; {there}. Leave script_name empty for none.")
