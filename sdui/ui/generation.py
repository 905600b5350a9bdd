"""What every generating tab (txt2img, img2img, inpaint, outpaint, depth2img) shares.

- widget values -> request fields (`request_fields`), the sampler/schedule choices and the warning about pairs
  that will not run;
- the widget groups every tab lays out the same way: the prompt row, the sampling settings, the output panel,
  and `wire_generation` / `wire_paste`, which connect them to the runner (sdui/ui/runner.py) and to pasting
  (sdui/ui/paste.py).

A tab module builds its own widgets around these, writes a pure `build_request(...)`, and calls the two wire
functions. Everything that decides something is a plain function, testable without a browser.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from sdui.errors import UnsupportedSamplerError, UserError
from sdui.ui import common, paste, widgets
from sdui.ui.extension_scripts import pasted_values
from sdui.ui.runner import (
    GenerationResult,
    default_generate,
    iter_generation,
    jobs_ahead,
    progress_text,
    status_html,
    ui_owner,
)
from sdui.ui.styles_editor import EDIT_SYMBOL, create_styles_editor

log = logging.getLogger(__name__)

DEFAULT_SAMPLER = "DPM++ 2M"
DEFAULT_SCHEDULER = "Automatic"


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request fields
# ---------------------------------------------------------------------------------------------------------------
def request_fields(
    prompt: str,
    negative_prompt: str,
    sampler_name: str,
    scheduler: str,
    steps,
    width,
    height,
    batch_count,
    batch_size,
    cfg_scale,
    seed,
    subseed=-1,
    subseed_strength=0,
    seed_resize_from_w=0,
    seed_resize_from_h=0,
) -> dict:
    """The GenerationRequest fields of the widgets every tab has, in the order `GenerationTab.request_inputs`
    lists them. No validation here: the processing core validates every request the same way, whether it comes
    from the UI or the API."""
    resize_w = widgets.to_request("seed_resize_from_w", seed_resize_from_w, 0)
    resize_h = widgets.to_request("seed_resize_from_h", seed_resize_from_h, 0)
    return {
        "prompt": prompt or "",
        "negative_prompt": negative_prompt or "",
        "sampler_name": sampler_name or DEFAULT_SAMPLER,
        "scheduler": scheduler or DEFAULT_SCHEDULER,
        "steps": widgets.to_request("steps", steps, 20),
        "width": widgets.to_request("width", width, 512),
        "height": widgets.to_request("height", height, 512),
        "n_iter": widgets.to_request("n_iter", batch_count, 1),
        "batch_size": widgets.to_request("batch_size", batch_size, 1),
        "cfg_scale": widgets.to_request("cfg_scale", cfg_scale, 7),
        "seed": widgets.to_request("seed", seed, -1),
        "subseed": widgets.to_request("subseed", subseed, -1),
        "subseed_strength": widgets.to_request("subseed_strength", subseed_strength, 0),
        # 0 in the UI means "off"; the request says so with -1
        "seed_resize_from_w": resize_w if resize_w > 0 else -1,
        "seed_resize_from_h": resize_h if resize_h > 0 else -1,
    }


# ---------------------------------------------------------------------------------------------------------------
# Sampler / scheduler choices
# ---------------------------------------------------------------------------------------------------------------
def sampler_names() -> list[str]:
    from sdui.core.samplers import SAMPLERS

    return [s.name for s in SAMPLERS]


def scheduler_labels() -> list[str]:
    from sdui.core.schedules import SCHEDULERS

    return [s.label for s in SCHEDULERS]


def sampler_note(sampler_name: str, scheduler: str) -> str:
    """A warning, before Generate is pressed, when the sampler or the schedule type is not one we know (every
    pair of known ones runs)."""
    from sdui.core.samplers import resolve_sampler_name, resolve_scheduler_name

    try:
        if sampler_name:
            resolve_sampler_name(sampler_name)
        resolve_scheduler_name(scheduler)
    except UnsupportedSamplerError as err:
        return common.error_html(err.message)
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Widget groups
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PromptRow:
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    styles: gr.Dropdown | None = None  # the styles of styles.csv to apply (A1111's style picker)


def create_prompt_row(tab: str, ctx=None) -> PromptRow:
    """Prompt and negative prompt on the left; Generate, Interrupt/Skip, ↙️ and the styles on the right (A1111's
    toprow). The styles (with `ctx`): a multi-select of styles.csv's names, 🔄 rereads the files, 📋 writes the
    chosen ones into the prompts and clears the choice."""
    with gr.Row(elem_id=f"{tab}_toprow"):
        with gr.Column(scale=6, elem_id=f"{tab}_prompt_container"):
            prompt = gr.Textbox(
                label="Prompt",
                show_label=False,
                lines=3,
                max_lines=12,
                elem_id=f"{tab}_prompt",
                placeholder="Prompt\n(paste generation parameters here and press \u2199\ufe0f)",
            )
            prompt_counter = _counter(f"{tab}_token_counter")
            negative_prompt = gr.Textbox(
                label="Negative prompt",
                show_label=False,
                lines=2,
                max_lines=12,
                elem_id=f"{tab}_neg_prompt",
                placeholder="Negative prompt",
            )
            negative_counter = _counter(f"{tab}_negative_token_counter")
        with gr.Column(scale=1, min_width=200, elem_id=f"{tab}_actions_column"):
            generate = gr.Button(
                "Generate", variant="primary", size="lg", elem_id=f"{tab}_generate", elem_classes=["generate-button"]
            )
            with gr.Row(elem_id=f"{tab}_interrupt_row", elem_classes=["interrupt-row"]):
                interrupt = gr.Button("Interrupt", variant="stop", size="sm", elem_id=f"{tab}_interrupt", min_width=60)
                skip = gr.Button("Skip", size="sm", elem_id=f"{tab}_skip", min_width=60)
            with gr.Row(elem_id=f"{tab}_tools"):
                paste = common.tool_button(common.PASTE_SYMBOL, elem_id=f"{tab}_paste")
                apply_styles = common.tool_button(common.APPLY_STYLES_SYMBOL, elem_id=f"{tab}_style_apply")
                edit_styles = common.tool_button(EDIT_SYMBOL, elem_id=f"{tab}_style_edit")
                refresh_styles = common.tool_button(common.REFRESH_SYMBOL, elem_id=f"{tab}_style_refresh")
            styles = gr.Dropdown(
                choices=common.style_names(ctx) if ctx is not None else [],
                value=[],
                multiselect=True,
                label="Styles",
                show_label=False,
                elem_id=f"{tab}_styles",
            )
    row = PromptRow(prompt, negative_prompt, generate, interrupt, skip, paste, styles)
    wire_token_counters([(prompt, prompt_counter), (negative_prompt, negative_counter)])
    if ctx is not None:
        create_styles_editor(ctx, tab, styles, edit_styles)
        refresh_styles.click(
            lambda: gr.Dropdown(choices=common.style_names(ctx)), inputs=[], outputs=[styles], api_visibility="private"
        )
        apply_styles.click(
            lambda p, n, chosen: (*common.styled_prompts(ctx, p, n, chosen), []),
            inputs=[prompt, negative_prompt, styles],
            outputs=[prompt, negative_prompt, styles],
            api_visibility="private",
        )
    return row


def counter_html(text: str) -> str:
    from sdui.text.token_count import token_count

    count, limit = token_count(text or "")
    return f"<span class='token-count{' over' if count > 75 else ''}'>{count}/{limit}</span>"


def _counter(elem_id: str) -> gr.HTML:
    return gr.HTML(counter_html(""), elem_id=elem_id, elem_classes=["token-counter"], padding=False)


def wire_token_counters(pairs: list) -> None:
    """A1111's token counters (n/75 per chunk) under the prompts, updated as the user types."""
    for box, counter in pairs:
        box.change(
            counter_html,
            inputs=[box],
            outputs=[counter],
            queue=False,
            api_visibility="private",
            trigger_mode="always_last",
            show_progress="hidden",
        )


