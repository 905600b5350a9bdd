"""The Extensions tab in a real browser, as a user works it: install from a URL, restart, see the extension's tab,
check for updates and update, disable and restart, remove. Each "restart" is a new server on the same data folder,
as webui.sh's restart loop gives."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from sdui.extensions import registry
from sdui.extensions.startup import start_extensions
from tests.extensions.conftest import commit_files, git
from tests.fixtures.live_server import LiveServer, free_port
from tests.helpers import install_checkpoint, make_ctx

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HELLO = '''
import gradio as gr
from modules import script_callbacks


def tabs():
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown("Hello from an extension, version VERSION", elem_id="hello_text")
    return [(block, "Hello", "hello_tab")]


script_callbacks.on_ui_tabs(tabs)
'''


@contextmanager
def serving(data):
    """Start the app on `data` the way webui.py does (extensions loaded, then the app built), and stop it."""
    registry.reset()
    ctx = make_ctx(data)
    ctx.extensions = start_extensions(ctx)
    with LiveServer(ctx, free_port()) as server:
        yield server


def open_extensions(page, server, sub_tab: str):
    page.goto(server.url + "/")
    page.get_by_role("tab", name="Extensions").click()
    page.get_by_role("tab", name=sub_tab).click()


def test_install_update_disable_and_remove_in_the_browser(page, make_repo, tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    source = make_repo("hello-ext", {"scripts/hello.py": HELLO.replace("VERSION", "1")})
    installed = data / "extensions" / "hello-ext"

    # 1. install from a file:// URL; the folder appears with the commit, nothing is left in tmp
    with serving(data) as server:
        open_extensions(page, server, "Install from URL")
        page.get_by_label("URL for extension's git repository").fill(source.as_uri())
        page.get_by_role("button", name="Install", exact=True).click()
        page.locator("#extensions_install_result").get_by_text("Installed into").wait_for()
        assert git(installed, "rev-parse", "HEAD") == git(source, "rev-parse", "HEAD")
        assert not any((data / "tmp").glob("*hello*"))
        page.get_by_role("tab", name="Installed").click()
        row = page.locator("#extensions_installed tr", has_text="hello-ext")
        assert "enabled" in row.inner_text()
        assert page.get_by_role("tab", name="Hello").count() == 0  # loaded at the next start, as in A1111

    # 2. restart: the extension's tab is there; a new upstream commit is found and pulled
    with serving(data) as server:
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Hello").click()
        page.get_by_text("Hello from an extension, version 1").wait_for()

        new_commit = commit_files(source, {"scripts/hello.py": HELLO.replace("VERSION", "2")}, "v2")
        open_extensions(page, server, "Installed")
        page.get_by_role("button", name="Check for updates").click()
        page.locator("#extensions_installed tr", has_text="update available").wait_for()
        page.get_by_role("button", name="Update", exact=True).click()
        page.locator("#extensions_message").get_by_text("hello-ext: updated.").wait_for()
        assert git(installed, "rev-parse", "HEAD") == new_commit

        # 3. disable it: the choice is saved in config.json
        page.locator("#extensions_enabled").get_by_label("hello-ext").uncheck()
        page.get_by_role("button", name="Apply and restart UI").click()
        page.locator("#extensions_message").get_by_text("Saved.").wait_for()
        saved = json.loads((data / "config.json").read_text())
        assert saved["disabled_extensions"] == ["hello-ext"]

    # 4. restart: no Hello tab; the extension is listed as disabled; remove it
    with serving(data) as server:
        open_extensions(page, server, "Installed")
        assert page.get_by_role("tab", name="Hello").count() == 0
        assert "disabled" in page.locator("#extensions_installed tr", has_text="hello-ext").inner_text()
        assert not page.locator("#extensions_enabled").get_by_label("hello-ext").is_checked()

        page.locator("#extensions_remove_name input").click()
        page.get_by_role("option", name="hello-ext").click()
        page.get_by_role("button", name="Remove", exact=True).click()
        page.locator("#extensions_message").get_by_text("Removed hello-ext").wait_for()
        assert not installed.exists()
        page.get_by_text("No extensions installed").wait_for()

    assert page.outside_requests == []
    assert page.console_errors == []


MARK_JS = """
onUiLoaded(function () {
    document.body.dataset.extension = "loaded " + (gradioApp().querySelector("#txt2img_prompt") !== null);
});
onUiTabChange(function () {
    document.body.dataset.tab = get_uiCurrentTab().textContent.trim();
});
"""


def test_an_extensions_localization_and_javascript_run_in_the_page(page, make_repo, tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    table = {"Generate": "Erzeugen", "Extensions": "Erweiterungen", "Sampling steps": "Schritte"}
    source = make_repo("german", {"localizations/de.json": json.dumps(table), "javascript/mark.js": MARK_JS})
    registry.reset()
    ctx = make_ctx(data)
    from sdui.extensions import manager

    manager.install(data / "extensions", data / "tmp", str(source), access_allowed=True)
    ctx.options.set("localization", "de")
    ctx.extensions = start_extensions(ctx)
    with LiveServer(ctx, free_port()) as server:
        page.goto(server.url + "/")
        page.locator("#txt2img_generate", has_text="Erzeugen").wait_for()
        # the extension's script ran its onUiLoaded once the prompt was there, and sees tab changes
        page.locator("body[data-extension='loaded true']").wait_for(state="attached")
        page.get_by_role("tab", name="img2img").click()
        page.locator("body[data-tab='img2img']").wait_for(state="attached")
        assert page.get_by_role("tab", name="Erweiterungen").count() == 1
        assert page.get_by_text("Schritte", exact=True).count() >= 1
        # what the user types stays as typed
        page.get_by_role("tab", name="txt2img").click()
        prompt = page.locator("#txt2img_prompt textarea")
        prompt.fill("Generate")
        page.wait_for_timeout(300)
        assert prompt.input_value() == "Generate"
    assert page.console_errors == []
