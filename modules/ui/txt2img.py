"""The txt2img tab: widgets -> GenerationRequest -> the shared job queue -> gallery + infotext.

The wiring is thin on purpose: `build_request` turns widget values into a request, `iter_generation` /
`run_generation` submit it to the job queue and turn the outcome (or the user's mistake) into things to show.
Both are plain functions, testable without a browser. Element ids follow A1111 (reference §5.5): extensions'
JavaScript finds the widgets by them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gradio as gr

from modules.errors import UserError
from modules.request import GenerationRequest
from modules.ui import common

log = logging.getLogger(__name__)

TAB = "txt2img"
DEFAULT_SAMPLER = "DPM++ 2M"
DEFAULT_SCHEDULER = "Automatic"


# ---------------------------------------------------------------------------------------------------------------
# Sampler / scheduler choices
# ---------------------------------------------------------------------------------------------------------------
def _entry_field(entry, name: str):
    return entry[name] if isinstance(entry, dict) else getattr(entry, name)


def sampler_names() -> list[str]:
    from modules.samplers import SAMPLERS
    return [_entry_field(s, "name") for s in SAMPLERS]


def scheduler_labels() -> list[str]:
    from modules.schedules import SCHEDULERS
    return [_entry_field(s, "label") for s in SCHEDULERS]


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request
# ---------------------------------------------------------------------------------------------------------------
def _int(value, default: int) -> int:
    if value is None or value == "":
        return default
    return int(round(float(value)))


def _number(value, default: float):
    """Whole numbers as int, like the values A1111's UI hands over (infotext prints `CFG scale: 7`, not 7.0)."""
    if value is None or value == "":
        return default
    value = float(value)
    return int(value) if value.is_integer() else value


def build_request(prompt: str, negative_prompt: str, sampler_name: str, scheduler: str, steps, width, height,
                  batch_count, batch_size, cfg_scale, seed, subseed=-1, subseed_strength=0,
                  seed_resize_from_w=0, seed_resize_from_h=0) -> GenerationRequest:
    """The request the txt2img widgets describe. No validation here: the processing core validates every
    request the same way, whether it comes from the UI or the API."""
    resize_w, resize_h = _int(seed_resize_from_w, 0), _int(seed_resize_from_h, 0)
    return GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative_prompt or "",
        sampler_name=sampler_name or DEFAULT_SAMPLER,
        scheduler=scheduler or DEFAULT_SCHEDULER,
        steps=_int(steps, 20),
        width=_int(width, 512),
        height=_int(height, 512),
        n_iter=_int(batch_count, 1),
        batch_size=_int(batch_size, 1),
        cfg_scale=_number(cfg_scale, 7),
        seed=_int(seed, -1),
        subseed=_int(subseed, -1),
        subseed_strength=_number(subseed_strength, 0),
        # 0 in the UI means "off"; the request says so with -1
        seed_resize_from_w=resize_w if resize_w > 0 else -1,
        seed_resize_from_h=resize_h if resize_h > 0 else -1,
        mode=TAB,
    )


# ---------------------------------------------------------------------------------------------------------------
# Running a request
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class GenerationResult:
    images: list = field(default_factory=list)       # PIL images, each with .info["parameters"]
    infotexts: list = field(default_factory=list)    # one per image (a grid has the grid's infotext)
    seeds: list = field(default_factory=list)        # the seed behind each image shown (a grid: the first seed)
    subseeds: list = field(default_factory=list)
    error: str = ""                                  # a message for the user, "" when all went well
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
    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    infotexts = list(processed.infotexts or [])
    if len(infotexts) < len(images):  # defensive: fall back on the text each image carries
        infotexts = [im.info.get("parameters", "") for im in images]
    return GenerationResult(images=images, infotexts=infotexts[:len(images)],
                            seeds=_per_image(list(processed.all_seeds or []), len(images), first),
                            subseeds=_per_image(list(processed.all_subseeds or []), len(images), first),
                            elapsed=elapsed)


def _default_generate():
    from modules.app_context import generate  # late: app_context builds the UI, the UI must not import it first
    return generate