SWAP_SYMBOL = "\u21c5"  # ⇅
SIZE_FROM_IMAGE_SYMBOL = "\U0001f4d0"  # 📐


@dataclass
class GenerationSettings:
    sampler_name: gr.Dropdown
    scheduler: gr.Dropdown
    sampler_warning: gr.HTML
    steps: gr.Slider
    width: gr.Slider
    height: gr.Slider
    swap: gr.Button | None
    size_from_image: gr.Button | None  # 📐, when the tab asked for it: the tab wires it to its image
    batch_count: gr.Slider
    batch_size: gr.Slider
    cfg_scale: gr.Slider


def create_settings(tab: str, *, show_size: bool = True, size_from_image: bool = False) -> GenerationSettings:
    """Sampling method and schedule type (with a warning for pairs that will not run), steps, width/height (⇅ swaps
    them; 📐 when `size_from_image`), batch count/size and CFG scale. With show_size=False the size sliders exist
    but are hidden (a tab whose size follows from its image still hands the same inputs to its build function)."""
    with gr.Row():
        sampler_name = widgets.create("sampler_name", tab, choices=sampler_names())
        scheduler = widgets.create("scheduler", tab, choices=scheduler_labels())
    sampler_warning = gr.HTML("", elem_id=f"{tab}_sampler_note", js_on_load=None, visible=False)
    steps = widgets.create("steps", tab)
    swap = from_image = None
    with gr.Row():
        with gr.Column(scale=3, min_width=160):
            width = widgets.create("width", tab, visible=show_size)
            height = widgets.create("height", tab, visible=show_size)
        if show_size:
            with gr.Column(scale=0, min_width=50, elem_id=f"{tab}_dimensions_row"):
                swap = common.tool_button(SWAP_SYMBOL, elem_id=f"{tab}_res_switch_btn")
                if size_from_image:
                    from_image = common.tool_button(SIZE_FROM_IMAGE_SYMBOL, elem_id=f"{tab}_detect_image_size_btn")
        with gr.Column(scale=2, min_width=120):
            batch_count = widgets.create("n_iter", tab)
            batch_size = widgets.create("batch_size", tab)
    cfg_scale = widgets.create("cfg_scale", tab)

    def on_sampler_change(sampler, schedule):
        note = sampler_note(sampler, schedule)
        return gr.HTML(note, visible=bool(note))

    gr.on(
        [sampler_name.change, scheduler.change],
        on_sampler_change,
        inputs=[sampler_name, scheduler],
        outputs=[sampler_warning],
        queue=False,
        api_visibility="private",
    )
    if swap is not None:
        swap.click(
            lambda w, h: (h, w), inputs=[width, height], outputs=[width, height], queue=False, api_visibility="private"
        )
    return GenerationSettings(
        sampler_name,
        scheduler,
        sampler_warning,
        steps,
        width,
        height,
        swap,
        from_image,
        batch_count,
        batch_size,
        cfg_scale,
    )


