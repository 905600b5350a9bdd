"""Helpers shared by the test modules (which never import each other): policies, settings, contexts, runs that
also hand back their final latents, progress-event receivers, and Gradio handler look-ups."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.core.hooks import PostSample, ProcessingHooks
from sdui.devices import DevicePolicy
from sdui.settings.snapshot import Settings

REPO_DIR = Path(__file__).resolve().parents[1]
LOCAL = "http://127.0.0.1:7860"  # what a browser on this machine sends as Host (TestClient's base_url)
CPU32 = DevicePolicy(device=torch.device("cpu"), dtype=torch.float32, vae_dtype=torch.float32)


def settings(**overrides) -> Settings:
    """Our default settings with `overrides` (validated like any setting)."""
    return Settings.defaults(**overrides)


def install_checkpoint(source: Path, data: Path, name: str | None = None) -> Path:
    """Copy a checkpoint into <data>/models/Stable-diffusion (as a user drops one in)."""
    target = data / "models" / "Stable-diffusion" / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def make_ctx(data_dir: Path, *flags: str):
    """The app context webui.py builds, on `data_dir` (no model load at start, no progress bars), in float32 on
    every machine unless `flags` pick a --cpu-precision: the suite's expected pixels are float32's, and a CPU with
    native bf16 would otherwise run bfloat16 (tests/test_devices.py tests that choice)."""
    import webui
    from sdui.app.flags import parse_flags

    precision = () if any(f.startswith("--cpu-precision") for f in flags) else ("--cpu-precision", "fp32")
    argv = ["--data-dir", str(data_dir), "--skip-load-model-at-start", *precision, *flags]
    parsed = parse_flags(argv, environ={})
    ctx = webui.build_context(parsed, repo_dir=REPO_DIR)
    ctx.jobs.show_progress_bars = False
    return ctx


class LatentRecorder(ProcessingHooks):
    """Keeps the final latents of every batch (what A1111's post_sample sees)."""

    def __init__(self):
        self.batches: list[torch.Tensor] = []

    def post_sample(self, run, batch, args: PostSample) -> None:
        self.batches.append(args.samples.float().cpu())

    @property
    def latents(self) -> torch.Tensor:
        return torch.cat(self.batches)


def process_with_latents(request, model, **kwargs):
    """process() that also returns the final latents of all batches: (processed, latents)."""
    from sdui.core.processing import process

    recorder = LatentRecorder()
    kwargs.setdefault("policy", CPU32)
    kwargs["hooks"] = [*kwargs.get("hooks", ()), recorder]
    processed = process(request, model, **kwargs)
    return processed, recorder.latents


@dataclass
class Events:
    """A progress-event receiver for process(): records what the core reports; asks to interrupt or skip once
    `stop_after` steps of the whole job have run."""

    stop: str | None = None  # "interrupt" or "skip"
    stop_after: int = 0
    steps: list[tuple[int, int]] = field(default_factory=list)
    parts: list[float] = field(default_factory=list)  # step_part_done fractions
    batches_announced: list[tuple[int, int]] = field(default_factory=list)
    batches_done: int = 0
    previews: list = field(default_factory=list)
    _interrupt: bool = False
    _skip: bool = False

    def add_batches(self, count, steps_per_batch):
        self.batches_announced.append((count, steps_per_batch))

    def step_part_done(self, fraction):
        self.parts.append(fraction)

    def step_done(self, step, steps):
        self.steps.append((step, steps))
        if self.stop and len(self.steps) == self.stop_after:
            if self.stop == "interrupt":
                self._interrupt = True
            else:
                self._skip = True

    def batch_done(self):
        self.batches_done += 1
        self._skip = False

    def preview(self, image):
        self.previews.append(image)

    def interrupted(self):
        return self._interrupt

    def skipped(self):
        return self._skip


# ---- Gradio: handlers found the way Gradio finds them ------------------------------------------------------------
def components_by_id(demo) -> dict:
    return {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}


def handler(demo, elem_id: str, event: str):
    """The function Gradio runs for `event` on the element with `elem_id`, with its input/output blocks."""
    target = components_by_id(demo)[elem_id]
    for fn in demo.fns.values():
        if any(t[0] == target._id and t[1] == event for t in fn.targets):
            return fn
    raise AssertionError(f"no {event} handler on #{elem_id}")


def call(fn, *values, session: str = "test-session"):
    """Run an event handler the way Gradio does: special arguments (gr.Request, progress) filled in first, inputs
    not given (e.g. the Script controls after the request's) at their components' values."""
    import gradio as gr
    from gradio.helpers import special_args

    values = list(values)
    # inputs not given keep their components' values, as Gradio sends untouched components
    values += [getattr(block, "value", None) for block in fn.inputs[len(values) :]]
    inputs, *_ = special_args(fn.fn, values, request=gr.Request(session_hash=session))
    return fn.fn(*inputs)


def outputs_by_id(fn, values) -> dict:
    return {block.elem_id or block._id: value for block, value in zip(fn.outputs, values, strict=False)}


# ---- API ---------------------------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# /sdapi/v1/scripts of a fresh install: the built-in selectable scripts and ControlNet, the built-in always-on one
BUILT_IN_SCRIPTS = {
    "txt2img": ["prompt matrix", "prompts from file or textbox", "x/y/z plot", "controlnet"],
    "img2img": ["loopback", "prompt matrix", "prompts from file or textbox", "sd upscale", "x/y/z plot", "controlnet"],
}


def small(**fields):
    """A quick valid txt2img body: 64x64, 2 steps."""
    body = {
        "prompt": "a red cube",
        "negative_prompt": "blurry",
        "seed": 1234,
        "steps": 2,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler",
        "cfg_scale": 5,
    }
    body.update(fields)
    return body


def decode_png(b64: str):
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(b64)
    assert raw.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


def output_files(data_dir: Path) -> list[Path]:
    outputs = data_dir / "outputs"
    return sorted(p for p in outputs.rglob("*") if p.is_file()) if outputs.exists() else []
