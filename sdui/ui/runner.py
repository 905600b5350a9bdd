"""Running a request from the UI: it goes to the shared job queue; the tab gets the Job while it waits or runs (for
the progress bar and the live preview), then a GenerationResult (images and infotexts, or the message of the user's
mistake)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sdui.errors import UserError
from sdui.ui import common

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    images: list = field(default_factory=list)  # PIL images, each with .info["parameters"]
    infotexts: list = field(default_factory=list)  # one per image (a grid has the grid's infotext)
    seeds: list = field(default_factory=list)  # the seed behind each image shown (a grid: the first seed)
    subseeds: list = field(default_factory=list)
    error: str = ""  # a message for the user, "" when all went well
    notes: list = field(default_factory=list)  # what the user should know although it went well (e.g. not saved)
    elapsed: float = 0.0
    stopped: str = ""  # "Interrupted" or "Skipped" when the user stopped the job (A1111 says so under the images)

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
        notes=list(processed.notes),
        elapsed=elapsed,
    )


def default_generate():
    from sdui.app.context import (
        generate,  # late: app_context builds the UI, the UI must not import it first
    )

    return generate


def ui_owner(request) -> str:
    """Who a page's job belongs to: the logged-in user (so their API calls with the same password see it too), else
    the browser session."""
    if request is not None and request.username:
        return f"user:{request.username}"
    return f"ui:{request.session_hash if request is not None else '?'}"


def iter_generation(
    ctx, request, *, generate: Callable | None = None, poll: float = 0.2, owner: str | None = None
) -> Iterator[Any]:
    """Submit to the job queue; yield the Job while it waits or runs, then the GenerationResult last.

    A user's mistake (UserError) and an unexpected failure both end as a result with `error` set: the UI shows
    the message and stays usable."""
    started = time.perf_counter()
    job = ctx.jobs.submit(generate or default_generate(), ctx, request, name=request.mode, owner=owner)
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
    result = result_from_processed(processed, time.perf_counter() - started)
    if processed.interrupted:
        result.stopped = "Interrupted"
    elif getattr(job, "was_skipped", False):
        result.stopped = "Skipped"
    yield result


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
    notes = "".join(common.error_html(note) for note in result.notes)
    stopped = f"{result.stopped}. " if result.stopped else ""
    return f'{notes}<div class="note">{stopped}Time taken: {result.elapsed:.2f} s</div>'
