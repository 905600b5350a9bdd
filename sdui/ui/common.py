"""Widgets shared by the tabs: the checkpoint picker and the seed row.

Each builder lays out its widgets (inside the caller's Blocks context), wires their events to plain functions
of the app context, and returns the widgets so a tab can read their values. The plain functions take and return
ordinary values so tests can call them without a browser.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

import gradio as gr

from sdui.errors import UserError
from sdui.ui import widgets

log = logging.getLogger(__name__)

REFRESH_SYMBOL = "\U0001f504"  # 🔄
RANDOM_SYMBOL = "\U0001f3b2"  # 🎲
REUSE_SYMBOL = "\u267b\ufe0f"  # ♻️
PASTE_SYMBOL = "\u2199\ufe0f"  # ↙️


def tool_button(symbol: str, *, elem_id: str) -> gr.Button:
    """A small square icon button, like A1111's ToolButton."""
    return gr.Button(symbol, elem_id=elem_id, elem_classes=["tool"], size="sm", min_width=40, scale=0)


def error_html(message: str) -> str:
    return f'<div class="error">{html.escape(message)}</div>' if message else ""


def note_html(message: str) -> str:
    return f'<div class="note">{html.escape(message)}</div>' if message else ""


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint picker
# ---------------------------------------------------------------------------------------------------------------
def checkpoint_titles(ctx) -> list[str]:
    return [info.title for info in ctx.store.checkpoints]


def no_checkpoint_hint(ctx) -> str:
    return (
        "No checkpoints found. Put a Stable Diffusion checkpoint (.safetensors or .ckpt) into "
        f"{ctx.paths.sd_models_dir} and press {REFRESH_SYMBOL}."
    )


def current_checkpoint_title(ctx) -> str | None:
    """The title to show as selected: the loaded/selected one, else the saved option, else the first listed."""
    titles = checkpoint_titles(ctx)
    info = ctx.store.current_info
    if info is not None and info.title in titles:
        return info.title
    if not titles:
        return None
    try:
        return ctx.store.select().title  # the saved option (A1111's lookup rules), else the first listed
    except UserError:
        return titles[0]


def refresh_checkpoints(ctx) -> tuple[list[str], str | None, str]:
    """Rescan the checkpoint folders: (titles, selected title, hint text — empty unless nothing was found)."""
    ctx.store.refresh()
    titles = checkpoint_titles(ctx)
    return titles, current_checkpoint_title(ctx), ("" if titles else no_checkpoint_hint(ctx))


def select_checkpoint(ctx, title: str | None) -> str:
    """Load the chosen checkpoint and remember it (option sd_model_checkpoint, saved). Returns an error text, or "".

    app_context.switch_model loads through the job queue, so a load never races a generation using the model,
    and sets the option only after a successful load, so a broken file is not remembered."""
    from sdui.app.context import switch_model  # late: app_context builds the UI

    if not title:
        return ""
    try:
        switch_model(ctx, title)
    except UserError as e:
        return e.message
    except Exception as e:
        log.exception("Loading checkpoint %s failed", title)
        return f"Loading {title} failed: {type(e).__name__}: {e}"
    return ""


@dataclass
class CheckpointPicker:
    dropdown: gr.Dropdown
    refresh: gr.Button
    message: gr.HTML
    on_page_load: object  # () -> (dropdown update, message): bind to demo.load so a reload shows the current state


CHECKPOINT_KEY = "sd_model_checkpoint"  # always in the top bar
APPLY_STYLES_SYMBOL = "\U0001f4cb"  # 📋


def style_names(ctx) -> list[str]:
    from sdui.text.styles import read_styles

    return [s.name for s in read_styles(ctx.paths.styles_files)]


def styled_prompts(ctx, prompt: str, negative: str, chosen) -> tuple[str, str]:
    """The prompts with the chosen styles written into them (A1111's 📋)."""
    from sdui.text.styles import apply_styles, read_styles

    prompt, negative, _ = apply_styles(
        prompt or "", negative or "", list(chosen or []), read_styles(ctx.paths.styles_files)
    )
    return prompt, negative


def vae_choices(ctx) -> list[str]:
    from sdui.core.vae_choice import AUTOMATIC, NONE, vae_files

    return [AUTOMATIC, NONE, *vae_files(ctx.paths.vae_dir, ctx.paths.ckpt_dirs)]


def create_vae_picker(ctx) -> gr.Dropdown:
    """A1111's "SD VAE" quick setting: the sd_vae setting, saved at once; the next job decodes with it."""
    dropdown = gr.Dropdown(
        choices=vae_choices(ctx),
        value=ctx.options.get("sd_vae") or "Automatic",
        label="SD VAE",
        elem_id="setting_sd_vae",
        interactive=True,
        scale=0,
        min_width=240,
        allow_custom_value=True,
    )
    refresh = tool_button(REFRESH_SYMBOL, elem_id="refresh_sd_vae")
    message = gr.HTML("", elem_id="vae_message")

    def on_select(choice):
        try:
            ctx.options.set("sd_vae", choice or "Automatic")
            ctx.options.save()
        except (UserError, OSError) as e:
            return error_html(f"Could not save the VAE choice: {e}")
        return ""

    refresh.click(
        lambda: gr.Dropdown(choices=vae_choices(ctx), value=ctx.options.get("sd_vae") or "Automatic"),
        inputs=[],
        outputs=[dropdown],
        api_visibility="private",
    )
    dropdown.input(on_select, inputs=[dropdown], outputs=[message], api_visibility="private")
    return dropdown


