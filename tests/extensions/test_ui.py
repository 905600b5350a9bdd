"""Extensions in the page: their scripts' controls in txt2img (an always-on accordion, the Script dropdown) run
the same way the API runs them, a tab added with on_ui_tabs, and the Extensions tab's actions and refusals."""

from __future__ import annotations

import json
import re

import pytest

from sdui.extensions import manager
from sdui.extensions.startup import start_extensions
from sdui.ui.app import create_ui
from sdui.ui.tabs import extensions as extensions_tab
from tests.extensions.test_loading import STAMP, TWICE
from tests.helpers import call, components_by_id, handler, install_checkpoint, make_ctx, outputs_by_id

HIRES_OFF = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
TAB = '''
import gradio as gr
from modules import script_callbacks


def tabs():
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown("Hello from an extension", elem_id="hello_text")
    return [(block, "Hello", "hello_tab")]


script_callbacks.on_ui_tabs(tabs)
'''


@pytest.fixture
def app_ui(make_repo, tmp_path, tiny_sd1_checkpoint):
    made = []

    def build(*flags, extensions=()):
        data = tmp_path / f"data{len(made)}"
        install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
        for name, files in extensions:
            manager.install(data / "extensions", data / "tmp", str(make_repo(name, files)), access_allowed=True)
        ctx = make_ctx(data, *flags)
        ctx.extensions = start_extensions(ctx)
        made.append(ctx)
        return ctx, create_ui(ctx)

    yield build
    for ctx in made:
        ctx.jobs.shutdown()


def test_script_controls_run_like_the_api(app_ui):
    ctx, demo = app_ui(extensions=[("stamp", {"scripts/stamp.py": STAMP}), ("repeat", {"scripts/repeat.py": TWICE})])
    blocks = components_by_id(demo)
    assert [c[0] for c in blocks["txt2img_script"].choices] == [
        "None",
        "Prompt matrix",
        "Prompts from file or textbox",
        "X/Y/Z plot",
        "Repeat seeds",
    ]
    fn = handler(demo, "txt2img_generate", "click")
    base = [*HIRES_OFF, "a red cube", "", "Euler", "Automatic", 2, 64, 64, 1, 1, 5, 1234, -1, 0, 0, 0]

    def values(choice, times, enabled, word):
        """The request's values, then the script controls' own (their defaults, with these set by label)."""
        rest = [getattr(b, "value", None) for b in fn.inputs[len(base) :]]
        labels = [getattr(b, "label", None) for b in fn.inputs[len(base) :]]
        rest[0] = choice
        for label, value in (("Times", times), ("Enabled", enabled), ("Word", word)):
            rest[labels.index(label)] = value
        return [*base, *rest]

    final = outputs_by_id(fn, list(call(fn, *values("None", 2, True, "hello")))[-1])
    assert final["generation_info_txt2img"].startswith("a red cube, hello 1234\n")
    assert "Stamp: hello" in final["generation_info_txt2img"]
    last = list(call(fn, *values("Repeat seeds", 2, False, "x")))[-1]
    infotexts = last[1]  # the outputs: gallery, infotexts, seeds, ...
    assert [t.split("Seed: ")[1].split(",")[0] for t in infotexts] == ["100", "101"]
    assert len(last[0]) == 2


def test_the_programs_scripts_run_from_the_dropdown(app_ui):
    ctx, demo = app_ui()
    fn = handler(demo, "txt2img_generate", "click")
    base = [*HIRES_OFF, "a red cube", "", "Euler", "Automatic", 2, 64, 64, 1, 1, 5, 1234, -1, 0, 0, 0]
    rest = [getattr(b, "value", None) for b in fn.inputs[len(base) :]]
    labels = [getattr(b, "label", None) for b in fn.inputs[len(base) :]]
    rest[0] = "Prompts from file or textbox"
    rest[labels.index("List of prompt inputs")] = "a cat\na dog"
    last = list(call(fn, *base, *rest))[-1]
    assert [t.split("\n")[0] for t in last[1]] == ["a cat a red cube", "a dog a red cube"]

    # X/Y/Z plot: an axis of names offers them in a dropdown instead of the text box
    xyz = fn.inputs[len(base) :]
    x_type = next(b for b in xyz if getattr(b, "label", None) == "X type")
    at = xyz.index(x_type)
    x_text, x_names = xyz[at + 1], xyz[at + 2]
    assert x_type.value == "Seed" and x_text.visible and not x_names.visible
    change = next(f for f in demo.fns.values() if any(t[0] == x_type._id and t[1] == "change" for t in f.targets))
    text, names = change.fn("Sampler")
    assert text["visible"] is False and names["visible"] is True and "DPM++ 2M" in names["choices"]
    _, names = change.fn("Checkpoint name")
    assert names["choices"] == ctx.store.titles() and len(names["choices"]) == 1
    text, names = change.fn("Steps")
    assert text["visible"] is True and names["visible"] is False


