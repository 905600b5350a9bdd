"""A new user's tour of the page in headless Chromium, every request to another host blocked: a live preview is
visible while sampling and Interrupt says so; a PNG Info round trip gives the same pixels; a mask drawn with the
mouse repaints; Extras upscales with a model upscaler file; the Checkpoint Merger's result generates; a changed
setting survives a restart. Screenshots go to test-artifacts/ (or $SDUI_TEST_ARTIFACTS) for a person to look at."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.upscalers import write_tiny_esrgan

ARTIFACTS = Path(os.environ.get("SDUI_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tour-{name}.png"), full_page=True)


def _set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _draw_stroke(page, canvas) -> None:
    """A diagonal drag across the middle of the editor's canvas."""
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + min(box["height"], box["width"]) / 2
    page.mouse.move(cx - 40, cy - 40)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 40, steps=12)
    page.mouse.up()


@contextlib.contextmanager
def _refusals_logged():
    """The messages the generation tabs log when they refuse a job (the page shows the same text)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("sdui.ui.generation")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _new_file(page, folder: Path, since: set, status: str) -> Path:
    """The image a job saved into `folder` (not among `since`), once the tab's status says the job is done."""
    deadline = time.monotonic() + 60
    while not (made := sorted(set(folder.rglob("*.png")) - since, key=lambda p: p.stat().st_mtime)):
        if time.monotonic() > deadline:
            _shot(page, f"no-new-file-{status}")
            said = page.locator(f"#{status}").inner_text()
            raise AssertionError(f"nothing new in {folder}; the tab says: {said!r}")
        page.wait_for_timeout(200)
    page.locator(f"#{status}", has_text="Time taken").wait_for(timeout=60_000)
    return made[-1]