@dataclass
class OutputPanel:
    gallery: gr.Gallery
    generation_info: gr.Textbox
    status: gr.HTML
    # per-session memory of what the gallery shows, for ♻️ and for picking an image's infotext
    infotexts: gr.State
    seeds: gr.State
    subseeds: gr.State
    selected: gr.State
    images: gr.State  # the images shown, kept on the server (what "Send to" sends)
    send: dict = field(default_factory=dict)  # target tab -> its "Send to" button
    save: gr.Button | None = None
    save_zip: gr.Button | None = None
    open_folder: gr.Button | None = None
    downloads: gr.File | None = None  # what Save/Zip wrote, to download


SEND_TARGETS = {"img2img": "img2img", "inpaint": "inpaint", "extras": "extras"}  # tab id -> button label suffix


def create_output_panel(tab: str) -> OutputPanel:
    """The results column: gallery (served as PNG, so a download keeps the parameters chunk), info and status."""
    with gr.Column(scale=1, min_width=420, elem_id=f"{tab}_results"):
        gallery = gr.Gallery(
            label="Output",
            show_label=False,
            elem_id=f"{tab}_gallery",
            columns=4,
            height=560,
            object_fit="contain",
            format="png",
            interactive=False,
            preview=True,
            buttons=["download", "fullscreen"],
        )
        generation_info = gr.Textbox(
            label="Generation info",
            lines=4,
            max_lines=20,
            interactive=False,
            elem_id=f"generation_info_{tab}",
            buttons=["copy"],
        )
        with gr.Row(elem_id=f"{tab}_send_row"):
            open_folder = gr.Button("📂", size="sm", elem_id=f"open_folder_{tab}", min_width=40, scale=0)
            save = gr.Button("Save", size="sm", elem_id=f"save_{tab}")
            save_zip = gr.Button("Zip", size="sm", elem_id=f"save_zip_{tab}")
            send = {
                target: gr.Button(f"Send to {label}", size="sm", elem_id=f"{tab}_send_to_{target}")
                for target, label in SEND_TARGETS.items()
            }
        downloads = gr.File(
            None, file_count="multiple", interactive=False, visible=False, elem_id=f"download_files_{tab}"
        )
        status = gr.HTML("", elem_id=f"html_info_{tab}", elem_classes=["generation-status"], js_on_load=None)
    states = (gr.State([]), gr.State([]), gr.State([]), gr.State(None), gr.State([]))
    return OutputPanel(
        gallery,
        generation_info,
        status,
        *states,
        send=send,
        save=save,
        save_zip=save_zip,
        open_folder=open_folder,
        downloads=downloads,
    )


