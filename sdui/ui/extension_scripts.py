"""Scripts in a generation tab, as A1111 lays them out: each always-on script's controls in an accordion of
their own, and a "Script" dropdown (the program's scripts, SD upscale, Prompts from file, X/Y/Z plot, and the
extensions' selectable ones) whose choice shows that script's controls and runs it instead of the plain
generation. The values travel as A1111's API sends them (alwayson_scripts[title]["args"], the selected script's
args), so the UI and the API run scripts the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)
NONE = "None"


@dataclass
class ScriptControls:
    dropdown: gr.Dropdown | None = None
    selectable: list = field(default_factory=list)  # (title, group, controls, make_runner(args) -> runner)
    alwayson: list = field(default_factory=list)  # (LoadedScript, controls)
    selectable_scripts: list = field(default_factory=list)  # the extensions' LoadedScript among `selectable`
    controlnet: Any = None  # the built-in ControlNet's accordion (ui/controlnet_units.py), first of the always-on

    @property
    def paste_fields(self) -> list:
        """(component, infotext key or function of the parsed infotext) that scripts declared for ↙️ (A1111's
        Script.infotext_fields, set in their ui())."""
        fields = []
        for script, _ in self.alwayson:
            fields += list(getattr(script.instance, "infotext_fields", None) or [])
        for script in self.selectable_scripts:
            fields += list(getattr(script.instance, "infotext_fields", None) or [])
        if self.controlnet is not None:
            fields += self.controlnet.paste_fields
        return [(c, key) for c, key in fields if hasattr(c, "_id")]

    @property
    def inputs(self) -> list:
        controls = [c for _, _, cs, _ in self.selectable for c in cs] + [c for _, cs in self.alwayson for c in cs]
        if self.controlnet is not None:
            controls += self.controlnet.controls
        return ([self.dropdown] if self.dropdown is not None else []) + controls

    def apply(self, request, values: list):
        """The request with its always-on scripts' arguments, and the selected script's runner (None: none)."""
        values = list(values)
        choice = values.pop(0) if self.dropdown is not None else NONE
        runner = None
        for title, _, controls, make_runner in self.selectable:
            args, values = values[: len(controls)], values[len(controls) :]
            if title == choice:
                runner = make_runner(args)
        alwayson = {}
        for script, controls in self.alwayson:
            args, values = values[: len(controls)], values[len(controls) :]
            alwayson[script.title] = {"args": args}
        if self.controlnet is not None:
            alwayson[self.controlnet.title] = {"args": self.controlnet.args(values[: len(self.controlnet.controls)])}
        return dataclasses.replace(request, alwayson_scripts=alwayson), runner


def _program_controls(ctx, script, mode: str) -> list:
    controls = [_control_for(a) for a in script.args]
    if script.title == "X/Y/Z plot":
        from sdui.ui import xyz_controls

        xyz_controls.wire(ctx, controls, mode)
    return controls


def _control_for(arg: dict):
    """A control for one of the program's script arguments, from its /sdapi/v1/script-info description."""
    label, value, choices = arg.get("label"), arg.get("value"), arg.get("choices")
    if isinstance(value, bool):
        return gr.Checkbox(value=value, label=label)
    if choices is not None and value is None:
        return gr.Dropdown(choices=choices, value=[], multiselect=True, label=label, allow_custom_value=True)
    if choices:
        return gr.Dropdown(choices=choices, value=value, label=label)
    if arg.get("minimum") is not None and arg.get("maximum") is not None:
        return gr.Slider(arg["minimum"], arg["maximum"], value=value, step=arg.get("step") or 1, label=label)
    if label == "Info":
        return gr.Textbox(value=value, label=label, interactive=False)
    return gr.Textbox(value=value, label=label, lines=4 if "List" in (label or "") else 1)


def create_controlnet_controls(ctx, mode: str, size: tuple | None = None) -> ScriptControls | None:
    """Only the built-in ControlNet's accordion (tabs without a Script list: inpaint); None without ControlNet."""
    if getattr(ctx, "controlnet", None) is None:
        return None
    from sdui.ui.controlnet_units import create_controlnet

    return ScriptControls(controlnet=create_controlnet(ctx, mode, *(size or (None, None))))


def create_script_controls(ctx, mode: str, size: tuple | None = None) -> ScriptControls | None:
    """The controls of the scripts for tab `mode` (txt2img or img2img); None without any. `size`: the tab's width
    and height sliders (ControlNet's "send dimensions")."""
    from sdui.extensions.bridge import script_runner
    from sdui.extensions.offered import selectable_scripts

    runtime = getattr(ctx, "extensions", None)
    found = ScriptControls()
    if getattr(ctx, "controlnet", None) is not None:
        from sdui.ui.controlnet_units import create_controlnet

        found.controlnet = create_controlnet(ctx, mode, *(size or (None, None)))
    for script in runtime.scripts.alwayson(mode) if runtime is not None else []:
        with gr.Accordion(script.title, open=False, elem_id=f"script_{mode}_{script.instance.name.replace(' ', '_')}"):
            found.alwayson.append((script, script.build_ui()))
    entries = []
    extension_titles = {s.title for s in runtime.scripts.selectable(mode)} if runtime is not None else set()
    for program_script in selectable_scripts(ctx):
        if mode in program_script.modes and program_script.title not in extension_titles:
            entries.append(
                (
                    program_script.title,
                    lambda script=program_script: _program_controls(ctx, script, mode),
                    program_script.runner,
                )
            )
    for script in runtime.scripts.selectable(mode) if runtime is not None else []:
        found.selectable_scripts.append(script)
        entries.append(
            (
                script.title,
                lambda script=script: script.build_ui(),
                lambda args, script=script: script_runner(script, args),
            )
        )
    if entries:
        titles = [title for title, _, _ in entries]
        found.dropdown = gr.Dropdown([NONE, *titles], value=NONE, label="Script", elem_id=f"{mode}_script")
        groups = []
        for title, build, make_runner in entries:
            with gr.Group(visible=False) as group:
                found.selectable.append((title, group, build(), make_runner))
            groups.append(group)
        found.dropdown.change(
            lambda choice: [gr.update(visible=title == choice) for title in titles],
            inputs=[found.dropdown],
            outputs=groups,
            queue=False,
            api_visibility="private",
        )
    return found if found.inputs else None


def pasted_values(text: str, fields: list) -> list:
    """The value for each (component, key) of `fields` from infotext `text`, None where it sets none: A1111's
    paste, after the infotext_pasted callbacks have seen the parsed parameters; converted to the type of the
    component's value as A1111 converts them ("False" is False for a checkbox)."""
    from sdui.extensions import registry
    from sdui.infotext import parse_infotext

    params = parse_infotext(text)
    registry.call("infotext_pasted", text, params)
    values = []
    for component, key in fields:
        try:
            value = key(params) if callable(key) else params.get(key)
            values.append(None if value is None else _as_type_of(getattr(component, "value", None), value))
        except Exception:  # noqa: BLE001 - one script's field must not stop the paste
            log.error("Pasting the infotext field %r failed:\n%s", key, traceback.format_exc())
            values.append(None)
    return values


def _as_type_of(current, value):
    if isinstance(current, bool):
        return value if isinstance(value, bool) else str(value) != "False"
    if isinstance(current, int) and not isinstance(value, bool):
        return int(float(value))
    if isinstance(current, float):
        return float(value)
    return value