def quick_setting_keys(ctx) -> list[str]:
    """The top bar's settings: the checkpoint, then A1111's quicksettings_list (known keys, once each)."""
    keys = [CHECKPOINT_KEY]
    for key in ctx.options.get("quicksettings_list") or []:
        if key in ctx.options.registry and key not in keys:
            keys.append(key)
    return keys


def create_quick_setting(ctx, key: str):
    """A setting's widget in the top bar: a change is stored and saved at once, as A1111's quick settings are."""
    from sdui.ui.setting_widgets import setting_widget

    widget = setting_widget(key, ctx.options.registry[key], ctx.options.get(key))
    if widget is None:
        return None
    widget.scale, widget.min_width = 0, 200
    message = gr.HTML("", elem_id=f"quicksetting_message_{key}")

    def on_change(value):
        try:
            ctx.options.set(key, value)
            ctx.options.save()
        except (UserError, OSError) as e:
            return error_html(f"Could not change {key}: {e}")
        return ""

    widget.input(on_change, inputs=[widget], outputs=[message], api_visibility="private")
    return widget


def create_checkpoint_picker(ctx) -> CheckpointPicker:
    titles = checkpoint_titles(ctx)
    with gr.Row(elem_id="quicksettings", equal_height=True):
        dropdown = gr.Dropdown(
            choices=titles,
            value=current_checkpoint_title(ctx),
            label="Stable Diffusion checkpoint",
            elem_id="setting_sd_model_checkpoint",
            interactive=True,
            scale=0,
            min_width=380,
            filterable=True,
        )
        refresh = tool_button(REFRESH_SYMBOL, elem_id="refresh_sd_model_checkpoint")
        for key in quick_setting_keys(ctx)[1:]:
            if key == "sd_vae":
                create_vae_picker(ctx)
            else:
                create_quick_setting(ctx, key)
        message = gr.HTML(note_html("" if titles else no_checkpoint_hint(ctx)), elem_id="checkpoint_message")

    def on_refresh():
        new_titles, selected, hint = refresh_checkpoints(ctx)
        return gr.Dropdown(choices=new_titles, value=selected), note_html(hint)

    def on_select(title):
        problem = select_checkpoint(ctx, title)
        # a load computes the sha256, and the title gains its "[shorthash]": show the new titles
        current = checkpoint_titles(ctx)
        return gr.Dropdown(choices=current, value=current_checkpoint_title(ctx)), error_html(problem)

    def on_page_load():
        # The page may be reloaded long after start: show the current list and selection, without rescanning.
        current = checkpoint_titles(ctx)
        return gr.Dropdown(choices=current, value=current_checkpoint_title(ctx)), note_html(
            "" if current else no_checkpoint_hint(ctx)
        )

    refresh.click(on_refresh, inputs=[], outputs=[dropdown, message], api_visibility="private")
    # .input fires on user choice only, not when the refresh button replaces the choices.
    dropdown.input(
        on_select, inputs=[dropdown], outputs=[dropdown, message], api_visibility="private", concurrency_limit=None
    )
    return CheckpointPicker(dropdown, refresh, message, on_page_load)


# ---------------------------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------------------------
def seed_of_image(seeds: list | None, index: int | None) -> int:
    """The seed of the image shown at index (the first image if none is selected); -1 when there is none."""
    if not seeds:
        return -1
    i = index if isinstance(index, int) and 0 <= index < len(seeds) else 0
    return int(seeds[i])


@dataclass
class SeedWidgets:
    seed: gr.Number
    random_seed: gr.Button
    reuse_seed: gr.Button
    subseed: gr.Number
    random_subseed: gr.Button
    reuse_subseed: gr.Button
    subseed_strength: gr.Slider
    seed_resize_from_w: gr.Slider
    seed_resize_from_h: gr.Slider

    @property
    def inputs(self) -> list:
        return [self.seed, self.subseed, self.subseed_strength, self.seed_resize_from_w, self.seed_resize_from_h]


def create_seed_row(tab: str) -> SeedWidgets:
    """Seed with 🎲/♻️, and an "Extra" accordion with the variation seed, its strength and "resize seed from".
    The ♻️ buttons are wired by the tab, which knows the seeds of the images it shows."""
    with gr.Row(elem_id=f"{tab}_seed_row", equal_height=True):
        seed = widgets.create("seed", tab, scale=1, min_width=160)
        random_seed = tool_button(RANDOM_SYMBOL, elem_id=f"{tab}_random_seed")
        reuse_seed = tool_button(REUSE_SYMBOL, elem_id=f"{tab}_reuse_seed")
    with gr.Accordion("Extra", open=False, elem_id=f"{tab}_subseed_show"):
        with gr.Row(equal_height=True):
            subseed = widgets.create("subseed", tab, scale=1, min_width=160)
            random_subseed = tool_button(RANDOM_SYMBOL, elem_id=f"{tab}_random_subseed")
            reuse_subseed = tool_button(REUSE_SYMBOL, elem_id=f"{tab}_reuse_subseed")
            subseed_strength = widgets.create("subseed_strength", tab, scale=2)
        with gr.Row():
            seed_resize_from_w = widgets.create("seed_resize_from_w", tab)
            seed_resize_from_h = widgets.create("seed_resize_from_h", tab)

    random_seed.click(lambda: -1, inputs=[], outputs=[seed], queue=False, api_visibility="private")
    random_subseed.click(lambda: -1, inputs=[], outputs=[subseed], queue=False, api_visibility="private")
    return SeedWidgets(
        seed,
        random_seed,
        reuse_seed,
        subseed,
        random_subseed,
        reuse_subseed,
        subseed_strength,
        seed_resize_from_w,
        seed_resize_from_h,
    )