def iter_generation(ctx, request: GenerationRequest, *, generate: Callable | None = None,
                    poll: float = 0.2) -> Iterator[Any]:
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
    except Exception as e:  # noqa: BLE001 - our bug, not the user's: keep the traceback in the log
        log.error("%s %s failed", request.mode, job.id, exc_info=e)
        yield GenerationResult(error=f"{type(e).__name__}: {e}", elapsed=time.perf_counter() - started)
        return
    yield result_from_processed(processed, time.perf_counter() - started)


def run_generation(ctx, request: GenerationRequest, *, generate: Callable | None = None,
                   poll: float = 0.2) -> GenerationResult:
    """iter_generation without the progress: block until the result (or the error message) is there."""
    result = None
    for item in iter_generation(ctx, request, generate=generate, poll=poll):
        result = item
    return result


def jobs_ahead(jobs, job) -> int:
    """How many jobs finish before `job` starts: the pending ones before it, and the one running now."""
    position = jobs.position(job) if hasattr(jobs, "position") else 0
    running = getattr(jobs, "current", None)
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


def sampler_note(sampler_name: str, scheduler: str) -> str:
    """A warning, before Generate is pressed, when the schedule type does not work with the sampler."""
    from modules.samplers import find_sampler, sampler_supports, supported_schedules
    from modules.schedules import find_schedule
    if not sampler_name or sampler_supports(sampler_name, scheduler):
        return ""
    labels = [info.label for info in map(find_schedule, supported_schedules(sampler_name)) if info is not None]
    if not labels:
        info = find_sampler(sampler_name)
        reason = getattr(info, "refusal", None) or "it is not implemented"
        return common.error_html(f"{sampler_name} is not available: {reason}")
    return common.error_html(f"{sampler_name} does not work with schedule type {scheduler}; "
                             f"pick one of: {', '.join(labels)}.")


def status_html(result: GenerationResult) -> str:
    if result.error:
        return common.error_html(result.error)
    return f'<div class="note">Time taken: {result.elapsed:.2f} s</div>'


# ---------------------------------------------------------------------------------------------------------------
# Pasting parameters (A1111's ↙️): an infotext in the prompt box fills the widgets
# ---------------------------------------------------------------------------------------------------------------
PASTE_FIELDS = ("prompt", "negative_prompt", "sampler_name", "scheduler", "steps", "width", "height", "n_iter",
                "batch_size", "cfg_scale", "seed", "subseed", "subseed_strength", "seed_resize_from_w",
                "seed_resize_from_h")


# An infotext without these keys was made with the feature off: pasting it switches the feature off, so the
# pasted parameters reproduce the image (A1111 would keep the old widget values).
PASTE_OFF_WHEN_ABSENT = {"subseed_strength": 0, "seed_resize_from_w": 0, "seed_resize_from_h": 0}


def fields_from_infotext(text: str) -> dict:
    """Request fields an infotext sets (only the ones this tab has widgets for). Empty when the text has no
    parameters line: plain prompt text is not "parameters" and must not wipe the other widgets."""
    from modules.infotext import parse_infotext, request_fields_from_infotext
    if not text or not text.strip():
        return {}
    if set(parse_infotext(text, defaults=False)) <= {"Prompt", "Negative prompt"}:
        return {}
    fields = request_fields_from_infotext(parse_infotext(text), mode=TAB)
    return {k: v for k, v in fields.items() if k in PASTE_FIELDS}


# ---------------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Txt2ImgTab:
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    sampler_name: gr.Dropdown
    scheduler: gr.Dropdown
    steps: gr.Slider
    width: gr.Slider
    height: gr.Slider
    batch_count: gr.Slider
    batch_size: gr.Slider
    cfg_scale: gr.Slider
    seed: common.SeedWidgets
    gallery: gr.Gallery
    generation_info: gr.Textbox
    status: gr.HTML

    @property
    def request_inputs(self) -> list:
        """The widgets whose values build_request takes, in its argument order."""
        return [self.prompt, self.negative_prompt, self.sampler_name, self.scheduler, self.steps, self.width,
                self.height, self.batch_count, self.batch_size, self.cfg_scale, *self.seed.inputs]

    def widget_for_field(self) -> dict:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, "sampler_name": self.sampler_name,
                "scheduler": self.scheduler, "steps": self.steps, "width": self.width, "height": self.height,
                "n_iter": self.batch_count, "batch_size": self.batch_size, "cfg_scale": self.cfg_scale,
                "seed": self.seed.seed, "subseed": self.seed.subseed,
                "subseed_strength": self.seed.subseed_strength,
                "seed_resize_from_w": self.seed.seed_resize_from_w,
                "seed_resize_from_h": self.seed.seed_resize_from_h}