# the folder 📂 opens for each tab: A1111's outdir_* setting of what the tab saves
OUTPUT_FOLDER_SETTINGS = {"txt2img": "outdir_txt2img_samples", "extras": "outdir_extras_samples"}


def wire_output_tools(ctx, panel: OutputPanel, tab: str) -> None:
    """Save / Zip (into outdir_save, for download) and 📂 (the tab's output folder, in the desktop's file manager:
    only on a local server with a desktop, as nobody else could see it)."""
    from sdui.app.open_folder import can_open_folders, open_folder

    def on_save(images, infotexts, selected, make_zip=False):
        from sdui.app.save_button import save_folder, save_results

        try:
            saved = save_results(ctx, list(images or []), list(infotexts or []), selected, make_zip)
        except OSError as e:
            return gr.File(visible=False), common.error_html(f"Could not save into {save_folder(ctx)}: {e}")
        if not saved:
            return gr.File(visible=False), common.note_html("Nothing to save: generate an image first.")
        names = ", ".join(p.name for p in saved)
        return gr.File([str(p) for p in saved], visible=True), common.note_html(f"Saved: {names}")

    inputs = [panel.images, panel.infotexts, panel.selected]
    outputs = [panel.downloads, panel.status]
    panel.save.click(on_save, inputs=inputs, outputs=outputs, api_visibility="private")
    panel.save_zip.click(
        lambda *values: on_save(*values, make_zip=True), inputs=inputs, outputs=outputs, api_visibility="private"
    )

    panel.open_folder.visible = can_open_folders(ctx)
    if panel.open_folder.visible:
        key = OUTPUT_FOLDER_SETTINGS.get(tab, "outdir_img2img_samples")

        def on_open():
            folder = ctx.paths.resolve(ctx.options.outdir_samples or ctx.options.get(key))
            message = open_folder(folder)
            return common.error_html(message) if message else gr.skip()

        panel.open_folder.click(on_open, inputs=[], outputs=[panel.status], queue=False, api_visibility="private")


