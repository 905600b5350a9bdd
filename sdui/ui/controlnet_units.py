"""The ControlNet accordion of a generation tab: N units (the control_net_unit_count setting) laid out as the
sd-webui-controlnet extension lays them out, whose values travel as that extension's API sends them
(alwayson_scripts["ControlNet"]["args"] = [unit, ...]), so the page and the API run ControlNet the same way.

A unit: enable, image (the img2img tab's own image when empty), pixel perfect, preprocessor and model (with
refresh), weight, guidance start/end, the preprocessor's resolution and thresholds (relabelled per preprocessor,
hidden where it has none), control mode, resize mode, hires fix option; a preview of the preprocessed map, and a
button that sends the image's size to the tab's width and height.
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from sdui.controlnet import preprocessors
from sdui.controlnet.control_types import CONTROL_TYPES
from sdui.controlnet.control_types import control_type as types_of
from sdui.controlnet.infotext import units_from_infotext
from sdui.controlnet.modes import ControlMode, HiresOption, ResizeMode
from sdui.controlnet.units import SCRIPT_TITLE
from sdui.errors import UserError

FIELDS = (
    "enabled",
    "image",
    "pixel_perfect",
    "module",
    "model",
    "weight",
    "guidance_start",
    "guidance_end",
    "processor_res",
    "threshold_a",
    "threshold_b",
    "control_mode",
    "resize_mode",
    "hr_option",
)


@dataclass
class ControlNetControls:
    title: str = SCRIPT_TITLE
    units: list[list] = field(default_factory=list)  # per unit, one control per FIELDS entry
    catalog: Any = None  # the ControlNet model catalog: a pasted model name becomes the title listed here

    @property
    def controls(self) -> list:
        return [c for unit in self.units for c in unit]

    @property
    def paste_fields(self) -> list:
        """(component, function of the parsed infotext) for ↙️: the units its "ControlNet N" entries describe
        (their images are not in the text: the unit keeps its image)."""
        fields = []
        for index, controls in enumerate(self.units):
            for name, component in zip(FIELDS, controls, strict=True):
                if name != "image":
                    paste = functools.partial(_pasted, index=index, name=name, catalog=self.catalog)
                    fields.append((component, paste))
        return fields

    def args(self, values: list) -> list[dict]:
        """The units as the extension's API sends them (images as base64 PNG)."""
        per_unit = len(FIELDS)
        units = []
        for i in range(len(self.units)):
            unit = dict(zip(FIELDS, values[i * per_unit : (i + 1) * per_unit], strict=True))
            unit["image"] = _png_base64(unit["image"])
            units.append(unit)
        return units


def _pasted(params: dict, *, index: int, name: str, catalog=None):
    unit = units_from_infotext(params).get(index)
    if unit is None:
        return None
    value = getattr(unit, name)
    if name == "module":
        try:  # the infotext has the internal name ("depth"); the list shows the UI name ("depth_midas")
            return preprocessors.find(value).label
        except UserError:
            return value
    if name == "model" and catalog is not None:
        try:  # the file here may carry another hash, or be found by its name alone, as the extension finds it
            entry = catalog.find(value)
            return entry.title if entry is not None else value
        except UserError:
            return value
    return getattr(value, "value", value)  # the choice enums as their names


def _png_base64(image) -> str | None:
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _slider_updates(module: str) -> list:
    """The three preprocessor sliders for `module`: its names, ranges and defaults; hidden where it has none."""
    try:
        sliders = list(preprocessors.find(module).sliders) + [None] * 3
    except UserError:
        sliders = [None] * 3
    updates = []
    for spec in sliders[:3]:
        if spec is None:
            updates.append(gr.update(visible=False, minimum=-1, value=-1))  # -1: the preprocessor's default
        else:
            updates.append(
                gr.update(
                    visible=True,
                    label=spec["name"],
                    minimum=spec["min"],
                    maximum=spec["max"],
                    step=spec.get("step", 1),
                    value=spec["value"],
                )
            )
    return updates


def create_controlnet(ctx, mode: str, width=None, height=None) -> ControlNetControls:
    """The accordion, inside the current Blocks context; `width`/`height`: the tab's sliders (send dimensions)."""
    script = ctx.controlnet
    modules = preprocessors.module_list(alias_names=True)["module_list"]  # the names the extension's page shows
    count = max(1, int(ctx.options.control_net_unit_count))
    found = ControlNetControls(catalog=script.catalog)
    with gr.Accordion("ControlNet", open=False, elem_id=f"{mode}_controlnet"):
        with gr.Tabs():
            for index in range(count):
                with gr.Tab(f"ControlNet Unit {index}", elem_id=f"{mode}_controlnet_unit_{index}"):
                    found.units.append(_create_unit(ctx, mode, index, modules, width, height))
    return found