@pytest.mark.slow
@pytest.mark.browser
def test_a_tour_of_the_page(page, tmp_path, tiny_sd1_checkpoint):
    from tests.fixtures.live_server import LiveServer, free_port
    from tests.helpers import install_checkpoint, make_ctx

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    install_checkpoint(tiny_sd1_checkpoint, data, "other.safetensors")
    write_tiny_esrgan(data / "models" / "ESRGAN" / "2x_Tiny.pth", scale=2)
    # a preview after every step, the page asking for it ten times a second: the tiny model is that fast
    (data / "config.json").write_text(
        json.dumps({"show_progress_every_n_steps": 1, "live_preview_refresh_period": 100})
    )
    samples = data / "outputs" / "txt2img-images"

    with LiveServer(make_ctx(data), free_port()) as server:
        page.goto(server.url + "/")
        prompt = page.locator("#txt2img_prompt textarea")

        # 1. a long job: the live preview shows in the gallery while it runs, Interrupt stops it and says so
        prompt.fill("a long walk")
        _set_number(page, "txt2img_steps", 150)
        _set_number(page, "txt2img_batch_count", 40)
        _set_number(page, "txt2img_width", 64)
        _set_number(page, "txt2img_height", 64)
        prompt.press("Control+Enter")
        page.locator("#txt2img_gallery img").first.wait_for(timeout=60_000)
        assert "Time taken" not in page.locator("#html_info_txt2img").inner_text()  # still running: a preview
        _shot(page, "1-live-preview")
        page.locator("#txt2img_interrupt").click()
        page.locator("#html_info_txt2img", has_text="Interrupted").wait_for(timeout=60_000)

        # 2. PNG Info round trip: a saved image's parameters, sent to txt2img, make the same pixels again
        before = set(samples.rglob("*.png"))
        prompt.fill("a red cube")
        _set_number(page, "txt2img_steps", 3)
        _set_number(page, "txt2img_batch_count", 1)
        page.locator("#txt2img_seed input[type=number]").fill("12")
        prompt.press("Control+Enter")
        first = _new_file(page, samples, before, "html_info_txt2img")
        _set_number(page, "txt2img_steps", 20)
        page.locator("#txt2img_seed input[type=number]").fill("-1")
        prompt.fill("")
        page.get_by_role("tab", name="PNG Info").click()
        page.locator("#pnginfo_image input[type=file]").set_input_files(str(first))
        page.wait_for_function(
            "document.querySelector('#pnginfo_generation_info textarea').value.startsWith('a red cube')"
        )
        page.locator("#pnginfo_send_txt2img").click()
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a red cube'")
        before = set(samples.rglob("*.png"))
        prompt.press("Control+Enter")
        again = _new_file(page, samples, before, "html_info_txt2img")
        assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))

        # 3. inpaint: a mask drawn with the mouse; the job runs (an empty mask would be refused with a message)
        # the image comes from PNG Info's "Send to inpaint" (the server fills the editor: no upload to race the
        # editor's mounting, which a browser upload lost in full-suite runs); an upload is the fallback
        page.get_by_role("tab", name="PNG Info").click()
        page.locator("#pnginfo_send_inpaint").click()
        page.locator("#img2maskimg").wait_for()
        placeholder = page.locator("#img2maskimg").get_by_text("select the draw tool")
        for attempt in range(3):
            try:
                placeholder.wait_for(state="hidden", timeout=15_000)
                break
            except Exception:  # noqa: BLE001 - not taken: give the editor the file itself
                _shot(page, f"3-image-not-taken-{attempt}")
                page.get_by_role("tab", name="Inpaint", exact=True).first.click()
                page.locator("#img2maskimg input[type=file]").set_input_files(str(first))
        placeholder.wait_for(state="hidden")
        page.locator("#inpaint_prompt textarea").fill("a blue cube")
        _set_number(page, "inpaint_steps", 3)
        _set_number(page, "inpaint_width", 64)
        _set_number(page, "inpaint_height", 64)
        # Gradio's editor sometimes leaves the first stroke after a new image out of the value it sends (the
        # stroke shows, the mask arrives empty; more often on a loaded machine); the tab then refuses with a
        # message, and a person draws again: so does the tour, at most three times
        inpainted = data / "outputs" / "img2img-images"
        with _refusals_logged() as refusals:
            for attempt in range(3):
                page.wait_for_timeout(500 * (attempt + 1))
                _draw_stroke(page, page.locator("#img2maskimg canvas").last)
                _shot(page, f"3-mask-drawn-{attempt}")
                seen = len(refusals)
                page.locator("#inpaint_prompt textarea").press("Control+Enter")
                deadline = time.monotonic() + 60
                while len(refusals) == seen and not any(inpainted.rglob("*.png")) and time.monotonic() < deadline:
                    page.wait_for_timeout(200)
                if len(refusals) == seen:
                    break
        assert all("marks nothing to change" in message for message in refusals), refusals
        _new_file(page, data / "outputs" / "img2img-images", set(), "html_info_inpaint")

        # 4. Extras: upscale the saved image with the model upscaler file, 2x
        page.get_by_role("tab", name="Extras").click()
        page.locator("#extras_image input[type=file]").set_input_files(str(first))
        page.locator("#extras_upscaler_1 input").click()
        page.get_by_role("option", name="2x_Tiny").click()
        page.locator("#extras_generate").click()
        extras_info = "document.querySelector('#generation_info_extras textarea').value"
        page.wait_for_function(f"{extras_info}.includes('Postprocess upscaler: 2x_Tiny')", timeout=60_000)
        (upscaled,) = (data / "outputs" / "extras-images").glob("*.png")
        assert Image.open(upscaled).size == (128, 128)
        _shot(page, "4-extras")

        # 5. Checkpoint Merger: a weighted sum of two checkpoints, then a txt2img job on the result
        page.get_by_role("tab", name="Checkpoint Merger").click()
        for elem_id, name in (
            ("modelmerger_primary_model_name", "tiny"),
            ("modelmerger_secondary_model_name", "other"),
        ):
            page.locator(f"#{elem_id} input").click()
            page.get_by_role("option", name=name).first.click()
        page.locator("#modelmerger_custom_name input, #modelmerger_custom_name textarea").first.fill("merged")
        page.locator("#modelmerger_merge").click()
        page.locator("#modelmerger_result", has_text="merged.safetensors").wait_for(timeout=120_000)
        _shot(page, "5-merged")
        assert (data / "models" / "Stable-diffusion" / "merged.safetensors").is_file()
        page.locator("#setting_sd_model_checkpoint input").click()
        page.get_by_role("option", name="merged.safetensors").first.click()
        page.get_by_role("tab", name="txt2img").click()
        page.wait_for_timeout(1000)  # the model switch is queued before the next job
        before = set(samples.rglob("*.png"))
        prompt.fill("a merged cube")
        prompt.press("Control+Enter")
        made = _new_file(page, samples, before, "html_info_txt2img")
        assert "Model: merged," in Image.open(made).text["parameters"]

        # 6. a setting changed in the Settings tab
        page.get_by_role("tab", name="Settings").click()
        _set_number(page, "setting_jpeg_quality", 55)
        page.locator("#settings_submit").click()
        page.locator("#settings_result", has_text="jpeg_quality").wait_for()
        assert page.console_errors == []
        page.goto("about:blank")  # leave before the server stops: a page still open would report it gone

    # ... is still there after a restart
    with LiveServer(make_ctx(data), free_port()) as server:
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Settings").click()
        assert page.locator("#setting_jpeg_quality input[type=number]").input_value() == "55"
        _shot(page, "6-settings-after-restart")
    assert page.outside_requests == [] and page.console_errors == []