def create_tab(ctx) -> Txt2ImgTab:
    """Lay out the txt2img tab inside the current Blocks/Tab context and wire its events."""
    samplers = sampler_names()
    schedulers = scheduler_labels()

    with gr.Row(elem_id=f"{TAB}_toprow"):
        with gr.Column(scale=6, elem_id=f"{TAB}_prompt_container"):
            prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12, elem_id=f"{TAB}_prompt",
                                placeholder="Prompt\n(paste generation parameters here and press \u2199\ufe0f)")
            negative_prompt = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                         elem_id=f"{TAB}_neg_prompt", placeholder="Negative prompt")
        with gr.Column(scale=1, min_width=200, elem_id=f"{TAB}_actions_column"):
            generate = gr.Button("Generate", variant="primary", size="lg", elem_id=f"{TAB}_generate")
            with gr.Row(elem_id=f"{TAB}_interrupt_row"):
                interrupt = gr.Button("Interrupt", variant="stop", size="sm", elem_id=f"{TAB}_interrupt",
                                      min_width=60)
                skip = gr.Button("Skip", size="sm", elem_id=f"{TAB}_skip", min_width=60)
            with gr.Row(elem_id=f"{TAB}_tools"):
                paste = common.tool_button(common.PASTE_SYMBOL, elem_id=f"{TAB}_paste")

    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            with gr.Row():
                sampler_name = gr.Dropdown(choices=samplers, label="Sampling method", elem_id=f"{TAB}_sampling",
                                           value=DEFAULT_SAMPLER if DEFAULT_SAMPLER in samplers else samplers[0])
                scheduler = gr.Dropdown(choices=schedulers, label="Schedule type", elem_id=f"{TAB}_scheduler",
                                        value=DEFAULT_SCHEDULER if DEFAULT_SCHEDULER in schedulers else schedulers[0])
            sampler_warning = gr.HTML("", elem_id=f"{TAB}_sampler_note", js_on_load=None, visible=False)
            steps = gr.Slider(minimum=1, maximum=150, step=1, value=20, label="Sampling steps",
                              elem_id=f"{TAB}_steps")
            with gr.Row():
                with gr.Column(scale=3, min_width=160):
                    width = gr.Slider(minimum=64, maximum=2048, step=8, value=512, label="Width",
                                      elem_id=f"{TAB}_width")
                    height = gr.Slider(minimum=64, maximum=2048, step=8, value=512, label="Height",
                                       elem_id=f"{TAB}_height")
                with gr.Column(scale=0, min_width=50, elem_id=f"{TAB}_dimensions_row"):
                    swap = common.tool_button("\u21c5", elem_id=f"{TAB}_res_switch_btn")
                with gr.Column(scale=2, min_width=120):
                    batch_count = gr.Slider(minimum=1, maximum=100, step=1, value=1, label="Batch count",
                                            elem_id=f"{TAB}_batch_count")
                    batch_size = gr.Slider(minimum=1, maximum=8, step=1, value=1, label="Batch size",
                                           elem_id=f"{TAB}_batch_size")
            cfg_scale = gr.Slider(minimum=1.0, maximum=30.0, step=0.5, value=7.0, label="CFG Scale",
                                  elem_id=f"{TAB}_cfg_scale")
            seed = common.create_seed_row(TAB)

        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_results"):
            gallery = gr.Gallery(label="Output", show_label=False, elem_id=f"{TAB}_gallery", columns=4,
                                 height=560, object_fit="contain", format="png", interactive=False,
                                 preview=True, buttons=["download", "fullscreen"])
            generation_info = gr.Textbox(label="Generation info", lines=4, max_lines=20, interactive=False,
                                         elem_id=f"generation_info_{TAB}", buttons=["copy"])
            status = gr.HTML("", elem_id=f"html_info_{TAB}", js_on_load=None)

    # Per-session memory of what the gallery shows, for ♻️ and for picking an image's infotext.
    infotexts_state = gr.State([])
    seeds_state = gr.State([])
    subseeds_state = gr.State([])
    selected_state = gr.State(None)

    tab = Txt2ImgTab(prompt, negative_prompt, generate, interrupt, skip, paste, sampler_name, scheduler, steps,
                     width, height, batch_count, batch_size, cfg_scale, seed, gallery, generation_info, status)

    # -- Generate: a generator, so the progress bar and the live preview update while the job runs
    def on_generate(*values, progress=gr.Progress()):
        try:
            request = build_request(*values)
        except (TypeError, ValueError) as e:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), common.error_html(str(e))
            return
        shown_preview, shown_progress = None, None
        for item in iter_generation(ctx, request):
            if isinstance(item, GenerationResult):
                yield (item.images, item.infotexts, item.seeds, item.subseeds, None, item.info, status_html(item))
                return
            current = progress_text(item, jobs_ahead(ctx.jobs, item))
            if current != shown_progress:
                shown_progress = current
                progress(current[0], desc=current[1])
            preview = getattr(item, "current_image", None)
            if preview is not None and preview is not shown_preview:
                shown_preview = preview
                yield [preview], gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    generate.click(on_generate, inputs=tab.request_inputs,
                   outputs=[gallery, infotexts_state, seeds_state, subseeds_state, selected_state, generation_info,
                            status],
                   show_progress_on=[gallery], concurrency_limit=None, api_visibility="private")
    # Not queued: they must get through while the Generate event is still running.
    interrupt.click(lambda: ctx.jobs.interrupt() and None, inputs=[], outputs=[], queue=False,
                    api_visibility="private")
    skip.click(lambda: ctx.jobs.skip() and None, inputs=[], outputs=[], queue=False, api_visibility="private")
    def on_sampler_change(sampler, schedule):
        note = sampler_note(sampler, schedule)
        return gr.HTML(note, visible=bool(note))

    gr.on([sampler_name.change, scheduler.change], on_sampler_change, inputs=[sampler_name, scheduler],
          outputs=[sampler_warning], queue=False, api_visibility="private")
    swap.click(lambda w, h: (h, w), inputs=[width, height], outputs=[width, height], queue=False,
               api_visibility="private")

    # -- Picking an image shows its infotext; ♻️ takes its seed
    def on_select(infotexts, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else None
        text = infotexts[index] if index is not None and index < len(infotexts or []) else gr.skip()
        return index, text

    gallery.select(on_select, inputs=[infotexts_state], outputs=[selected_state, generation_info],
                   queue=False, api_visibility="private")
    seed.reuse_seed.click(common.seed_of_image, inputs=[seeds_state, selected_state], outputs=[seed.seed],
                          queue=False, api_visibility="private")
    seed.reuse_subseed.click(common.seed_of_image, inputs=[subseeds_state, selected_state],
                             outputs=[seed.subseed], queue=False, api_visibility="private")

    # -- ↙️: parameters typed/pasted into the prompt box (or, with an empty box, the last result's) fill the widgets
    paste_targets = tab.widget_for_field()
    paste_order = list(paste_targets)

    def on_paste(prompt_text, last_info):
        text = prompt_text if prompt_text and prompt_text.strip() else last_info
        try:
            fields = fields_from_infotext(text)
        except UserError as e:
            return (*[gr.skip()] * len(paste_order), common.error_html(e.message))
        if not fields:
            return (*[gr.skip()] * len(paste_order),
                    common.note_html("No generation parameters found: paste a whole infotext "
                                     "(prompt, negative prompt and the \"Steps: ...\" line) into the prompt box."))
        updates, ignored = [], []
        for name in paste_order:
            value = fields.get(name, PASTE_OFF_WHEN_ABSENT.get(name))
            if value is None:
                updates.append(gr.skip())
            elif name == "sampler_name" and value not in samplers:
                ignored.append(f"sampler {value!r}")
                updates.append(gr.skip())
            elif name == "scheduler" and value not in schedulers:
                ignored.append(f"schedule type {value!r}")
                updates.append(gr.skip())
            else:
                updates.append(value)
        note = common.note_html("Not available here, kept as it was: " + ", ".join(ignored) + ".") if ignored else ""
        return (*updates, note)

    paste.click(on_paste, inputs=[prompt, generation_info], outputs=[*paste_targets.values(), status],
                queue=False, api_visibility="private")
    return tab
