"""The txt2img tab: widgets -> GenerationRequest -> the shared job queue -> gallery + infotext.

The wiring is thin on purpose: `build_request` turns widget values into a request; the runner, the widget groups
and their wiring are shared with the other generating tabs (sdui/ui/generation.py). Its own part is the
"Hires. fix" accordion (a second, img2img-like pass at a larger size). Element ids are A1111's (txt2img_*, hr_*,
hires_*): extensions' JavaScript finds the widgets by them.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from sdui.errors import UserError
from sdui.request import GenerationRequest
from sdui.ui import common, extension_scripts, extra_networks, generation, widgets

TAB = "txt2img"

# the first choice of the hires sampler / schedule dropdowns: the second pass uses the first pass's
SAME_SAMPLER = "Use same sampler"
SAME_SCHEDULER = "Use same scheduler"
HIRES_DENOISING = 0.7  # A1111's txt2img starts the hires denoising slider lower than img2img's


# ---------------------------------------------------------------------------------------------------------------
# Hires fix: choices, the size it gives, widget values -> request fields
# ---------------------------------------------------------------------------------------------------------------
def hires_upscaler_names() -> list[str]:
    """The hires upscaler choices, A1111's order: the latent modes, then the pixel upscalers (None, Lanczos, ...)."""
    from sdui.upscalers.upscaling import LATENT_UPSCALE_MODES, upscaler_names

    return [*LATENT_UPSCALE_MODES, *upscaler_names()]


def hires_sampler_names() -> list[str]:
    return [SAME_SAMPLER, *generation.sampler_names()]


def hires_scheduler_labels() -> list[str]:
    return [SAME_SCHEDULER, *generation.scheduler_labels()]


def hires_size(width, height, hr_scale, hr_resize_x, hr_resize_y) -> tuple[int, int]:
    """The size of the final image (the core's arithmetic: resize-to wins over the scale, the latent grid floors
    it, an aspect ratio change is cover-cropped). Raises UserError for a size the core would refuse."""
    from sdui.upscalers.upscaling import hires_image_size, hires_target_size

    target = hires_target_size(
        widgets.whole(width, 512),
        widgets.whole(height, 512),
        float(widgets.number(hr_scale, 2)),
        widgets.whole(hr_resize_x, 0),
        widgets.whole(hr_resize_y, 0),
    )
    return hires_image_size(*target)


def hires_size_note(enable_hr, width, height, hr_scale, hr_resize_x, hr_resize_y) -> str:
    """What the accordion shows under its sliders: "from 512x512 to 1024x1024" ("" while hires fix is off)."""
    if not enable_hr:
        return ""
    try:
        final_w, final_h = hires_size(width, height, hr_scale, hr_resize_x, hr_resize_y)
    except UserError as e:
        return common.error_html(e.message)
    return common.note_html(f"from {widgets.whole(width, 512)}x{widgets.whole(height, 512)} to {final_w}x{final_h}")


def _unless(value, same: str):
    return None if value in (None, "", same) else value


def hires_fields(
    enable_hr,
    hr_upscaler,
    hr_second_pass_steps,
    denoising_strength,
    hr_scale,
    hr_resize_x,
    hr_resize_y,
    hr_sampler_name,
    hr_scheduler,
    hr_prompt,
    hr_negative_prompt,
) -> dict:
    """The GenerationRequest hires fields of the accordion's widgets, in the order `HiresWidgets.inputs` lists them.
    "Use same sampler"/"Use same scheduler" become None, as the API sends them."""
    return {
        "enable_hr": bool(enable_hr),
        "hr_upscaler": hr_upscaler or None,
        "hr_second_pass_steps": widgets.to_request("hr_second_pass_steps", hr_second_pass_steps, 0),
        "denoising_strength": widgets.to_request("denoising_strength", denoising_strength, HIRES_DENOISING),
        "hr_scale": widgets.to_request("hr_scale", hr_scale, 2),
        "hr_resize_x": widgets.to_request("hr_resize_x", hr_resize_x, 0),
        "hr_resize_y": widgets.to_request("hr_resize_y", hr_resize_y, 0),
        "hr_sampler_name": _unless(hr_sampler_name, SAME_SAMPLER),
        "hr_scheduler": _unless(hr_scheduler, SAME_SCHEDULER),
        "hr_prompt": hr_prompt or "",
        "hr_negative_prompt": hr_negative_prompt or "",
    }


def build_request(
    enable_hr,
    hr_upscaler,
    hr_second_pass_steps,
    denoising_strength,
    hr_scale,
    hr_resize_x,
    hr_resize_y,
    hr_sampler_name,
    hr_scheduler,
    hr_prompt,
    hr_negative_prompt,
    *values,
    **named,
) -> GenerationRequest:
    """The request the txt2img widgets describe (validated later by the processing core, as the API's are): the
    hires fix widgets first, then `values`/`named`, generation.request_fields' arguments (prompt, ..., seeds)."""
    hires = hires_fields(
        enable_hr,
        hr_upscaler,
        hr_second_pass_steps,
        denoising_strength,
        hr_scale,
        hr_resize_x,
        hr_resize_y,
        hr_sampler_name,
        hr_scheduler,
        hr_prompt,
        hr_negative_prompt,
    )
    return GenerationRequest(**generation.request_fields(*values, **named), **hires, mode=TAB)


