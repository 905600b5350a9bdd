"""The job queue as the core's progress-event receiver, and its A1111 progress answer."""

from __future__ import annotations

import base64
import io
import threading
import time

from PIL import Image

from sdui.app.jobs import JobQueue


def test_progress_answer_counts_batches_and_sends_the_preview_in_the_chosen_format():
    jobs = JobQueue(show_progress_bars=False)
    started, release = threading.Event(), threading.Event()

    def work(job):
        job.add_batches(2, 10)
        job.step_done(5, 10)
        job.batch_done()
        job.step_done(5, 10)
        job.preview(Image.new("RGB", (16, 16), (200, 10, 10)))
        started.set()
        release.wait(10)

    try:
        job = jobs.submit(work, name="txt2img")
        assert started.wait(10)
        answer = jobs.progress_info(image_format="jpeg")
        assert answer["state"]["job_no"] == 1 and answer["state"]["job_count"] == 2
        assert answer["state"]["sampling_step"] == 5 and answer["state"]["sampling_steps"] == 10
        assert abs(answer["progress"] - 0.75) < 1e-9
        with Image.open(io.BytesIO(base64.b64decode(answer["current_image"]))) as preview:
            assert preview.format == "JPEG" and preview.size == (16, 16)
        assert jobs.progress_info(skip_current_image=True)["current_image"] is None
        with Image.open(io.BytesIO(base64.b64decode(jobs.progress_info()["current_image"]))) as preview:
            assert preview.format == "PNG"
        release.set()
        job.wait(10)
    finally:
        release.set()
        jobs.shutdown()


def test_a_skip_applies_to_one_batch_and_an_interrupt_to_the_job():
    jobs = JobQueue(show_progress_bars=False)
    seen = []
    gate = threading.Event()

    def work(job):
        gate.wait(10)
        seen.append((job.skipped(), job.interrupted()))
        job.batch_done()
        seen.append((job.skipped(), job.interrupted()))

    try:
        job = jobs.submit(work, name="x")
        while jobs.current is None:
            threading.Event().wait(0.01)
        jobs.skip()
        jobs.interrupt()
        gate.set()
        job.wait(10)
        assert seen == [(True, True), (False, True)]
    finally:
        gate.set()
        jobs.shutdown()


def test_a_job_is_interrupted_only_by_its_owner_and_progress_is_the_callers():
    jobs = JobQueue(show_progress_bars=False)
    running, release = threading.Event(), threading.Event()

    def work(job):
        job.add_batches(1, 10)
        job.step_done(3, 10)
        running.set()
        release.wait(10)
        return job.interrupted()

    try:
        a = jobs.submit(work, name="txt2img", owner="client:a")
        waiting = jobs.submit(lambda job: "done", name="txt2img", owner="client:c")
        assert running.wait(10)
        assert jobs.interrupt(owner="client:b") is False and jobs.skip(owner="client:b") is False
        assert not a.interrupted() and not a.skipped()
        mine = jobs.progress_info(owner="client:a")
        assert mine["state"]["sampling_step"] == 3 and mine["progress"] > 0
        queued = jobs.progress_info(owner="client:c")
        assert (
            queued["progress"] == 0 and queued["state"]["queued"] == 1 and queued["textinfo"] == "Waiting in the queue"
        )
        assert jobs.progress_info(owner="client:b")["state"]["job_count"] == 0  # nothing of b's
        assert jobs.interrupt(owner="client:a") is True
        release.set()
        assert a.wait(10) is True and waiting.wait(10) == "done"
    finally:
        release.set()
        jobs.shutdown()


def test_a_cancelled_job_is_dropped_if_waiting_and_stopped_if_running():
    import pytest

    from sdui.errors import UserError

    jobs = JobQueue(show_progress_bars=False)
    running, release = threading.Event(), threading.Event()

    def work(job):
        running.set()
        release.wait(10)
        return job.interrupted()

    try:
        first = jobs.submit(work, name="a")
        ran = []
        second = jobs.submit(lambda job: ran.append(1), name="b")
        assert running.wait(10)
        second.cancel()  # its client went away while it waited
        first.cancel()  # ... and this one's while it ran
        release.set()
        assert first.wait(10) is True
        with pytest.raises(UserError, match="dropped"):
            second.wait(10)
        assert ran == []
    finally:
        release.set()
        jobs.shutdown()


def test_a_result_is_handed_over_not_kept():
    jobs = JobQueue(show_progress_bars=False)
    try:
        job = jobs.submit(lambda job: [1] * 1000, name="x")
        assert job.wait(10) == [1] * 1000
        assert job.result is None and jobs.get(job.id) is job  # remembered for progress, without its images
    finally:
        jobs.shutdown()


def test_a_slow_first_step_already_gives_an_eta():
    """One step of a large image on a CPU can take minutes: the part of it done gives an ETA before it ends."""
    jobs = JobQueue(show_progress_bars=False)
    started, release = threading.Event(), threading.Event()

    def work(job):
        job.add_batches(1, 1)
        time.sleep(0.2)
        job.step_part_done(0.25)  # a quarter of the only step, after 0.2 s
        started.set()
        release.wait(10)

    try:
        submitted = time.monotonic()
        job = jobs.submit(work, name="txt2img")
        assert started.wait(10)
        answer = jobs.progress_info()
        elapsed_at_most = time.monotonic() - submitted
        assert abs(answer["progress"] - 0.25) < 1e-9
        assert 0.6 - 0.05 <= answer["eta_relative"] <= 3 * elapsed_at_most  # three times the time the quarter took
        release.set()
        job.wait(10)
    finally:
        release.set()
        jobs.shutdown()
