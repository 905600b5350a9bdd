"""SillyTavern and Open WebUI, replayed: the HTTP calls each makes to an A1111 server, in their order, with their
headers and bodies, reading the answers the way they read them.

Sources of the sequences: SillyTavern's src/endpoints/stable-diffusion.js (source "auto", commit 02903fd) and its
stable-diffusion extension's generateAutoImage; Open WebUI's backend/open_webui/routers/images.py ("automatic1111"
engine, commit 02530d5)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.slow  # a real server


def basic(credentials: str) -> str:
    """What both clients put in Authorization: "Basic " + base64 of the raw "user:pass" text (empty by default)."""
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class SillyTavern:
    """SillyTavern's server-side calls for the "auto" (A1111) source."""

    def __init__(self, url: str, auth: str = ""):
        self.url = url
        self.auth = auth
        self.headers = {"Authorization": basic(auth)}

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=120)

    def post(self, path: str, body=None) -> requests.Response:
        headers = {**self.headers, "Content-Type": "application/json"}
        data = json.dumps(body) if body is not None else None
        return requests.post(self.url + path, data=data, headers=headers, timeout=300)

    def connect(self) -> dict:
        """ "Validate URL", then the settings loaders (samplers, models, upscalers, schedulers, VAEs)."""
        assert self.get("/sdapi/v1/options").ok  # the ping
        samplers = [x["name"] for x in self.get("/sdapi/v1/samplers").json()]
        current = self.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
        models = [x["title"] for x in self.get("/sdapi/v1/sd-models").json()]
        upscalers = self.get("/sdapi/v1/upscalers")
        latent = self.get("/sdapi/v1/latent-upscale-modes")
        assert upscalers.ok and latent.ok  # both must answer
        names = [x["name"] for x in upscalers.json()]
        names[1:1] = [x["name"] for x in latent.json()]  # ST puts the latent modes after "None"
        schedulers = [x["name"] for x in self.get("/sdapi/v1/schedulers").json()]
        vaes = self.get("/sdapi/v1/sd-vae")
        assert self.get("/sdapi/v1/sd-modules").ok
        assert isinstance(vaes.json(), list)
        return {
            "samplers": samplers,
            "model": current,
            "models": models,
            "upscalers": names,
            "schedulers": schedulers,
            "vaes": ["Automatic", *[x["model_name"] for x in vaes.json()]],
        }

    def set_model(self, title: str) -> None:
        assert self.post("/sdapi/v1/options", {"sd_model_checkpoint": title}).ok
        for _ in range(10):  # ST waits for the load to finish, polling progress every 2 s
            progress = self.get("/sdapi/v1/progress").json()
            if progress["progress"] == 0.0 and progress["state"]["job_count"] == 0:
                return
            time.sleep(0.2)
        pytest.fail("the server still reports work after the model change")

    def generate_body(self, prompt: str, **settings) -> dict:
        """The extension's generateAutoImage body with its defaults; ST forwards it with url and auth inside."""
        body = {
            "url": self.url,
            "auth": self.auth,
            "prompt": "best quality, absurdres, aesthetic, " + prompt,
            "negative_prompt": "lowres, bad anatomy, bad hands, text, error, cropped, worst quality, blurry",
            "sampler_name": "DDIM",
            "scheduler": "normal",
            "steps": 20,
            "cfg_scale": 7,
            "width": 512,
            "height": 512,
            "restore_faces": False,
            "enable_hr": False,
            "hr_upscaler": "Latent",
            "hr_scale": 1.0,
            "hr_additional_modules": [],
            "denoising_strength": 0.7,
            "hr_second_pass_steps": 0,
            "clip_skip": 1,
            "override_settings": {"CLIP_stop_at_last_layers": 1},
            "override_settings_restore_afterwards": True,
            "save_images": True,
            "send_images": True,
            "do_not_save_grid": False,
            "do_not_save_samples": False,
        }
        body.update(settings)
        return body

    def generate(self, body: dict) -> Image.Image:
        options = self.get("/sdapi/v1/options").json()
        if "forge_preset" not in options:  # not Forge: its module list is dropped
            body["override_settings"].pop("forge_additional_modules", None)
        response = self.post("/sdapi/v1/txt2img", body)
        assert response.ok, response.text
        return Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))  # all ST reads


class OpenWebUI:
    """Open WebUI's calls for the "automatic1111" image engine."""

    def __init__(self, url: str, api_auth: str | None = ""):
        self.url = url
        self.headers = {"authorization": basic(api_auth) if api_auth is not None else ""}

    def verify(self) -> bool:
        return requests.get(self.url + "/sdapi/v1/options", headers=self.headers, timeout=60).ok

    def models(self) -> list[dict]:
        response = requests.get(self.url + "/sdapi/v1/sd-models", headers=self.headers, timeout=60)
        return [{"id": m["title"], "name": m["model_name"]} for m in response.json()]

    def current_model(self) -> str:
        return requests.get(self.url + "/sdapi/v1/options", headers=self.headers, timeout=60).json()[
            "sd_model_checkpoint"
        ]

    def set_model(self, model: str) -> None:
        options = requests.get(self.url + "/sdapi/v1/options", headers=self.headers, timeout=60).json()
        if model != options["sd_model_checkpoint"]:
            options["sd_model_checkpoint"] = model  # the whole dict goes back
            response = requests.post(self.url + "/sdapi/v1/options", json=options, headers=self.headers, timeout=120)
            response.raise_for_status()

    def generate(self, prompt: str, n: int = 1, size: str = "64x64", steps: int | None = 2, **params) -> list:
        self.current_model()  # asked before every generation
        width, height = (int(x) for x in size.split("x"))
        data = {"prompt": prompt, "batch_size": n, "width": width, "height": height}
        if steps is not None:
            data["steps"] = steps
        data.update(params)  # AUTOMATIC1111_PARAMS, merged over the base keys
        response = requests.post(self.url + "/sdapi/v1/txt2img", json=data, headers=self.headers, timeout=300)
        res = response.json()
        images = [Image.open(io.BytesIO(base64.b64decode(image))) for image in res["images"]]
        return images, res["info"]  # info is stored as it is, not parsed