# ---------------------------------------------------------------------------------------------------------------
# The hires fix accordion
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class HiresWidgets:
    accordion: gr.Accordion
    enable_hr: gr.Checkbox
    hr_upscaler: gr.Dropdown
    hr_second_pass_steps: gr.Slider
    denoising_strength: gr.Slider
    hr_scale: gr.Slider
    hr_resize_x: gr.Slider
    hr_resize_y: gr.Slider
    hr_sampler_name: gr.Dropdown
    hr_scheduler: gr.Dropdown
    hr_prompt: gr.Textbox
    hr_negative_prompt: gr.Textbox
    size_note: gr.HTML

    @property
    def inputs(self) -> list:
        """In the order of hires_fields' arguments."""
        return [
            self.enable_hr,
            self.hr_upscaler,
            self.hr_second_pass_steps,
            self.denoising_strength,
            self.hr_scale,
            self.hr_resize_x,
            self.hr_resize_y,
            self.hr_sampler_name,
            self.hr_scheduler,
            self.hr_prompt,
            self.hr_negative_prompt,
        ]

    @property
    def paste_fields(self) -> dict:
        """Request field -> widget, for ↙️ (the field names are hires_fields' argument names)."""
        names = (
            "enable_hr",
            "hr_upscaler",
            "hr_second_pass_steps",
            "denoising_strength",
            "hr_scale",
            "hr_resize_x",
            "hr_resize_y",
            "hr_sampler_name",
            "hr_scheduler",
            "hr_prompt",
            "hr_negative_prompt",
        )
        return dict(zip(names, self.inputs, strict=False))


def paste_choices() -> dict:
    """What ↙️ may put into the hires dropdowns (see sdui.ui.paste.paste_values): a name this UI lacks is reported."""
    return {
        "hr_upscaler": ("hires upscaler", hires_upscaler_names()),
        "hr_sampler_name": ("hires sampler", hires_sampler_names()),
        "hr_scheduler": ("hires schedule type", hires_scheduler_labels()),
    }


def create_hires_fix(settings: generation.GenerationSettings) -> HiresWidgets:
    """A1111's "Hires. fix" accordion; its size note follows the first-pass size sliders in `settings`."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{TAB}_hr") as accordion:
        enable_hr = widgets.create("enable_hr", TAB)
        with gr.Row(elem_id=f"{TAB}_hires_fix_row1"):
            hr_upscaler = widgets.create("hr_upscaler", TAB, choices=hires_upscaler_names())
            hr_steps = widgets.create("hr_second_pass_steps", TAB)
            denoising = widgets.create("denoising_strength", TAB, value=HIRES_DENOISING)
        with gr.Row(elem_id=f"{TAB}_hires_fix_row2"):
            hr_scale = widgets.create("hr_scale", TAB)
            hr_resize_x = widgets.create("hr_resize_x", TAB)
            hr_resize_y = widgets.create("hr_resize_y", TAB)
        # A1111's id, typo included: extensions' JavaScript looks for it
        size_note = gr.HTML("", elem_id="txtimg_hr_finalres", js_on_load=None)
        with gr.Row(elem_id=f"{TAB}_hires_fix_row3"):
            hr_sampler = widgets.create("hr_sampler_name", TAB, choices=hires_sampler_names())
            hr_scheduler = widgets.create("hr_scheduler", TAB, choices=hires_scheduler_labels())
        with gr.Row(elem_id=f"{TAB}_hires_fix_row4"):
            hr_prompt = widgets.create(
                "hr_prompt", TAB, placeholder="Prompt for hires fix pass.\nLeave empty to use the same prompt."
            )
            hr_negative = widgets.create(
                "hr_negative_prompt",
                TAB,
                placeholder="Negative prompt for hires fix pass.\nLeave empty to use the same negative prompt.",
            )

    size_inputs = [enable_hr, settings.width, settings.height, hr_scale, hr_resize_x, hr_resize_y]
    # queued, so that a size typed outside the sliders' range comes back as Gradio's message ("Value 30 is less
    # than minimum value 64.") instead of an HTTP 500
    gr.on(
        [w.change for w in size_inputs],
        hires_size_note,
        inputs=size_inputs,
        outputs=[size_note],
        api_visibility="private",
        show_progress="hidden",
    )
    # checked by ↙️ (or by the user): show what it does
    enable_hr.change(
        lambda on: gr.Accordion(open=True) if on else gr.skip(),
        inputs=[enable_hr],
        outputs=[accordion],
        queue=False,
        api_visibility="private",
    )
    return HiresWidgets(
        accordion,
        enable_hr,
        hr_upscaler,
        hr_steps,
        denoising,
        hr_scale,
        hr_resize_x,
        hr_resize_y,
        hr_sampler,
        hr_scheduler,
        hr_prompt,
        hr_negative,
        size_note,
    )


# ---------------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------------
def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the txt2img tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB, ctx)
    extra_networks.create_extra_networks(ctx, TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            settings = generation.create_settings(TAB)
            seed = common.create_seed_row(TAB)
            hires = create_hires_fix(settings)
            scripts = extension_scripts.create_script_controls(ctx, TAB, size=(settings.width, settings.height))
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(
        TAB, row, settings, seed, panel, own_inputs=hires.inputs, own_paste_fields=hires.paste_fields
    )
    generation.wire_generation(ctx, tab, build_request, scripts=scripts)
    generation.wire_paste(tab, mode=TAB, choices=paste_choices(), scripts=scripts, ctx=ctx)
    return tab
