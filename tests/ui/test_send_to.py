"""Send to img2img / inpaint: the chosen result image and its parameters go to the other tab in one click (the
widgets filled as ↙️ fills them); PNG Info's Send to txt2img fills txt2img's widgets too; the status says when a
job was stopped. In a real browser (one page for these and A1111's shortcuts, --theme dark, the size message)."""

from __future__ import annotations

import pytest
from PIL import Image

from sdui.ui.generation import picked_image


def test_picked_image_is_the_selected_one_or_the_first():
    images = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    image, text = picked_image(images, 1, ["first", "second"])
    assert image.getpixel((0, 0)) == (0, 0, 255) and text == "second"
    image, text = picked_image(images, None, ["first", "second"])
    assert image.getpixel((0, 0)) == (255, 0, 0) and text == "first"
    assert picked_image([], 0, []) == (None, "")


@pytest.mark.slow
@pytest.mark.browser
def test_send_to_img2img_and_pnginfo_in_the_browser(page, tmp_path, tiny_sd1_checkpoint):
    from tests.fixtures.live_server import LiveServer, free_port
    from tests.helpers import install_checkpoint, make_ctx

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    with LiveServer(make_ctx(data, "--theme", "dark"), free_port()) as server:
        page.goto(server.url + "/")
        page.wait_for_function("document.body.classList.contains('dark')")  # --theme dark

        # A1111's shortcuts: Ctrl+Up/Down change the weight of the word under the cursor (brackets gone at 1.0)
        prompt = page.locator("#txt2img_prompt textarea")
        prompt.fill("a red cat, sitting")
        prompt.evaluate("t => t.setSelectionRange(7, 7)")  # inside "cat"
        prompt.press("Control+ArrowUp")
        assert prompt.input_value() == "a red (cat:1.1), sitting"
        prompt.press("Control+ArrowUp")
        assert prompt.input_value() == "a red (cat:1.2), sitting"
        prompt.press("Control+ArrowDown")
        prompt.press("Control+ArrowDown")
        assert prompt.input_value() == "a red cat, sitting"
        prompt.evaluate("t => t.setSelectionRange(2, 9)")  # "red cat"
        prompt.press("Control+ArrowDown")
        assert prompt.input_value() == "a (red cat:0.9), sitting"

        # Ctrl+Enter generates in the visible tab
        prompt.fill("a red cube")
        page.locator("#txt2img_steps input[type=number]").fill("3")
        page.locator("#txt2img_width input[type=number]").fill("64")
        page.locator("#txt2img_height input[type=number]").fill("64")
        prompt.press("Control+Enter")
        page.locator("#html_info_txt2img", has_text="Time taken").wait_for(timeout=120_000)

        page.locator("#txt2img_send_to_img2img").click()
        page.locator("#tab_img2img").wait_for(state="visible")
        page.locator("#img2img_image img").first.wait_for()
        page.wait_for_function("document.querySelector('#img2img_prompt textarea').value === 'a red cube'")
        assert page.locator("#img2img_steps input[type=number]").input_value() == "3"

        # PNG Info: the parameters go to txt2img's widgets in one click
        page.get_by_role("tab", name="txt2img").click()
        page.locator("#txt2img_steps input[type=number]").fill("20")
        page.locator("#txt2img_prompt textarea").fill("")
        page.get_by_role("tab", name="PNG Info").click()
        text = "a blue sphere\nNegative prompt: fog\nSteps: 7, Sampler: Euler, Seed: 12, Size: 64x64, CFG scale: 4"
        page.locator("#pnginfo_generation_info textarea").evaluate(
            "(t, v) => { t.value = v; t.dispatchEvent(new Event('input', {bubbles: true})); }", text
        )
        page.locator("#pnginfo_send_txt2img").click()
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a blue sphere'")
        assert page.locator("#txt2img_steps input[type=number]").input_value() == "7"

        # a size typed below the slider's minimum: Gradio's message, not an HTTP 500
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 500 else None)
        width = page.locator("#txt2img_width input[type=number]")
        width.fill("30")
        width.press("Enter")
        page.get_by_text("less than minimum value 64").first.wait_for()
        assert failed == []
    assert page.outside_requests == [] and page.console_errors == []


def test_the_status_says_interrupted_or_skipped():
    from sdui.ui.runner import GenerationResult, status_html

    assert "Interrupted. Time taken: 1.50 s" in status_html(GenerationResult(elapsed=1.5, stopped="Interrupted"))
    assert status_html(GenerationResult(elapsed=2.0)).endswith('<div class="note">Time taken: 2.00 s</div>')


def test_an_interrupted_job_says_so(tmp_path, tiny_sd1_checkpoint):
    from sdui.request import GenerationRequest
    from sdui.ui.runner import GenerationResult, iter_generation, status_html
    from tests.helpers import install_checkpoint, make_ctx

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    ctx = make_ctx(data)
    try:
        request = GenerationRequest(prompt="x", steps=30, width=64, height=64, n_iter=4, sampler_name="Euler")
        result = None
        for item in iter_generation(ctx, request, poll=0.02):
            if isinstance(item, GenerationResult):
                result = item
            elif item.sampling_step >= 1:
                ctx.jobs.interrupt()
        assert result.stopped == "Interrupted" and "Interrupted. Time taken" in status_html(result)
    finally:
        ctx.jobs.shutdown()