def _create_unit(ctx, mode: str, index: int, modules: list[str], width, height) -> list:
    script = ctx.controlnet
    prefix = f"{mode}_controlnet_{index}"
    with gr.Row():
        image = gr.Image(label="Control image", type="pil", sources=["upload", "clipboard"], elem_id=f"{prefix}_image")
        preview = gr.Image(label="Preprocessor preview", type="pil", interactive=False, elem_id=f"{prefix}_preview")
    with gr.Row():
        enabled = gr.Checkbox(False, label="Enable", elem_id=f"{prefix}_enable")
        pixel_perfect = gr.Checkbox(False, label="Pixel Perfect", elem_id=f"{prefix}_pixel_perfect")
    control_type = gr.Radio(list(CONTROL_TYPES), value="All", label="Control Type", elem_id=f"{prefix}_control_type")
    with gr.Row():
        module = gr.Dropdown(modules, value="none", label="Preprocessor", elem_id=f"{prefix}_module")
        model = gr.Dropdown(script.catalog.titles(), value="None", label="Model", elem_id=f"{prefix}_model")
        refresh = gr.Button("🔄", elem_id=f"{prefix}_refresh", scale=0, min_width=40)
        run_preview = gr.Button("💥 Preview", elem_id=f"{prefix}_run_preview", scale=0, min_width=90)
    weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Control Weight", elem_id=f"{prefix}_weight")
    with gr.Row():
        start = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Starting Control Step", elem_id=f"{prefix}_start")
        end = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Ending Control Step", elem_id=f"{prefix}_end")
    resolution = gr.Slider(
        -1, 2048, value=-1, step=1, label="Preprocessor Resolution", visible=False, elem_id=f"{prefix}_resolution"
    )
    with gr.Row():
        threshold_a = gr.Slider(-1, 255, value=-1, step=1, label="Threshold A", visible=False, elem_id=f"{prefix}_a")
        threshold_b = gr.Slider(-1, 255, value=-1, step=1, label="Threshold B", visible=False, elem_id=f"{prefix}_b")
    control_mode = gr.Radio(
        [m.value for m in ControlMode],
        value=ControlMode.BALANCED.value,
        label="Control Mode",
        elem_id=f"{prefix}_control_mode",
    )
    resize_mode = gr.Radio(
        [m.value for m in ResizeMode],
        value=ResizeMode.CROP_AND_RESIZE.value,
        label="Resize Mode",
        elem_id=f"{prefix}_resize_mode",
    )
    hr_option = gr.Radio(
        [m.value for m in HiresOption], value=HiresOption.BOTH.value, label="Hires fix", elem_id=f"{prefix}_hr_option"
    )
    send_size = gr.Button("Send dimensions to the generation size", elem_id=f"{prefix}_send_dimensions")

    module.change(_slider_updates, inputs=[module], outputs=[resolution, threshold_a, threshold_b], queue=False)

    def narrow(kind: str):
        """The preprocessors and models of one kind of control, its defaults chosen."""
        found = types_of(kind, modules, script.catalog.titles())
        return (
            gr.update(choices=found["module_list"], value=found["default_option"]),
            gr.update(choices=found["model_list"], value=found["default_model"]),
        )

    control_type.change(narrow, inputs=[control_type], outputs=[module, model], queue=False)
    refresh.click(
        lambda: gr.update(choices=(script.catalog.refresh(), script.catalog.titles())[1]),
        outputs=[model],
        queue=False,
    )

    def show_preview(picture, name, res, a, b):
        if picture is None:
            raise gr.Error("Upload a control image first.")
        try:
            result = preprocessors.run(
                name,
                np.asarray(picture.convert("RGB")),
                resolution=res,
                threshold_a=a,
                threshold_b=b,
                annotator_dir=script.annotator_dir,
                # the loaded SD 2 depth checkpoint's MiDaS makes depth maps without an annotator file
                depth_estimator=getattr(ctx.store.current, "depth_estimator", None),
                device=ctx.policy.device,
            )
        except UserError as e:
            raise gr.Error(e.message) from None
        return Image.fromarray(result)

    run_preview.click(show_preview, inputs=[image, module, resolution, threshold_a, threshold_b], outputs=[preview])
    if width is not None and height is not None:
        send_size.click(
            lambda picture: (
                (gr.skip(), gr.skip()) if picture is None else (picture.width // 8 * 8, picture.height // 8 * 8)
            ),
            inputs=[image],
            outputs=[width, height],
            queue=False,
        )
    return [
        enabled,
        image,
        pixel_perfect,
        module,
        model,
        weight,
        start,
        end,
        resolution,
        threshold_a,
        threshold_b,
        control_mode,
        resize_mode,
        hr_option,
    ]
