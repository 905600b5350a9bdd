"""A script written against A1111's module surface beyond scripts: ui_components in its ui(), paths, errors and
shared at import and at run time."""

from __future__ import annotations

import json

from sdui.extensions.startup import start_extensions
from sdui.ui.app import create_ui
from tests.helpers import components_by_id, install_checkpoint, make_ctx, small

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


def test_a_script_using_a1111s_modules(make_repo, tmp_path, tiny_sd1_checkpoint, caplog):
    from fastapi.testclient import TestClient

    import webui
    from sdui.extensions import manager
    from tests.helpers import LOCAL

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    manager.install(
        data / "extensions", data / "tmp", str(make_repo("fancy", {"scripts/fancy.py": FANCY})), access_allowed=True
    )
    ctx = make_ctx(data)
    try:
        ctx.extensions = start_extensions(ctx)
        assert ctx.extensions.problems == [] and "fancy loaded" in caplog.text
        blocks = components_by_id(create_ui(ctx))
        assert "script_txt2img_fancy_enable" in blocks and "script_txt2img_fancy_refresh" in blocks
        client = TestClient(webui.create_app(ctx), base_url=LOCAL)
        response = client.post("/sdapi/v1/txt2img", json=small(alwayson_scripts={"fancy": {"args": [True, "x"]}}))
        info = json.loads(response.json()["info"])["infotexts"][0]
        assert "Fancy: x True False" in info
    finally:
        ctx.jobs.shutdown()


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


def test_a_gradio_3_script_builds_and_its_handlers_run(make_repo, tmp_path):
    import gradio as gr

    from sdui.extensions import manager
    from tests.helpers import handler

    data = tmp_path / "data"
    manager.install(
        data / "extensions", data / "tmp", str(make_repo("old", {"scripts/old.py": GRADIO3})), access_allowed=True
    )
    ctx = make_ctx(data)
    try:
        ctx.extensions = start_extensions(ctx)
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
    finally:
        ctx.jobs.shutdown()


def test_fix_seed_on_a_processing_object():
    from modules.processing import StableDiffusionProcessingTxt2Img, fix_seed, get_fixed_seed
    from sdui.request import GenerationRequest

    p = StableDiffusionProcessingTxt2Img(GenerationRequest(seed=-1, subseed=5))
    fix_seed(p)
    assert p.seed >= 0 and p.subseed == 5 and p.request.seed == p.seed
    assert get_fixed_seed(7) == 7 and get_fixed_seed(-1) >= 0
    p.my_state = "kept"  # an extension's own attribute
    assert p.my_state == "kept" and p.extra_generation_params == {} and p.all_prompts is None
