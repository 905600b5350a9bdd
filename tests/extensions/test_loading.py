"""Extensions installed from local git repositories and loaded as the program loads them at start: always-on and
selectable scripts through the API, callbacks, routes behind --api-auth, preload flags, install.py once per
commit, and a broken extension that is reported while the rest works."""

from __future__ import annotations

import json
import textwrap

import pytest
from fastapi.testclient import TestClient

import webui
from sdui.extensions import manager
from sdui.extensions.loader import run_installers
from sdui.extensions.startup import flags_with_extensions, start_extensions
from tests.extensions.conftest import commit_files
from tests.helpers import LOCAL, decode_png, install_checkpoint, make_ctx, small

STAMP = '''
import gradio as gr
from modules import scripts


class Stamp(scripts.Script):
    def title(self):
        return "Stamp"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(value=False, label="Enabled"), gr.Textbox(value="stamped", label="Word")]

    def process(self, p, enabled, word):
        if enabled:
            p.all_prompts = [f"{prompt}, {word} {seed}" for prompt, seed in zip(p.all_prompts, p.all_seeds)]
            p.extra_generation_params["Stamp"] = word
'''

TWICE = '''
import gradio as gr
from modules import scripts
from modules.processing import process_images


class Repeat(scripts.Script):
    def title(self):
        return "Repeat seeds"

    def ui(self, is_img2img):
        return [gr.Slider(1, 4, value=2, step=1, label="Times")]

    def run(self, p, times):
        images, infotexts = [], []
        for i in range(int(times)):
            p.seed = 100 + i
            processed = process_images(p)
            images += processed.images
            infotexts += processed.infotexts
        processed.images, processed.infotexts = images, infotexts
        return processed
'''

CALLBACKS = '''
from modules import script_callbacks, shared

seen = {"denoiser": 0, "models": []}


def count(params):
    seen["denoiser"] += 1
    params.x = params.x  # the A1111 parameter object, writable


def stamp_file(params):
    params.pnginfo["parameters"] += f", Denoiser calls: {seen['denoiser']}"


def routes(demo, app):
    @app.get("/hello/ping")
    def ping():
        return {"ok": True, "steps_default": shared.opts.hello_steps}


def settings():
    shared.opts.add_option("hello_steps", shared.OptionInfo(7, "Hello steps", section=("hello", "Hello")))


def model_loaded(sd_model):
    seen["models"].append(sd_model.checkpoint.name)


def ping_models(demo, app):
    @app.get("/hello/models")
    def models():
        return seen["models"]


script_callbacks.on_cfg_denoiser(count)
script_callbacks.on_before_image_saved(stamp_file)
script_callbacks.on_app_started(routes)
script_callbacks.on_app_started(ping_models)
script_callbacks.on_ui_settings(settings)
script_callbacks.on_model_loaded(model_loaded)
script_callbacks.on_totally_new_callback(print)  # a name A1111 may add later: accepted
'''


def install(make_repo, data, name, files):
    repo = make_repo(name, files)
    return manager.install(data / "extensions", data / "tmp", str(repo), access_allowed=True)


@pytest.fixture
def served(make_repo, tmp_path, tiny_sd1_checkpoint):
    """An app with the extensions installed into its data folder, loaded as webui.py loads them."""
    made = []

    def serve(*flags, extensions=()):
        data = tmp_path / f"data{len(made)}"
        install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
        for name, files in extensions:
            install(make_repo, data, name, files)
        ctx = make_ctx(data, "--nowebui", *flags)
        ctx.extensions = start_extensions(ctx)
        made.append(ctx)
        return ctx, TestClient(webui.create_app(ctx), base_url=LOCAL)

    yield serve
    for ctx in made:
        ctx.jobs.shutdown()


def infotext(response) -> str:
    return json.loads(response.json()["info"])["infotexts"][0]


def test_an_always_on_script_rewrites_prompts_and_writes_the_infotext(served):
    ctx, client = served(extensions=[("sd-webui-stamp", {"scripts/stamp.py": STAMP})])
    body = small(alwayson_scripts={"Stamp": {"args": [True, "hello"]}})
    stamped = client.post("/sdapi/v1/txt2img", json=body)
    assert stamped.status_code == 200, stamped.text
    text = infotext(stamped)
    assert text.startswith("a red cube, hello 1234\n") and "Stamp: hello" in text
    # the image is the one of that prompt: the script's change reached the text encoder
    direct = client.post("/sdapi/v1/txt2img", json=small(prompt="a red cube, hello 1234"))
    assert decode_png(stamped.json()["images"][0]).tobytes() == decode_png(direct.json()["images"][0]).tobytes()
    # without arguments the script's defaults apply (disabled)
    assert infotext(client.post("/sdapi/v1/txt2img", json=small())).startswith("a red cube\n")
    info = client.get("/sdapi/v1/script-info").json()
    stamp = next(s for s in info if s["name"] == "stamp" and not s["is_img2img"])
    assert stamp["is_alwayson"] and [a["label"] for a in stamp["args"]] == ["Enabled", "Word"]
    missing = client.post("/sdapi/v1/txt2img", json=small(alwayson_scripts={"Nope": {"args": []}}))
    assert missing.status_code == 422 and "'Nope' not found" in missing.text and "'stamp'" in missing.text


