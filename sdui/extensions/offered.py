"""The scripts a request or the Script dropdown can name: the program's own (SD upscale) and the extensions'
selectable scripts; and the always-on ones, as /sdapi/v1/script-info describes them."""

from __future__ import annotations

from sdui.app.selectable_scripts import SelectableScript, builtin_scripts
from sdui.upscalers.upscaling import upscaler_names

BUILTIN_ALWAYSON = "controlnet"  # the built-in ControlNet answers to the extension's always-on script name


def selectable_scripts(ctx) -> list[SelectableScript]:
    from sdui.extensions.bridge import script_runner

    found = builtin_scripts(upscaler_names())
    runtime = getattr(ctx, "extensions", None)
    if runtime is not None:
        found += runtime.scripts.as_selectable(script_runner)
    return found


def script_infos(ctx) -> list[dict]:
    """A1111's ScriptInfo list: selectable and always-on scripts of both tabs."""
    from sdui.extensions.bridge import MODES, _arg_info

    infos = [s.info(mode) for mode in MODES for s in selectable_scripts(ctx) if mode in s.modes]
    if getattr(ctx, "controlnet", None) is not None:  # built in, listed as the extension's script is
        infos += [
            {"name": BUILTIN_ALWAYSON, "is_alwayson": True, "is_img2img": mode == "img2img", "args": []}
            for mode in MODES
        ]
    runtime = getattr(ctx, "extensions", None)
    if runtime is not None:
        for mode in MODES:
            for script in runtime.scripts.alwayson(mode):
                infos.append(
                    {
                        "name": script.title.lower(),
                        "is_alwayson": True,
                        "is_img2img": mode == "img2img",
                        "args": [_arg_info(c) for c in script.controls],
                    }
                )
    return infos


def check_alwayson(ctx, names, mode: str) -> None:
    """A1111's 422 for always-on scripts the server does not have."""
    from sdui.errors import InvalidRequestError

    if getattr(ctx, "controlnet", None) is not None:
        names = [n for n in names if str(n).lower() != BUILTIN_ALWAYSON]
    runtime = getattr(ctx, "extensions", None)
    if runtime is None:
        if names:
            raise InvalidRequestError(
                f"Always-on script(s) {', '.join(map(repr, names))} not found: no extension with always-on scripts "
                "is loaded. Send an empty alwayson_scripts."
            )
        return
    runtime.scripts.check_alwayson_names(names, mode)
