"""The job queue as the core's progress-event receiver, and its A1111 progress answer."""

from __future__ import annotations

import base64
import io
import threading

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
