"""One FIFO job queue shared by the UI and the API.

A single worker thread runs jobs in the order they were submitted, so two generations never fight over the model
or the GPU. A job is the processing core's progress-event receiver (it implements sdui.core.events.ProgressEvents):
the core reports batches and steps to it and asks it, between steps, whether to stop. `progress_info()` answers in
the shape of A1111's GET /sdapi/v1/progress so existing clients can poll it.
"""

from __future__ import annotations

import base64
import io
import logging
import queue
import random
import string
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image
from tqdm import tqdm

from sdui.devices import release_memory
from sdui.errors import UserError

log = logging.getLogger(__name__)
RELEASE_AFTER_S = 2.0  # jobs that ran at least this long give their memory back when they end

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def new_task_id() -> str:
    return "task(" + "".join(random.choices(string.ascii_uppercase + string.digits, k=7)) + ")"


class Job:
    """One unit of work in the queue; it receives the processing core's progress events (sdui.core.events).

    Progress fields are written by the worker thread and read by pollers, with A1111's meaning: `job_no` of
    `job_count` batches is running, at `sampling_step` of its `sampling_steps`."""

    def __init__(
        self,
        fn: Callable,
        args: tuple,
        kwargs: dict,
        *,
        name: str,
        task_id: str | None = None,
        show_progress_bar: bool = True,
        owner: str | None = None,
    ):
        self.id = task_id or new_task_id()
        self.owner = owner  # who submitted it: only they may interrupt or skip it (None: the program itself)
        self.name = name
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.state = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.job_timestamp = ""
        self.sampling_step = 0
        self.sampling_steps = 0
        self.step_fraction = 0.0  # how far the step under way has got (0..1)
        self.job_no = 0
        self.job_count = 0
        self.interrupt_requested = False
        self.skip_requested = False
        self.was_skipped = False  # a batch of it was skipped (the UI says "Skipped")
        self.cancelled = False
        self.current_image: Image.Image | None = None  # the latest live preview
        self.textinfo: str | None = None
        self.result: Any = None
        self.exception: BaseException | None = None
        self._done = threading.Event()
        self._show_bar = show_progress_bar
        self._bar: tqdm | None = None

    # ---- progress events, from the processing core (worker thread) ----
    def add_batches(self, count: int, steps_per_batch: int) -> None:
        """A request of the job announces its batches; several requests in one job add up."""
        self.job_count += int(count)
        self.sampling_steps = int(steps_per_batch)
        self.sampling_step = 0
        if self._show_bar:
            total = (self.job_count - self.job_no) * self.sampling_steps
            if self._bar is None:
                self._bar = tqdm(total=total, desc=f"{self.name} {self.id}", unit="it", leave=False)
            else:
                self._bar.total = self._bar.n + total
                self._bar.refresh()

    def step_done(self, step: int, steps: int) -> None:
        delta = int(step) - self.sampling_step
        self.sampling_step, self.sampling_steps = int(step), int(steps)
        self.step_fraction = 0.0
        if self._bar is not None and delta > 0:
            self._bar.update(delta)

    def step_part_done(self, fraction: float) -> None:
        self.step_fraction = float(fraction)

    def batch_done(self) -> None:
        self.job_no += 1
        self.sampling_step = 0
        self.step_fraction = 0.0
        self.skip_requested = False  # a skip applies to one batch

    def preview(self, image: Image.Image) -> None:
        self.current_image = image

    def interrupted(self) -> bool:
        return self.interrupt_requested

    def skipped(self) -> bool:
        return self.skip_requested

    # ---- state ----
    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def progress(self) -> float:
        """0..1 over the whole job."""
        if self.state == DONE:
            return 1.0
        if self.state != RUNNING:
            return 0.0
        step = self.sampling_step + self.step_fraction  # a step under way counts by how far it has got
        fraction = min(step, self.sampling_steps) / self.sampling_steps if self.sampling_steps else 0.0
        return min(1.0, (self.job_no + fraction) / max(1, self.job_count))

    @property
    def eta(self) -> float | None:
        """Seconds left, extrapolated from the time spent so far (None until there is something to go on)."""
        progress = self.progress
        if self.state != RUNNING or self.started_at is None or progress <= 0:
            return None
        elapsed = time.time() - self.started_at
        return max(0.0, elapsed / progress - elapsed)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or re-raise its exception (TimeoutError: not in time).

        The result is handed over, not kept: the queue remembers recent jobs for progress look-ups, and holding
        every job's images there would keep the memory of hundreds of them."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.id} did not finish within {timeout} s")
        if self.exception is not None:
            raise self.exception
        result, self.result, self.current_image = self.result, None, None
        return result

    def cancel(self) -> None:
        """Its client has gone: a job still waiting is dropped, a running one stops at its next step."""
        self.cancelled = True
        self.interrupt_requested = True

    # ---- called by the worker ----
    def _run(self) -> None:
        self.state = RUNNING
        self.started_at = time.time()
        self.job_timestamp = datetime.now().strftime("%Y%m%d%H%M%S")
        try:
            self.result = self._fn(*self._args, job=self, **self._kwargs)
            self.state = DONE
        except BaseException as e:  # noqa: BLE001 - the caller gets it back from wait()
            self.exception = e
            self.state = FAILED
        finally:
            self.finished_at = time.time()
            self._close_bar()
            self._done.set()

    def _drop(self) -> None:
        self.state = FAILED
        self.exception = UserError(f"{self.id} was dropped: its client went away before it started.")
        self.finished_at = time.time()
        self._done.set()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name} {self.state}>"


