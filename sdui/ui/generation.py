"""What every generating tab (txt2img, img2img, inpaint, outpaint, depth2img) shares.

- widget values -> request fields (`request_fields`), the sampler/schedule choices and the warning about pairs
  that will not run;
- the runner: a request goes to the shared job queue, the tab gets the Job while it waits or runs (for the progress
  bar and live preview), then a `GenerationResult` (images + infotexts, or the message of the user's mistake);
- pasting an infotext (A1111's ↙️) into widget values;
- the widget groups every tab lays out the same way: the prompt row, the sampling settings, the output panel,
  and `wire_generation` / `wire_paste`, which connect them to the runner.

A tab module builds its own widgets around these, writes a pure `build_request(...)`, and calls the two wire
functions. Everything that decides something is a plain function, testable without a browser.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from sdui.errors import UserError
from sdui.ui import common, widgets

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
    """A warning, before Generate is pressed, when the schedule type does not work with the sampler."""
    from sdui.core.samplers import find_sampler, sampler_supports, supported_schedules
    from sdui.core.schedules import find_schedule

    if not sampler_name or sampler_supports(sampler_name, scheduler):
        return ""
    labels = [info.label for info in map(find_schedule, supported_schedules(sampler_name)) if info is not None]
    if not labels:
        info = find_sampler(sampler_name)
        reason = (info.refusal if info is not None else None) or "it is not implemented"
        return common.error_html(f"{sampler_name} is not available: {reason}")
    return common.error_html(
        f"{sampler_name} does not work with schedule type {scheduler}; pick one of: {', '.join(labels)}."
    )


# ---------------------------------------------------------------------------------------------------------------
# Running a request
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class GenerationResult:
    images: list = field(default_factory=list)  # PIL images, each with .info["parameters"]
    infotexts: list = field(default_factory=list)  # one per image (a grid has the grid's infotext)
    seeds: list = field(default_factory=list)  # the seed behind each image shown (a grid: the first seed)
    subseeds: list = field(default_factory=list)
    error: str = ""  # a message for the user, "" when all went well
    elapsed: float = 0.0

    @property
    def info(self) -> str:
        """The infotext of the first image: what the info box shows before the user picks another one."""
        return self.infotexts[0] if self.infotexts else ""


def _per_image(values: list, n_images: int, first: int) -> list:
    """all_seeds-style lists cover the real images; a leading grid gets the first value."""
    if not values:
        return [-1] * n_images
    return [values[min(max(i - first, 0), len(values) - 1)] for i in range(n_images)]


def result_from_processed(processed, elapsed: float = 0.0) -> GenerationResult:
    images = list(processed.images)
    first = processed.index_of_first_image
    infotexts = list(processed.infotexts or [])
    if len(infotexts) < len(images):  # defensive: fall back on the text each image carries
        infotexts = [im.info.get("parameters", "") for im in images]
    return GenerationResult(
        images=images,
        infotexts=infotexts[: len(images)],
        seeds=_per_image(list(processed.all_seeds or []), len(images), first),
        subseeds=_per_image(list(processed.all_subseeds or []), len(images), first),
        elapsed=elapsed,
    )


def _default_generate():
    from sdui.app.context import (
        generate,  # late: app_context builds the UI, the UI must not import it first
    )

    return generate


def iter_generation(ctx, request, *, generate: Callable | None = None, poll: float = 0.2) -> Iterator[Any]:
    """Submit to the job queue; yield the Job while it waits or runs, then the GenerationResult last.

    A user's mistake (UserError) and an unexpected failure both end as a result with `error` set: the UI shows
    the message and stays usable."""
    started = time.perf_counter()
    job = ctx.jobs.submit(generate or _default_generate(), ctx, request, name=request.mode)
    while not job.done:
        yield job
        time.sleep(poll)
    try:
        processed = job.wait()
    except UserError as e:
        yield GenerationResult(error=e.message, elapsed=time.perf_counter() - started)
        return
    except Exception as e:
        log.error("%s %s failed", request.mode, job.id, exc_info=e)
        yield GenerationResult(error=f"{type(e).__name__}: {e}", elapsed=time.perf_counter() - started)
        return
    yield result_from_processed(processed, time.perf_counter() - started)


def run_generation(ctx, request, *, generate: Callable | None = None, poll: float = 0.2) -> GenerationResult:
    """iter_generation without the progress: block until the result (or the error message) is there."""
    result = None
    for item in iter_generation(ctx, request, generate=generate, poll=poll):
        result = item
    return result


def jobs_ahead(jobs, job) -> int:
    """How many jobs finish before `job` starts: the pending ones before it, and the one running now."""
    position = jobs.position(job)
    running = jobs.current
    return position + (1 if running is not None and running is not job else 0)


def progress_text(job, ahead: int = 0) -> tuple[float, str]:
    """(fraction done, description) for the progress bar."""
    if job.state == "queued":
        if ahead <= 0:
            return 0.0, "Starting"
        return 0.0, f"Waiting for {ahead} job{'s' if ahead != 1 else ''} to finish"
    desc = ""
    if job.job_count > 1:
        desc = f"Batch {job.job_no + 1}/{job.job_count}, "
    if job.sampling_steps:
        desc += f"step {job.sampling_step}/{job.sampling_steps}"
    else:
        desc += "preparing"
    return job.progress, desc


def status_html(result: GenerationResult) -> str:
    if result.error:
        return common.error_html(result.error)
    return f'<div class="note">Time taken: {result.elapsed:.2f} s</div>'


# ---------------------------------------------------------------------------------------------------------------
# Pasting parameters (A1111's ↙️): an infotext in the prompt box fills the widgets
# ---------------------------------------------------------------------------------------------------------------
# An infotext without these keys was made with the feature off: pasting it switches the feature off, so the
# pasted parameters reproduce the image (A1111 would keep the old widget values).
# ("Hires steps" is written only when the second pass has its own count.)
PASTE_OFF_WHEN_ABSENT = {
    "subseed_strength": 0,
    "seed_resize_from_w": 0,
    "seed_resize_from_h": 0,
    "hr_second_pass_steps": 0,
}


def fields_from_infotext(text: str, *, mode: str, fields) -> dict:
    """Request fields an infotext sets, limited to `fields` (the ones a tab has widgets for). Empty when the text
    has no parameters line: plain prompt text is not "parameters" and must not wipe the other widgets.
    `mode` picks the mode-specific keys ("txt2img": hires fix; "img2img": denoising, mask settings)."""
    from sdui.core.infotext_fields import request_fields
    from sdui.infotext import parse_infotext

    if not text or not text.strip():
        return {}
    if set(parse_infotext(text, defaults=False)) <= {"Prompt", "Negative prompt"}:
        return {}
    values = request_fields(parse_infotext(text), mode=mode)
    return {k: v for k, v in values.items() if k in fields}


def paste_values(text: str, fields, *, mode: str, choices: dict | None = None) -> tuple[dict, list[str]]:
    """({field: widget value} to set, [what was left alone and why]) for pasting `text` into a tab.

    `choices` maps a dropdown's field to (what it is called, the names it offers): a value it lacks (a sampler this
    UI does not list) is not pasted but reported. Radio fields show their declared label (1 -> "original")."""
    found = fields_from_infotext(text, mode=mode, fields=fields)
    if not found:
        return {}, []
    values, ignored = {}, []
    for name in fields:
        value = found.get(name, PASTE_OFF_WHEN_ABSENT.get(name))
        if value is None:
            continue
        if choices and name in choices and value not in choices[name][1]:
            ignored.append(f"{choices[name][0]} {value!r}")
            continue
        if widgets.spec_of(name).choices:
            value = widgets.to_widget(name, value)
        values[name] = value
    return values, ignored


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


def create_prompt_row(tab: str) -> PromptRow:
    """Prompt and negative prompt on the left; Generate, Interrupt/Skip and ↙️ on the right (A1111's toprow)."""
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
            negative_prompt = gr.Textbox(
                label="Negative prompt",
                show_label=False,
                lines=2,
                max_lines=12,
                elem_id=f"{tab}_neg_prompt",
                placeholder="Negative prompt",
            )
        with gr.Column(scale=1, min_width=200, elem_id=f"{tab}_actions_column"):
            generate = gr.Button(
                "Generate", variant="primary", size="lg", elem_id=f"{tab}_generate", elem_classes=["generate-button"]
            )
            with gr.Row(elem_id=f"{tab}_interrupt_row", elem_classes=["interrupt-row"]):
                interrupt = gr.Button("Interrupt", variant="stop", size="sm", elem_id=f"{tab}_interrupt", min_width=60)
                skip = gr.Button("Skip", size="sm", elem_id=f"{tab}_skip", min_width=60)
            with gr.Row(elem_id=f"{tab}_tools"):
                paste = common.tool_button(common.PASTE_SYMBOL, elem_id=f"{tab}_paste")
    return PromptRow(prompt, negative_prompt, generate, interrupt, skip, paste)


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
        status = gr.HTML("", elem_id=f"html_info_{tab}", elem_classes=["generation-status"], js_on_load=None)
    return OutputPanel(gallery, generation_info, status, gr.State([]), gr.State([]), gr.State([]), gr.State(None))


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


def wire_generation(ctx, tab: GenerationTab, build: Callable, *, generate: Callable | None = None) -> None:
    """Generate (through the job queue, with progress and live preview), Interrupt, Skip, picking an image in the
    gallery (shows its infotext) and ♻️ (takes its seed). `build` takes the values of `tab.request_inputs`;
    `generate(ctx, request, *, job)` is what the job runs (default: app_context.generate)."""
    panel = tab.panel
    outputs = [
        panel.gallery,
        panel.infotexts,
        panel.seeds,
        panel.subseeds,
        panel.selected,
        panel.generation_info,
        panel.status,
    ]
    skip_all = (gr.skip(),) * (len(outputs) - 1)

    # a generator, so the progress bar and the live preview update while the job runs
    def on_generate(*values, progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a progress tracker
        try:
            request = build(*values)
        except UserError as e:  # e.g. no image uploaded: said before anything is queued
            yield (*skip_all, common.error_html(e.message))
            return
        except (TypeError, ValueError) as e:
            yield (*skip_all, common.error_html(str(e)))
            return
        shown_preview, shown_progress = None, None
        # the page's update period: A1111's live_preview_refresh_period (ms)
        poll = max(0.1, ctx.options.live_preview_refresh_period / 1000)
        for item in iter_generation(ctx, request, generate=generate, poll=poll):
            if isinstance(item, GenerationResult):
                yield (item.images, item.infotexts, item.seeds, item.subseeds, None, item.info, status_html(item))
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
        inputs=tab.request_inputs,
        outputs=outputs,
        show_progress_on=[panel.gallery],
        concurrency_limit=None,
        api_visibility="private",
    )
    # Not queued: they must get through while the Generate event is still running.
    tab.row.interrupt.click(
        lambda: ctx.jobs.interrupt() and None, inputs=[], outputs=[], queue=False, api_visibility="private"
    )
    tab.row.skip.click(lambda: ctx.jobs.skip() and None, inputs=[], outputs=[], queue=False, api_visibility="private")

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


def wire_paste(tab: GenerationTab, *, mode: str, targets: dict | None = None, choices: dict | None = None) -> None:
    """↙️: parameters typed/pasted into the prompt box (or, with an empty box, the shown result's) fill the widgets.
    `targets` (default: tab.widget_for_field()) maps request fields to widgets; `choices` as in paste_values."""
    targets = targets if targets is not None else tab.widget_for_field()
    order = list(targets)
    all_choices = {
        "sampler_name": ("sampler", sampler_names()),
        "scheduler": ("schedule type", scheduler_labels()),
        **(choices or {}),
    }

    def on_paste(prompt_text, last_info):
        text = prompt_text if prompt_text and prompt_text.strip() else last_info
        try:
            values, ignored = paste_values(text, order, mode=mode, choices=all_choices)
        except UserError as e:
            return (*[gr.skip()] * len(order), common.error_html(e.message))
        if not values:
            return (
                *[gr.skip()] * len(order),
                common.note_html(
                    "No generation parameters found: paste a whole infotext "
                    "(prompt, negative prompt and the \"Steps: ...\" line) into the prompt box."
                ),
            )
        note = common.note_html("Not available here, kept as it was: " + ", ".join(ignored) + ".") if ignored else ""
        return (*[values.get(name, gr.skip()) for name in order], note)

    tab.row.paste.click(
        on_paste,
        inputs=[tab.row.prompt, tab.panel.generation_info],
        outputs=[*targets.values(), tab.panel.status],
        queue=False,
        api_visibility="private",
    )
