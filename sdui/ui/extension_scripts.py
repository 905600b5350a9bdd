"""Extensions' scripts in a generation tab, as A1111 lays them out: each always-on script's controls in an
accordion of their own, and a "Script" dropdown whose choice shows that script's controls and runs it instead of
the plain generation. The values travel as A1111's API sends them (alwayson_scripts[title]["args"], the selected
script's args), so the UI and the API run scripts the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass, field

import gradio as gr

log = logging.getLogger(__name__)
NONE = "None"


@dataclass
class ScriptControls:
    dropdown: gr.Dropdown | None = None
    selectable: list = field(default_factory=list)  # (LoadedScript, group, controls)
    alwayson: list = field(default_factory=list)  # (LoadedScript, controls)

    @property
    def inputs(self) -> list:
        controls = [c for _, _, cs in self.selectable for c in cs] + [c for _, cs in self.alwayson for c in cs]
        return ([self.dropdown] if self.dropdown is not None else []) + controls

    def apply(self, request, values: list):
        """The request with its always-on scripts' arguments, and the selected script's runner (None: none)."""
        from sdui.extensions.bridge import script_runner

        values = list(values)
        choice = values.pop(0) if self.dropdown is not None else NONE
        runner = None
        for script, _, controls in self.selectable:
            args, values = values[: len(controls)], values[len(controls) :]
            if script.title == choice:
                runner = script_runner(script, args)
        alwayson = {}
        for script, controls in self.alwayson:
            args, values = values[: len(controls)], values[len(controls) :]
            alwayson[script.title] = {"args": args}
        return dataclasses.replace(request, alwayson_scripts=alwayson), runner


def _controls(script) -> list:
    from sdui.extensions.gradio3 import gradio3

    try:
        with gradio3():
            made = script.instance.ui(script.mode == "img2img")
    except Exception:  # noqa: BLE001 - an extension's UI error is reported, the tab still builds
        log.error("Script %r: ui() failed:\n%s", script.title, traceback.format_exc())
        return []
    if made is None:
        return []
    return list(made.values()) if isinstance(made, dict) else list(made)


def create_script_controls(ctx, mode: str) -> ScriptControls | None:
    """The controls of the loaded extensions' scripts for tab `mode` (txt2img or img2img); None without any."""
    runtime = getattr(ctx, "extensions", None)
    if runtime is None or not runtime.scripts.scripts:
        return None
    found = ScriptControls()
    for script in runtime.scripts.alwayson(mode):
        with gr.Accordion(script.title, open=False, elem_id=f"script_{mode}_{script.instance.name.replace(' ', '_')}"):
            found.alwayson.append((script, _controls(script)))
    selectable = runtime.scripts.selectable(mode)
    if selectable:
        titles = [s.title for s in selectable]
        found.dropdown = gr.Dropdown([NONE, *titles], value=NONE, label="Script", elem_id=f"{mode}_script")
        groups = []
        for script in selectable:
            with gr.Group(visible=False) as group:
                found.selectable.append((script, group, _controls(script)))
            groups.append(group)
        found.dropdown.change(
            lambda choice: [gr.update(visible=title == choice) for title in titles],
            inputs=[found.dropdown],
            outputs=groups,
            queue=False,
            api_visibility="private",
        )
    return found
