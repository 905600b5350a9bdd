"""A1111's keyboard shortcuts in a real browser: Ctrl+Up/Down change the weight of the word under the cursor (and
take the brackets away again at 1.0), Ctrl+Enter generates in the visible tab; --theme dark turns the page dark; a
size typed below the slider's range gets a message, not an HTTP 500."""

from __future__ import annotations

import pytest

from tests.fixtures.live_server import LiveServer, free_port
from tests.helpers import install_checkpoint, make_ctx

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_weight_keys_and_ctrl_enter(page, tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    with LiveServer(make_ctx(data, "--theme", "dark"), free_port()) as server:
        page.goto(server.url + "/")
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

        page.locator("#txt2img_steps input[type=number]").fill("2")
        page.locator("#txt2img_width input[type=number]").fill("64")
        page.locator("#txt2img_height input[type=number]").fill("64")
        prompt.press("Control+Enter")
        page.locator("#html_info_txt2img", has_text="Time taken").wait_for(timeout=120_000)
        assert "Steps: 2" in page.locator("#generation_info_txt2img textarea").input_value()
        assert page.evaluate("document.body.classList.contains('dark')")

        # a size typed below the slider's minimum: Gradio's message, not an HTTP 500
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 500 else None)
        width = page.locator("#txt2img_width input[type=number]")
        width.fill("30")
        width.press("Enter")
        page.get_by_text("less than minimum value 64").first.wait_for()
        assert failed == []
    assert page.outside_requests == [] and page.console_errors == []
