"""One FIFO job queue shared by the UI and the API.

A single worker thread runs jobs in the order they were submitted, so two generations never fight over the model
or the GPU. A job reports its own progress (the processing core calls `on_sampling_start` / `on_step`) and reads its
own `interrupted` / `skipped` flags between sampling steps. `progress_info()` answers in the shape of A1111's
GET /sdapi/v1/progress so existing clients can poll it.
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
from datetime import datetime
from typing import Any, Callable

from tqdm import tqdm

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def new_task_id() -> str:
    return "task(" + "".join(random.choices(string.ascii_uppercase + string.digits, k=7)) + ")"


class Job:
    """One unit of work in the queue. Progress fields are written by the worker thread and read by pollers."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, *, name: str, task_id: str | None = None,
                 show_progress_bar: bool = True):
        self.id = task_id or new_task_id()
        self.name = name
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.state = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.job_timestamp = ""
        self.sampling_step = 0
        self.sampling_steps = 0
        self.job_no = 0            # A1111's state.job_no / job_count: which batch of how many
        self.job_count = 1
        self.interrupted = False
        self.skipped = False
        self.current_image = None  # a live preview (PIL image) the processing core may set
        self.textinfo: str | None = None
        self.result: Any = None
        self.exception: BaseException | None = None
        self._done = threading.Event()
        self._show_bar = show_progress_bar
        self._bar: tqdm | None = None

    # ---- called by the processing core, from the worker thread ----
    def on_sampling_start(self, total_steps: int) -> None:
        self.sampling_steps = int(total_steps)
        self.sampling_step = 0
        self._close_bar()
        if self._show_bar:
            self._bar = tqdm(total=self.sampling_steps, desc=f"{self.name} {self.id}", unit="it", leave=False)

    def on_step(self, step: int, total_steps: int) -> None:
        if total_steps != self.sampling_steps:
            self.sampling_steps = int(total_steps)
            if self._bar is not None:
                self._bar.total = self.sampling_steps
        delta = int(step) - self.sampling_step
        self.sampling_step = int(step)
        if self._bar is not None and delta > 0:
            self._bar.update(delta)

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
        fraction = self.sampling_step / self.sampling_steps if self.sampling_steps else 0.0
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
        """Block until the job ends; return its result or re-raise its exception. TimeoutError if it does not end in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.id} did not finish within {timeout} s")
        if self.exception is not None:
            raise self.exception
        return self.result

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
        self._jobs: dict[str, Job] = {}       # recent jobs by id, for progress look-ups
        self.current: Job | None = None
        self.last: Job | None = None
        self._show_bars = show_progress_bars
        self._worker = threading.Thread(target=self._work, name="job-queue", daemon=True)
        self._worker.start()

    def submit(self, fn: Callable, *args, name: str = "job", task_id: str | None = None, **kwargs) -> Job:
        job = Job(fn, args, kwargs, name=name, task_id=task_id, show_progress_bar=self._show_bars)
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
            job = Job(fn, args, kwargs, name=name, show_progress_bar=self._show_bars)
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

    def interrupt(self) -> bool:
        """Stop the running job after its current sampling step; it still returns what it has."""
        job = self.current
        if job is None:
            return False
        job.interrupted = True
        log.info("Interrupting %s", job.id)
        return True

    def skip(self) -> bool:
        """Skip the image being sampled by the running job."""
        job = self.current
        if job is None:
            return False
        job.skipped = True
        log.info("Skipping the current image of %s", job.id)
        return True

    def shutdown(self, timeout: float | None = 5.0) -> None:
        self._queue.put(None)
        self._worker.join(timeout)

    def progress_info(self, skip_current_image: bool = False) -> dict:
        """A1111's /sdapi/v1/progress answer for the running job (or an idle answer)."""
        job = self.current
        pending = len(self.pending())
        if job is None:
            return {"progress": 0.0, "eta_relative": 0.0, "state": _state_dict(None, pending),
                    "current_image": None, "textinfo": None}
        progress = job.progress
        eta = job.eta
        current_image = None
        if not skip_current_image and job.current_image is not None:
            current_image = _png_b64(job.current_image)
        return {"progress": progress, "eta_relative": eta if eta is not None else 0.0,
                "state": _state_dict(job, pending), "current_image": current_image, "textinfo": job.textinfo}

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
            try:
                job._run()
                if job.state == FAILED:
                    log.debug("%s failed: %s", job.id, job.exception)
            finally:
                with self._lock:
                    self.current = None
                    self.last = job

    def _forget_old(self, keep: int = 256) -> None:
        if len(self._jobs) > keep:
            for task_id in [k for k, j in self._jobs.items() if j.done][: len(self._jobs) - keep]:
                del self._jobs[task_id]


def _state_dict(job: Job | None, pending: int) -> dict:
    if job is None:
        return {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0,
                "queued": pending}
    return {"skipped": job.skipped, "interrupted": job.interrupted, "stopping_generation": False,
            "job": job.name, "job_count": job.job_count, "job_timestamp": job.job_timestamp or "0",
            "job_no": job.job_no, "sampling_step": job.sampling_step, "sampling_steps": job.sampling_steps,
            "queued": pending}


def _png_b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
