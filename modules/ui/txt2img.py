"""The txt2img tab: widgets -> GenerationRequest -> the shared job queue -> gallery + infotext.

The wiring is thin on purpose: `build_request` turns widget values into a request; the runner, the widget groups
and their wiring are shared with the other generating tabs (modules/ui/generation.py). Element ids follow A1111
(reference §5.5): extensions' JavaScript finds the widgets by them.
"""
from __future__ import annotations

import gradio as gr

from modules.request import GenerationRequest
from modules.ui import common, generation

TAB = "txt2img"


def build_request(prompt: str, negative_prompt: str, sampler_name: str, scheduler: str, steps, width, height,
                  batch_count, batch_size, cfg_scale, seed, subseed=-1, subseed_strength=0,
                  seed_resize_from_w=0, seed_resize_from_h=0) -> GenerationRequest:
    """The request the txt2img widgets describe (validated later by the processing core, as the API's are)."""
    return GenerationRequest(**generation.request_fields(
        prompt, negative_prompt, sampler_name, scheduler, steps, width, height, batch_count, batch_size, cfg_scale,
        seed, subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h), mode=TAB)


def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the txt2img tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            settings = generation.create_settings(TAB)
            seed = common.create_seed_row(TAB)
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(TAB, row, settings, seed, panel)
    generation.wire_generation(ctx, tab, build_request)
    generation.wire_paste(tab, mode=TAB)
    return tab