def size_of_image(image, *, minimum: int = 64, maximum: int = 2048) -> tuple[int, int] | None:
    """Width and height for the sliders from an image's size: nearest multiple of 8 inside the sliders' range
    (A1111's 📐). None without an image."""
    if image is None:
        return None

    def snap(v: int) -> int:
        return min(maximum, max(minimum, (v + 4) // 8 * 8))

    return snap(image.width), snap(image.height)


# ---------------------------------------------------------------------------------------------------------------
# A tab and its wiring
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class GenerationTab:
    name: str  # the element id prefix: txt2img, img2img, inpaint, outpaint
    row: PromptRow
    settings: GenerationSettings
    seed: common.SeedWidgets
    panel: OutputPanel
    own_inputs: list = field(default_factory=list)  # the tab's own widgets, first in build_request's arguments
    own_paste_fields: dict = field(default_factory=dict)  # request field -> widget, for ↙️ (beyond the shared ones)
    image_input: object = None  # where "Send to <this tab>" puts an image
    paste_event: tuple | None = None  # (fn, inputs, outputs) of ↙️, which "Send to" runs after it

    @property
    def prompt(self) -> gr.Textbox:
        return self.row.prompt

    @property
    def request_inputs(self) -> list:
        """The widgets whose values the tab's build_request takes, in its argument order: the tab's own, then
        those of `request_fields`."""
        s = self.settings
        return [
            *self.own_inputs,
            self.row.prompt,
            self.row.negative_prompt,
            s.sampler_name,
            s.scheduler,
            s.steps,
            s.width,
            s.height,
            s.batch_count,
            s.batch_size,
            s.cfg_scale,
            *self.seed.inputs,
        ]

    def widget_for_field(self, *, size: bool = True) -> dict:
        """Request field -> the widget showing it (what ↙️ fills). size=False leaves out width/height."""
        s = self.settings
        widgets = {
            "prompt": self.row.prompt,
            "negative_prompt": self.row.negative_prompt,
            "sampler_name": s.sampler_name,
            "scheduler": s.scheduler,
            "steps": s.steps,
            "width": s.width,
            "height": s.height,
            "n_iter": s.batch_count,
            "batch_size": s.batch_size,
            "cfg_scale": s.cfg_scale,
            "seed": self.seed.seed,
            "subseed": self.seed.subseed,
            "subseed_strength": self.seed.subseed_strength,
            "seed_resize_from_w": self.seed.seed_resize_from_w,
            "seed_resize_from_h": self.seed.seed_resize_from_h,
        }
        if not size:
            del widgets["width"], widgets["height"]
        return {**widgets, **self.own_paste_fields}


def wire_generation(
    ctx, tab: GenerationTab, build: Callable, *, generate: Callable | None = None, scripts=None
) -> None:
    """Generate (through the job queue, with progress and live preview), Interrupt, Skip, picking an image in the
    gallery (shows its infotext) and ♻️ (takes its seed). `build` takes the values of `tab.request_inputs`;
    `generate(ctx, request, *, job)` is what the job runs (default: app_context.generate). `scripts`: the
    extensions' script controls of the tab (ui/extension_scripts.py), whose values follow the request's."""
    panel = tab.panel
    outputs = [
        panel.gallery,
        panel.infotexts,
        panel.seeds,
        panel.subseeds,
        panel.selected,
        panel.generation_info,
        panel.images,
        panel.status,  # last: a message alone goes here
    ]
    skip_all = (gr.skip(),) * (len(outputs) - 1)

    # a generator, so the progress bar and the live preview update while the job runs
    script_inputs = scripts.inputs if scripts is not None else []
    styles = [tab.row.styles] if tab.row.styles is not None else []  # last, after the scripts' controls

    def on_generate(request: gr.Request, *values, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask
        run = generate
        try:
            chosen = list(values[-1] or []) if styles else []
            values = values[:-1] if styles else values
            if script_inputs:
                values, script_values = values[: -len(script_inputs)], values[-len(script_inputs) :]
            generation = build(*values)
            batch = None
            if isinstance(generation, tuple):  # a Batch sub-tab: (the first request, the batch's runner)
                generation, batch = generation
            if chosen:
                generation = dataclasses.replace(generation, styles=chosen)
            runner = None
            if script_inputs:
                generation, runner = scripts.apply(generation, script_values)
            if batch is not None and runner is not None:
                raise UserError("A batch of folders cannot run with a script yet: choose None in the Script list.")
            if (runner or batch) is not None:
                run = functools.partial(generate or default_generate(), script=runner or batch)
        except UserError as e:  # e.g. no image uploaded: said before anything is queued
            log.warning("%s refused: %s", tab.name, e.message)
            yield (*skip_all, common.error_html(e.message))
            return
        except (TypeError, ValueError) as e:
            log.warning("%s refused: %s", tab.name, e)
            yield (*skip_all, common.error_html(str(e)))
            return
        shown_preview, shown_progress = None, None
        # the page's update period: A1111's live_preview_refresh_period (ms)
        poll = max(0.1, ctx.options.live_preview_refresh_period / 1000)
        for item in iter_generation(ctx, generation, generate=run, poll=poll, owner=ui_owner(request)):
            if isinstance(item, GenerationResult):
                shown = (item.images, item.infotexts, item.seeds, item.subseeds, None, item.info)
                yield (*shown, list(item.images), status_html(item))
                return
            current = progress_text(item, jobs_ahead(ctx.jobs, item))
            if current != shown_progress:
                shown_progress = current
                progress(current[0], desc=current[1])
            preview = item.current_image
            if preview is not None and preview is not shown_preview:
                shown_preview = preview
                yield ([preview], *skip_all)

    tab.row.generate.click(
        on_generate,
        inputs=[*tab.request_inputs, *script_inputs, *styles],
        outputs=outputs,
        show_progress_on=[panel.status],  # not over the gallery: the live preview stays visible
        concurrency_limit=None,
        api_visibility="private",
    )

    # Not queued: they must get through while the Generate event is still running.
    def on_interrupt(request: gr.Request) -> None:
        ctx.jobs.interrupt(owner=ui_owner(request))

    def on_skip(request: gr.Request) -> None:
        ctx.jobs.skip(owner=ui_owner(request))

    tab.row.interrupt.click(on_interrupt, inputs=[], outputs=[], queue=False, api_visibility="private")
    wire_output_tools(ctx, panel, tab.name)
    tab.row.skip.click(on_skip, inputs=[], outputs=[], queue=False, api_visibility="private")

    def on_select(infotexts, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else None
        text = infotexts[index] if index is not None and index < len(infotexts or []) else gr.skip()
        return index, text

    panel.gallery.select(
        on_select,
        inputs=[panel.infotexts],
        outputs=[panel.selected, panel.generation_info],
        queue=False,
        api_visibility="private",
    )
    tab.seed.reuse_seed.click(
        common.seed_of_image,
        inputs=[panel.seeds, panel.selected],
        outputs=[tab.seed.seed],
        queue=False,
        api_visibility="private",
    )
    tab.seed.reuse_subseed.click(
        common.seed_of_image,
        inputs=[panel.subseeds, panel.selected],
        outputs=[tab.seed.subseed],
        queue=False,
        api_visibility="private",
    )


def _styles_of_paste(ctx, values: dict) -> list:
    """The style picker's new value for a paste (A1111 1.6+'s infotext_styles): styles whose text ends the pasted
    prompts are taken out of them (in `values`) and chosen; [gr.skip()] to leave the picker alone."""
    mode = ctx.options.get("infotext_styles") or "Apply if any"
    if mode == "Ignore" or ("prompt" not in values and "negative_prompt" not in values):
        return [gr.skip()]
    from sdui.text.styles import extract_styles, read_styles

    found, prompt, negative = extract_styles(
        values.get("prompt", ""), values.get("negative_prompt", ""), read_styles(ctx.paths.styles_files)
    )
    if found or mode in ("Apply", "Discard"):
        values["prompt"], values["negative_prompt"] = prompt, negative
    if mode == "Apply" or (mode == "Apply if any" and found):
        return [found]
    return [gr.skip()]


def wire_paste(
    tab: GenerationTab,
    *,
    mode: str,
    targets: dict | None = None,
    choices: dict | None = None,
    scripts=None,
    ctx=None,
) -> None:
    """↙️: parameters typed/pasted into the prompt box (or, with an empty box, the shown result's) fill the widgets.
    `targets` (default: tab.widget_for_field()) maps request fields to widgets; `choices` as in paste_values;
    `scripts`' infotext fields are filled as A1111 fills them; with `ctx`, LoRA tags are relinked by hash to the
    files of this machine."""
    targets = targets if targets is not None else tab.widget_for_field()
    order = list(targets)
    script_fields = scripts.paste_fields if scripts is not None else []
    all_choices = {
        "sampler_name": ("sampler", sampler_names()),
        "scheduler": ("schedule type", scheduler_labels()),
        **(choices or {}),
    }

    def on_paste(prompt_text, last_info):
        text = prompt_text if prompt_text and prompt_text.strip() else last_info
        if ctx is not None and text:
            from sdui.core.extra_networks import relink_lora_tags
            from sdui.models.lora_files import list_loras

            text = relink_lora_tags(text, list_loras(ctx.paths.lora_dir), ctx.store.hash_cache)
        skip_scripts = [gr.skip()] * len(script_fields)
        skip_styles = [gr.skip()] * len(style_picker)
        try:
            values, ignored = paste.paste_values(text, order, mode=mode, choices=all_choices)
        except UserError as e:
            return (*[gr.skip()] * len(order), *skip_scripts, *skip_styles, common.error_html(e.message))
        if not values:
            return (
                *[gr.skip()] * len(order),
                *skip_scripts,
                *skip_styles,
                common.note_html(
                    "No generation parameters found: paste a whole infotext "
                    "(prompt, negative prompt and the \"Steps: ...\" line) into the prompt box."
                ),
            )
        note = common.note_html("Not available here, kept as it was: " + ", ".join(ignored) + ".") if ignored else ""
        from_scripts = pasted_values(text, script_fields) if script_fields else []
        chosen_styles = _styles_of_paste(ctx, values) if style_picker else []
        return (
            *[values.get(name, gr.skip()) for name in order],
            *[gr.skip() if v is None else v for v in from_scripts],
            *chosen_styles,
            note,
        )

    style_picker = [tab.row.styles] if ctx is not None and tab.row.styles is not None else []
    paste_inputs = [tab.row.prompt, tab.panel.generation_info]
    paste_outputs = [*targets.values(), *[c for c, _ in script_fields], *style_picker, tab.panel.status]
    tab.paste_event = (on_paste, paste_inputs, paste_outputs)
    tab.row.paste.click(
        on_paste,
        inputs=paste_inputs,
        outputs=paste_outputs,
        queue=False,
        api_visibility="private",
    )


def picked_image(images, selected, infotexts) -> tuple:
    """(image, infotext) of the selected result (else the first); (None, "") when there is none. `images` are the
    results kept on the server: the browser never names a file for this."""
    items = list(images or [])
    if not items:
        return None, ""
    index = selected if isinstance(selected, int) and 0 <= selected < len(items) else 0
    image = items[index]
    texts = list(infotexts or [])
    return image, texts[index] if index < len(texts) else image.info.get("parameters", "")


def wire_send_to(sources: list, targets: dict, tabs: gr.Tabs) -> None:
    """Each source tab's "Send to <target>" buttons: the chosen result image becomes the target's image, its
    parameters are pasted into the target's widgets (as ↙️ does; extras take the image alone), and the target tab
    opens. Sources and targets are GenerationTab-like: `.panel`, `.image_input`, `.paste_event`."""
    for source in sources:
        for target_id, button in source.panel.send.items():
            target = targets.get(target_id)
            if target is None or target is source or target.image_input is None:
                button.visible = False
                continue
            inputs = [source.panel.images, source.panel.selected, source.panel.infotexts]
            if target.paste_event is None:

                def send_image(images, selected, infotexts, target_id=target_id):
                    image, _ = picked_image(images, selected, infotexts)
                    return (gr.skip(), gr.skip()) if image is None else (image, gr.Tabs(selected=target_id))

                button.click(
                    send_image, inputs=inputs, outputs=[target.image_input, tabs], queue=False, api_visibility="private"
                )
                continue

            def send(images, selected, infotexts, target_id=target_id):
                image, text = picked_image(images, selected, infotexts)
                if image is None:
                    return gr.skip(), gr.skip(), gr.skip()
                return image, text, gr.Tabs(selected=target_id)

            fn, paste_inputs, paste_outputs = target.paste_event
            button.click(
                send,
                inputs=inputs,
                outputs=[target.image_input, target.prompt, tabs],
                queue=False,
                api_visibility="private",
            ).then(fn, inputs=paste_inputs, outputs=paste_outputs, queue=False, api_visibility="private")
