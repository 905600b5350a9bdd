"""A script written against A1111's module surface beyond scripts: ui_components in its ui(), paths, errors and
shared at import and at run time."""

from __future__ import annotations

import json

import pytest

from sdui.extensions.startup import start_extensions
from sdui.ui.app import create_ui
from tests.helpers import components_by_id, install_checkpoint, make_ctx, small


@pytest.fixture
def app_with(make_repo, tmp_path, tiny_sd1_checkpoint):
    """app_with(name, code) -> the app context with the tiny checkpoint and one extension, `name`, whose
    scripts/<name>.py is `code`, installed and loaded as at start."""
    from sdui.extensions import manager

    made = []

    def make(name: str, code: str):
        data = tmp_path / "data"
        install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
        repo = make_repo(name, {f"scripts/{name}.py": code})
        manager.install(data / "extensions", data / "tmp", str(repo), access_allowed=True)
        ctx = make_ctx(data)
        made.append(ctx)
        ctx.extensions = start_extensions(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.jobs.shutdown()


def api_client(ctx):
    from fastapi.testclient import TestClient

    import webui
    from tests.helpers import LOCAL

    return TestClient(webui.create_app(ctx), base_url=LOCAL)

FANCY = '''
import gradio as gr
from modules import errors, paths, scripts, shared
from modules.ui_components import FormRow, InputAccordion, ToolButton

MODELS = paths.models_path
errors.report("fancy loaded")


class Fancy(scripts.Script):
    def title(self):
        return "Fancy"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with InputAccordion(False, label="Fancy", elem_id=self.elem_id("enable")) as enabled:
            with FormRow():
                word = gr.Textbox(value="w", label="Word")
                ToolButton("R", elem_id=self.elem_id("refresh"))
        return [enabled, word]

    def process(self, p, enabled, word):
        if enabled:
            p.extra_generation_params["Fancy"] = f"{word} {MODELS == str(shared.models_path)} {shared.cmd_opts.nowebui}"
'''


def test_a_script_using_a1111s_modules(app_with, caplog):
    ctx = app_with("fancy", FANCY)
    assert ctx.extensions.problems == [] and "fancy loaded" in caplog.text
    blocks = components_by_id(create_ui(ctx))
    assert "script_txt2img_fancy_enable" in blocks and "script_txt2img_fancy_refresh" in blocks
    response = api_client(ctx).post(
        "/sdapi/v1/txt2img", json=small(alwayson_scripts={"fancy": {"args": [True, "x"]}})
    )
    info = json.loads(response.json()["info"])["infotexts"][0]
    assert "Fancy: x True False" in info


GRADIO3 = '''
import gradio as gr
from modules import scripts


class Old(scripts.Script):
    def title(self):
        return "Old style"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Box():
            word = gr.Textbox(value="a", label="Word", elem_id=self.elem_id("word")).style(container=False)
            button = gr.Button("Hide", elem_id=self.elem_id("hide")).style(full_width=True)
            image = gr.Image(source="upload", tool="sketch", elem_id=self.elem_id("image"))

        def hide(text):
            return gr.Button.update(visible=False), gr.Textbox.update(value=text.upper())

        button.click(hide, inputs=[word], outputs=[button, word], _js="(text) => text")
        return [word]
'''


def test_a_gradio_3_script_builds_and_its_handlers_run(app_with):
    import gradio as gr

    from tests.helpers import handler

    ctx = app_with("old", GRADIO3)
    assert ctx.extensions.problems == []
    demo = create_ui(ctx)
    blocks = components_by_id(demo)
    assert blocks["script_txt2img_old_style_image"].sources == ["upload"]
    fn = handler(demo, "script_txt2img_old_style_hide", "click")
    assert fn.js == "(text) => text"
    hidden, upper = fn.fn("abc")
    assert hidden == {"__type__": "update", "visible": False} and upper["value"] == "ABC"
    # Gradio itself is as it was outside the extension's code
    assert not hasattr(gr.Button, "update") and not hasattr(gr, "Box") and not hasattr(gr.Textbox, "style")


def test_fix_seed_on_a_processing_object():
    from modules.processing import StableDiffusionProcessingTxt2Img, fix_seed, get_fixed_seed
    from sdui.request import GenerationRequest

    p = StableDiffusionProcessingTxt2Img(GenerationRequest(seed=-1, subseed=5))
    fix_seed(p)
    assert p.seed >= 0 and p.subseed == 5 and p.request.seed == p.seed
    assert get_fixed_seed(7) == 7 and get_fixed_seed(-1) >= 0
    p.my_state = "kept"  # an extension's own attribute
    assert p.my_state == "kept" and p.extra_generation_params == {} and p.all_prompts is None


SAVER = '''
import json
import os

import gradio as gr
from modules import devices, images, script_callbacks, scripts, sd_models, sd_samplers, shared
from modules.ui_common import create_refresh_button

BASE = scripts.basedir()
SEEN = []
script_callbacks.on_before_image_saved(lambda params: params.pnginfo.update(saver="yes"))
script_callbacks.on_image_saved(lambda params: SEEN.append(params.filename))


class Saver(scripts.Script):
    def title(self):
        return "Saver"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        names = gr.Dropdown(choices=[], label="Checkpoint", elem_id=self.elem_id("names"))
        create_refresh_button(
            names, sd_models.list_models, lambda: {"choices": list(sd_models.checkpoints_list)}, self.elem_id("refresh")
        )
        return [names]

    def postprocess(self, p, processed, names):
        grid = images.image_grid(processed.images, rows=1)
        path, txt = images.save_image(
            grid, shared.opts.outdir_grids or "grids-out", "saver", p.seed, p.prompt, info="a grid", p=p, grid=True
        )
        found = sd_models.get_closet_checkpoint_match("tiny")
        samplers = [s.name for s in sd_samplers.all_samplers]
        report = [path, txt, found.title, samplers[0], devices.device.type, SEEN == [path]]
        with open(os.path.join(BASE, "report.json"), "w") as f:
            json.dump(report, f)
'''


def test_images_models_samplers_devices_and_ui_common(app_with, tmp_path):
    from PIL import Image

    from tests.helpers import handler

    ctx = app_with("saver", SAVER)
    assert ctx.extensions.problems == []
    ctx.options.set("outdir_grids", str(tmp_path / "grids"))
    demo = create_ui(ctx)
    refresh = handler(demo, "script_txt2img_saver_refresh", "click")
    assert refresh.fn()["choices"] == [info.title for info in ctx.store.checkpoints]

    client = api_client(ctx)
    assert client.post("/sdapi/v1/txt2img", json=small(batch_size=2)).status_code == 200
    report = ctx.paths.data_dir / "extensions" / "saver" / "report.json"
    path, txt, title, sampler, device, seen = json.loads(report.read_text())
    assert txt is None and title == ctx.store.checkpoints[0].title and sampler == "DPM++ 2M"
    assert device == "cpu" and seen is True
    saved = Image.open(path)
    assert saved.info["parameters"] == "a grid" and saved.info["saver"] == "yes"
    assert saved.size == (2 * 64, 64)
    assert path.startswith(str(tmp_path / "grids")) and "/saver-" in path


COMPONENTS = '''
import gradio as gr
from modules import script_callbacks, scripts

SEEN = []
UI_CALLS = []


def after(component, **kwargs):
    SEEN.append(kwargs.get("elem_id"))
    if kwargs.get("elem_id") == "txt2img_prompt":
        button = gr.Button("Shout", elem_id="shout_button")
        button.click(lambda text: text.upper(), inputs=[component], outputs=[component])


script_callbacks.on_after_component(after)


class Watcher(scripts.Script):
    def title(self):
        return "Watcher"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        UI_CALLS.append(is_img2img)
        self.generates = []
        self.on_before_component(self.note, elem_id="txt2img_neg_prompt")
        return []

    def note(self, on):
        gr.Markdown("Negative prompt ahead", elem_id=self.elem_id("note"))

    def after_component(self, component, **kwargs):
        if (kwargs.get("elem_id") or "").endswith("_generate"):
            self.generates.append((kwargs["elem_id"], kwargs.get("value")))
'''


def test_before_and_after_component_see_every_component(app_with):
    import re

    from sdui.extensions import registry
    from tests.helpers import handler

    ctx = app_with("w", COMPONENTS)
    demo = create_ui(ctx)
    blocks = components_by_id(demo)
    script_globals = registry.REGISTRY.scripts[0].cls.note.__globals__
    seen = script_globals["SEEN"]
    assert sorted(script_globals["UI_CALLS"]) == [False, True]  # ui() once per tab, as in A1111
    assert {"txt2img_prompt", "img2img_prompt", "txt2img_generate", "extensions_install_url"} <= set(seen)
    # the new button sits right after the prompt, the note right before the negative prompt, in their parents
    prompt, shout = blocks["txt2img_prompt"], blocks["shout_button"]
    siblings = prompt.parent.children
    assert siblings.index(shout) == siblings.index(prompt) + 1
    negative, note = blocks["txt2img_neg_prompt"], blocks["script_txt2img_watcher_note"]
    assert negative.parent.children.index(note) == negative.parent.children.index(negative) - 1
    layout = json.dumps(demo.config["layout"])
    assert len(re.findall(rf'"id": {shout._id}\b', layout)) == 1
    assert handler(demo, "shout_button", "click").fn("quiet") == "QUIET"
    # a script sees the components of its own tab (A1111's scripts_current)
    watchers = {s.mode: s.instance.generates for s in ctx.extensions.scripts.scripts}
    assert watchers == {"txt2img": [("txt2img_generate", "Generate")], "img2img": [("img2img_generate", "Generate")]}


PASTED = '''
import gradio as gr
from modules import script_callbacks, scripts


def renamed(infotext, params):
    if "Old stamp" in params:
        params["Stamp word"] = params.pop("Old stamp")


def one_column(params):
    params.cols, params.rows = 1, len(params.imgs)


script_callbacks.on_infotext_pasted(renamed)
script_callbacks.on_image_grid(one_column)


class Stamp(scripts.Script):
    def title(self):
        return "Stamp"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        enabled = gr.Checkbox(False, label="Stamp", elem_id=self.elem_id("enabled"))
        word = gr.Textbox("", label="Word", elem_id=self.elem_id("word"))
        steps = gr.Slider(1, 10, value=3, step=1, label="Count", elem_id=self.elem_id("count"))
        self.infotext_fields = [(enabled, "Stamp enabled"), (word, lambda d: d.get("Stamp word")), (steps, "Count")]
        return [enabled, word, steps]
'''


def test_pasting_fills_script_fields_and_grids_follow_on_image_grid(app_with):
    from PIL import Image

    from tests.helpers import call, decode_png, handler, outputs_by_id

    ctx = app_with("st", PASTED)
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_paste", "click")
    text = "a cat\nNegative prompt: dog\nSteps: 7, Seed: 3, Stamp enabled: True, Old stamp: zz, Count: 5"
    pasted = outputs_by_id(fn, call(fn, text, ""))
    assert pasted["script_txt2img_stamp_enabled"] is True
    assert pasted["script_txt2img_stamp_word"] == "zz" and pasted["script_txt2img_stamp_count"] == 5
    assert pasted["txt2img_steps"] == 7
    # a text without the script's keys leaves its fields alone
    untouched = outputs_by_id(fn, call(fn, "a cat\nSteps: 7, Seed: 3", ""))
    assert all(
        isinstance(untouched[k], dict) and untouched[k].get("__type__") == "update"
        for k in ("script_txt2img_stamp_enabled", "script_txt2img_stamp_word", "script_txt2img_stamp_count")
    )

    client = api_client(ctx)
    answer = client.post("/sdapi/v1/txt2img", json=small(batch_size=3, save_images=True)).json()
    grid = decode_png(answer["images"][0])
    assert isinstance(grid, Image.Image) and grid.size == (64, 3 * 64)  # one column, as the callback asked