# ------------------------------------------------------------------------------------------------- SillyTavern


def test_sillytavern_connects_lists_everything_and_generates(live_server):
    st = SillyTavern(live_server.url)
    found = st.connect()
    assert found["samplers"][0] == "DPM++ 2M" and "DDIM" in found["samplers"]
    assert found["models"] and found["models"][0].startswith("tiny.safetensors")
    assert found["upscalers"][0] == "None" and found["upscalers"][1] == "Latent"
    assert "normal" in found["schedulers"] and "karras" in found["schedulers"]
    assert found["vaes"] == ["Automatic"]
    st.set_model(found["models"][0])
    assert st.connect()["model"] == st.get("/sdapi/v1/sd-models").json()[0]["title"]  # listed title, as selected

    body = st.generate_body("a cat in a hat", steps=2, width=64, height=64, seed=9, sampler_name="Euler")
    body["scheduler"] = "karras"  # a schedule name as /schedulers lists it
    image = st.generate(body)
    assert image.format == "PNG" and image.size == (64, 64)
    assert image.info["parameters"].startswith("best quality, absurdres, aesthetic, a cat in a hat\n")
    assert "Sampler: Euler, Schedule type: Karras" in image.info["parameters"]
    saved = list((live_server.ctx.paths.data_dir / "outputs" / "txt2img-images").rglob("*-9.png"))
    assert saved  # save_images: true writes the file, as A1111


def test_sillytavern_default_sampler_and_schedule(live_server):
    st = SillyTavern(live_server.url)
    image = st.generate(st.generate_body("a cat", steps=2, width=64, height=64))  # DDIM, "normal": A1111 runs it
    assert "Sampler: DDIM, Schedule type: Normal" in image.info["parameters"]


def test_sillytavern_hires_and_each_scheduler_it_lists(live_server):
    st = SillyTavern(live_server.url)
    upscalers = st.connect()["upscalers"]
    for upscaler in upscalers:
        body = st.generate_body("x", steps=2, width=64, height=64, enable_hr=True, hr_scale=1.5, hr_upscaler=upscaler)
        body["sampler_name"] = "Euler"
        assert st.generate(body).size == (96, 96), upscaler
    for scheduler in st.connect()["schedulers"]:
        body = st.generate_body("x", steps=2, width=64, height=64, sampler_name="Euler", scheduler=scheduler)
        assert st.generate(body).size == (64, 64), scheduler


def test_sillytavern_abort_interrupts_its_generation(live_server):
    st = SillyTavern(live_server.url)
    body = st.generate_body("x", steps=300, width=64, height=64, sampler_name="Euler")
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("image", st.generate(body)))
    worker.start()
    deadline = time.monotonic() + 60
    while st.get("/sdapi/v1/progress").json()["state"]["sampling_step"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert st.post("/sdapi/v1/interrupt").ok  # what ST sends when the browser drops the request
    worker.join(120)
    assert result["image"].size == (64, 64)  # the unfinished image is still returned


def test_sillytavern_with_api_credentials(make_live_server):
    server = make_live_server("--api-auth", "tavern:secret")
    assert SillyTavern(server.url, "tavern:secret").connect()["models"]
    assert SillyTavern(server.url, "").get("/sdapi/v1/options").status_code == 401  # "Basic " with nothing


# -------------------------------------------------------------------------------------------------- Open WebUI


def test_open_webui_verifies_picks_the_model_and_generates(live_server):
    webui = OpenWebUI(live_server.url)
    assert webui.verify()
    (model,) = webui.models()
    assert model["name"] == "tiny" and model["id"].startswith("tiny.safetensors")
    webui.set_model(model["id"])  # posts back every option it read, with the model changed
    assert webui.current_model() == model["id"]
    images, info = webui.generate("a watercolor fox", n=2)
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    assert json.loads(info)["prompt"] == "a watercolor fox"


def test_open_webui_without_steps_and_with_its_params(live_server):
    webui = OpenWebUI(live_server.url, api_auth=None)  # AUTOMATIC1111_API_AUTH unset: an empty header
    params = {"cfg_scale": 5.5, "sampler_name": "Euler", "scheduler": "Karras", "seed": 3}
    images, info = webui.generate("x", steps=None, **params)  # A1111's default of 50 steps
    assert len(images) == 1 and "Schedule type: Karras" in json.loads(info)["infotexts"][0]


def test_open_webui_with_api_auth(make_live_server):
    server = make_live_server("--api-auth", "owui:pw")
    assert OpenWebUI(server.url, "owui:pw").verify()
    assert not OpenWebUI(server.url, "owui:wrong").verify()
    images, _ = OpenWebUI(server.url, "owui:pw").generate("x")
    assert len(images) == 1