def test_a_selectable_script_runs_by_name_with_its_arguments(served):
    ctx, client = served(extensions=[("repeat", {"scripts/repeat.py": TWICE})])
    assert "repeat seeds" in client.get("/sdapi/v1/scripts").json()["txt2img"]
    response = client.post("/sdapi/v1/txt2img", json=small(script_name="Repeat seeds", script_args=[3]))
    assert response.status_code == 200, response.text
    texts = json.loads(response.json()["info"])["infotexts"]
    assert [t.split("Seed: ")[1].split(",")[0] for t in texts] == ["100", "101", "102"]
    assert len(response.json()["images"]) == 3


def test_callbacks_settings_and_a_route_behind_api_auth(served):
    ctx, client = served("--api-auth", "u:p", extensions=[("hello", {"scripts/hello.py": CALLBACKS})])
    assert client.get("/hello/ping").status_code == 401
    assert client.get("/hello/ping", auth=("u", "p")).json() == {"ok": True, "steps_default": 7}
    assert ctx.options.data_labels["hello_steps"].section.id == "hello"
    response = client.post("/sdapi/v1/txt2img", json=small(steps=3, save_images=True), auth=("u", "p"))
    assert response.status_code == 200, response.text
    saved = sorted((ctx.paths.outputs_dir / "txt2img-images").rglob("*.png"))
    from PIL import Image

    assert Image.open(saved[-1]).info["parameters"].endswith("Denoiser calls: 3")
    assert client.get("/hello/models", auth=("u", "p")).json() == ["tiny.safetensors"]


def test_a_broken_extension_is_reported_and_the_others_work(served):
    broken = {"scripts/broken.py": "import nonexistent_module_for_this_test\n"}
    ctx, client = served(extensions=[("broken", broken), ("sd-webui-stamp", {"scripts/stamp.py": STAMP})])
    (problem,) = ctx.extensions.problems
    assert problem.extension == "broken" and problem.file == "scripts/broken.py"
    assert "ModuleNotFoundError" in problem.error and "nonexistent_module_for_this_test" in problem.summary()
    body = small(alwayson_scripts={"stamp": {"args": [True, "ok"]}})
    assert "Stamp: ok" in infotext(client.post("/sdapi/v1/txt2img", json=body))
    names = {e["name"]: e for e in client.get("/sdapi/v1/extensions").json()}
    assert set(names) == {"broken", "sd-webui-stamp"} and names["broken"]["enabled"] is True
    assert len(names["sd-webui-stamp"]["commit_hash"]) == 40


def test_disabled_extensions_do_not_load(served, tmp_path):
    ctx, client = served("--disable-all-extensions", extensions=[("sd-webui-stamp", {"scripts/stamp.py": STAMP})])
    assert ctx.extensions.scripts.scripts == []
    response = client.post("/sdapi/v1/txt2img", json=small(alwayson_scripts={"stamp": {"args": [True]}}))
    assert response.status_code == 422


def test_preload_adds_flags(make_repo, tmp_path):
    data = tmp_path / "data"
    preload = "def preload(parser):\n    parser.add_argument('--hello-dir', default='x', help='where hello lives')\n"
    install(make_repo, data, "hello", {"preload.py": preload})
    flags, problems = flags_with_extensions(["--data-dir", str(data), "--hello-dir", "y"], environ={})
    assert problems == [] and flags.raw["hello_dir"] == "y"
    with pytest.raises(SystemExit):  # without the extension the flag is unknown
        flags_with_extensions(["--data-dir", str(tmp_path / "empty"), "--hello-dir", "y"], environ={})


def test_install_py_runs_once_per_commit(make_repo, tmp_path):
    data = tmp_path / "data"
    installer = textwrap.dedent(
        """
        import pathlib
        import launch

        assert launch.is_installed("torch") and not launch.is_installed("surely_not_installed_pkg")
        marker = pathlib.Path("runs.txt")
        marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
        """
    )
    target = install(make_repo, data, "inst", {"install.py": installer})
    state = tmp_path / "cache" / "installed.json"

    def run():
        return run_installers(manager.list_extensions(data / "extensions", None), webui.REPO_DIR, state)

    assert run() == [] and run() == []
    assert (target / "runs.txt").read_text() == "x"
    commit_files(target, {"notes.txt": "a new commit"})
    assert run() == [] and (target / "runs.txt").read_text() == "xx"
    commit_files(target, {"install.py": "raise SystemExit('cannot install: no network')\n"})
    (problem,) = run()
    assert problem.stage == "install" and "cannot install: no network" in problem.error


PAINTER = '''
from PIL import Image
from modules import scripts

seen = []


class Painter(scripts.Script):
    def title(self):
        return "Painter"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def post_sample(self, p, ps, enabled=False):
        if enabled:
            seen.append(tuple(ps.samples.shape))
            ps.samples = ps.samples * 0  # what the VAE decodes from now on

    def postprocess_image(self, p, pp, enabled=False):
        if enabled:
            pp.image = Image.new("RGB", pp.image.size, (0, 128, 255))
            p.extra_generation_params["Painted"] = len(seen)
'''


def test_post_sample_and_postprocess_image_replace_what_the_core_uses(served):
    ctx, client = served(extensions=[("painter", {"scripts/painter.py": PAINTER})])
    response = client.post("/sdapi/v1/txt2img", json=small(alwayson_scripts={"Painter": {"args": [True]}}))
    image = decode_png(response.json()["images"][0])
    assert image.getpixel((0, 0)) == (0, 128, 255) and image.getpixel((63, 63)) == (0, 128, 255)
    assert "Painted: 1" in infotext(response)
    plain = decode_png(client.post("/sdapi/v1/txt2img", json=small()).json()["images"][0])
    assert plain.getpixel((0, 0)) != (0, 128, 255)