class JobQueue:
    """FIFO queue with one worker thread. `submit(fn, *args)` runs `fn(*args, job=<the Job>)` later."""

    def __init__(self, *, show_progress_bars: bool = True):
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: list[Job] = []
        self._jobs: dict[str, Job] = {}  # recent jobs by id, for progress look-ups
        self.current: Job | None = None
        self.last: Job | None = None
        self.show_progress_bars = show_progress_bars
        self._worker = threading.Thread(target=self._work, name="job-queue", daemon=True)
        self._worker.start()

    def submit(
        self, fn: Callable, *args, name: str = "job", task_id: str | None = None, owner: str | None = None, **kwargs
    ) -> Job:
        job = Job(fn, args, kwargs, name=name, task_id=task_id, show_progress_bar=self.show_progress_bars, owner=owner)
        with self._lock:
            self._pending.append(job)
            self._jobs[job.id] = job
            self._forget_old()
        self._queue.put(job)
        return job

    def run(self, fn: Callable, *args, name: str = "job", timeout: float | None = None, **kwargs) -> Any:
        """Submit and wait: the result, or the job's exception re-raised.

        Called from inside a running job (e.g. a settings hook that a job triggers) it runs at once instead of
        queueing behind itself forever."""
        if threading.current_thread() is self._worker:
            job = Job(fn, args, kwargs, name=name, show_progress_bar=self.show_progress_bars)
            job._run()
            return job.wait()
        return self.submit(fn, *args, name=name, **kwargs).wait(timeout)

    def get(self, task_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(task_id)

    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._pending)

    def position(self, job: Job) -> int:
        """How many jobs run before this one (0 = running or next)."""
        with self._lock:
            return self._pending.index(job) if job in self._pending else 0

    def _running_for(self, owner: str | None) -> Job | None:
        """The running job, if `owner` may act on it (owner None: the program itself, which may act on any)."""
        job = self.current
        return job if job is not None and (owner is None or job.owner == owner) else None

    def interrupt(self, owner: str | None = None) -> bool:
        """Stop `owner`'s running job after its current sampling step; it still returns what it has. Another
        client's job is left alone."""
        job = self._running_for(owner)
        if job is None:
            return False
        job.interrupt_requested = True
        log.info("Interrupting %s", job.id)
        return True

    def skip(self, owner: str | None = None) -> bool:
        """Skip the batch `owner`'s running job is sampling."""
        job = self._running_for(owner)
        if job is None:
            return False
        job.skip_requested = job.was_skipped = True
        log.info("Skipping the current image of %s", job.id)
        return True

    def shutdown(self, timeout: float | None = 5.0) -> None:
        self._queue.put(None)
        self._worker.join(timeout)

    def progress_info(
        self, skip_current_image: bool = False, image_format: str = "png", owner: str | None = None
    ) -> dict:
        """A1111's /sdapi/v1/progress answer for `owner`'s job: the running one, or (progress 0, with how many jobs
        run before it in `queued`) a waiting one; an idle answer when it has none. owner None: the running job."""
        job = self._running_for(owner)
        pending = len(self.pending())
        if job is None and owner is not None:
            waiting = next((j for j in self.pending() if j.owner == owner), None)
            if waiting is not None:
                state = {**_state_dict(waiting, self.position(waiting) + 1), "job_count": 1}
                return {
                    "progress": 0.0,
                    "eta_relative": 0.0,
                    "state": state,
                    "current_image": None,
                    "textinfo": "Waiting in the queue",
                }
        if job is None:
            return {
                "progress": 0.0,
                "eta_relative": 0.0,
                "state": _state_dict(None, pending),
                "current_image": None,
                "textinfo": None,
            }
        progress = job.progress
        eta = job.eta
        current_image = None
        if not skip_current_image and job.current_image is not None:
            current_image = _image_b64(job.current_image, image_format)
        return {
            "progress": progress,
            "eta_relative": eta if eta is not None else 0.0,
            "state": _state_dict(job, pending),
            "current_image": current_image,
            "textinfo": job.textinfo,
        }

    # ---- worker ----
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
                self.current = job
            started = time.perf_counter()
            try:
                if job.cancelled:
                    job._drop()
                else:
                    job._run()
                if job.state == FAILED:
                    log.debug("%s failed: %s", job.id, job.exception)
            finally:
                with self._lock:
                    self.current = None
                    self.last = job
                # what the job allocated goes back to the system, not only to Python; a job that was over in
                # moments allocated little, and the release itself (a full garbage collection) costs ~0.3 s
                if time.perf_counter() - started >= RELEASE_AFTER_S:
                    release_memory()

    def _forget_old(self, keep: int = 256) -> None:
        if len(self._jobs) > keep:
            for task_id in [k for k, j in self._jobs.items() if j.done][: len(self._jobs) - keep]:
                del self._jobs[task_id]


def _state_dict(job: Job | None, pending: int) -> dict:
    if job is None:
        return {
            "skipped": False,
            "interrupted": False,
            "stopping_generation": False,
            "job": "",
            "job_count": 0,
            "job_timestamp": "0",
            "job_no": 0,
            "sampling_step": 0,
            "sampling_steps": 0,
            "queued": pending,
        }
    return {
        "skipped": job.skip_requested,
        "interrupted": job.interrupt_requested,
        "stopping_generation": False,
        "job": job.name,
        "job_count": job.job_count,
        "job_timestamp": job.job_timestamp or "0",
        "job_no": job.job_no,
        "sampling_step": job.sampling_step,
        "sampling_steps": job.sampling_steps,
        "queued": pending,
    }


def _image_b64(image: Image.Image, image_format: str) -> str:
    """The live preview as A1111's progress route sends it: base64 in the live_previews_image_format."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format.upper())
    return base64.b64encode(buffer.getvalue()).decode("ascii")