def test_a_tab_from_on_ui_tabs_appears(app_ui):
    _, demo = app_ui(extensions=[("hello", {"scripts/tab.py": TAB})])
    blocks = components_by_id(demo)
    assert "tab_hello_tab" in blocks and "hello_text" in blocks
    # once, inside its tab (a Blocks made inside the page's would also render itself where it was made)
    hello = next(b._id for b in demo.blocks.values() if getattr(b, "elem_id", None) == "hello_text")
    assert len(re.findall(rf'"id": {hello}\b', json.dumps(demo.config["layout"]))) == 1
    assert "tab_extensions" in blocks


def test_extensions_tab_lists_installs_and_applies(app_ui, make_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("SD_WEBUI_RESTART", raising=False)  # webui.sh sets it: then "Apply" restarts
    ctx, demo = app_ui(extensions=[("stamp", {"scripts/stamp.py": STAMP})])
    assert "stamp" in extensions_tab.installed_html(ctx) and "enabled" in extensions_tab.installed_html(ctx)
    repo = make_repo("sd-webui-other", {"scripts/other.py": "x = 1\n"})
    message = extensions_tab.install_from_url(ctx, repo.as_uri(), "", "")
    assert "Installed into" in message and (ctx.paths.extensions_dir / "sd-webui-other").is_dir()
    again = extensions_tab.install_from_url(ctx, repo.as_uri(), "", "")
    assert "already exists" in again
    assert "Restart the program" in extensions_tab.apply_enabled(ctx, ["sd-webui-other"])
    assert json.loads(ctx.paths.config_file.read_text())["disabled_extensions"] == ["stamp"]
    # under webui.sh (which restarts the program when asked) "Apply and restart UI" restarts it
    monkeypatch.setenv("SD_WEBUI_RESTART", "1")
    stopped = []
    ctx.server.attach(lambda: stopped.append(True))
    ctx.server.restart_file = tmp_path / "restart"
    assert "Restarting" in extensions_tab.apply_enabled(ctx, ["sd-webui-other"])
    assert stopped == [True] and ctx.server.restart_file.exists()
    assert extensions_tab.enabled_choices(ctx) == (["sd-webui-other", "stamp"], ["sd-webui-other"])
    assert "Removed sd-webui-other" in extensions_tab.remove_extension(ctx, "sd-webui-other")
    assert not (ctx.paths.extensions_dir / "sd-webui-other").exists()


def test_the_tab_refuses_changes_when_listening_on_the_network(app_ui, make_repo):
    ctx, _ = app_ui("--listen")
    message = extensions_tab.install_from_url(ctx, str(make_repo("x", {"a.txt": "a"})), "", "")
    assert "--enable-insecure-extension-access" in message and not (ctx.paths.extensions_dir / "x").exists()
    assert "--enable-insecure-extension-access" in extensions_tab.installed_html(ctx)
    allowed, _ = app_ui("--listen", "--enable-insecure-extension-access")
    assert "Installed into" in extensions_tab.install_from_url(allowed, str(make_repo("y", {"a.txt": "a"})), "", "")


def test_available_list_from_a_local_index_and_a_failed_download(app_ui, tmp_path):
    ctx, _ = app_ui()
    index = tmp_path / "index.json"
    entries = [{"name": "Foo", "url": "https://example.com/foo.git", "description": "does <foo>"}]
    index.write_text(json.dumps({"extensions": entries}))
    listing = extensions_tab.available_html(ctx, str(index))
    assert "Foo" in listing and "does &lt;foo&gt;" in listing and "https://example.com/foo.git" in listing
    failed = extensions_tab.available_html(ctx, str(tmp_path / "missing.json"))
    assert "Could not read the extension index" in failed


def test_extension_javascript_and_css_reach_the_page(app_ui):
    from fastapi.testclient import TestClient

    import webui
    from sdui.ui.app import mount_options
    from tests.helpers import LOCAL

    files = {
        "javascript/hello.js": "window.helloExtension = '</script>';\nonUiLoaded(() => {});\n",
        "javascript/mod.mjs": "export const x = 1;\n",
        "style.css": "#hello { color: red }\n",
    }
    ctx, _ = app_ui(extensions=[("hello", files)])
    options = mount_options(ctx)
    assert ctx.paths.extensions_dir / "hello" / "style.css" in options["css_paths"]
    head = options["head"]
    assert "window.gradioApp = function" in head  # A1111's helpers come first
    assert "window.helloExtension = '<\\/script>';" in head and '<script type="module">\nexport const x' in head
    html = TestClient(webui.create_app(ctx), base_url=LOCAL).get("/").text
    assert "window.helloExtension" in html and "window.onUiLoaded" in html
