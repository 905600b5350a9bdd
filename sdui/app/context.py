"""What the running app is made of, built once in webui.py and passed explicitly to the API, the UI and jobs.

`generate()` is the one way a request becomes images, whoever asks (UI tab, API route, script): it takes a frozen
snapshot of the settings with the request's `override_settings` on top (the shared settings never change under a
running job), picks the model, and calls the processing core. It runs inside a job of `ctx.jobs` (the worker passes
`job=`), so generations and model switches never overlap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdui.app.flags import Flags
from sdui.app.jobs import Job, JobQueue
from sdui.app.options import Options
from sdui.app.paths import DataPaths
from sdui.core.hooks import ProcessingHooks
from sdui.core.processed import Processed
from sdui.devices import DevicePolicy
from sdui.errors import UserError
from sdui.models.discovery import CheckpointInfo
from sdui.models.sd_model import SDModel
from sdui.models.store import ModelStore
from sdui.request import GenerationRequest

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "sd_model_checkpoint"
CHECKPOINT_HASH_KEY = "sd_checkpoint_hash"


class ServerControl:
    """Stopping the server from a route (A1111's --api-server-stop routes); webui.py attaches the real stop."""

    def __init__(self, restart_file: Path):
        self.restart_file = restart_file
        self._stop: Callable[[], None] | None = None

    def attach(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    @property
    def can_restart(self) -> bool:
        return bool(os.environ.get("SD_WEBUI_RESTART"))  # set by webui.sh, which loops while the file exists

    def stop(self, *, restart: bool = False) -> None:
        if restart:
            self.restart_file.parent.mkdir(parents=True, exist_ok=True)
            self.restart_file.touch()
        log.info("%s on request of the API.", "Restarting" if restart else "Stopping")
        if self._stop is not None:
            self._stop()


@dataclass
class AppContext:
    flags: Flags
    paths: DataPaths
    options: Options
    policy: DevicePolicy
    store: ModelStore
    jobs: JobQueue
    server: ServerControl
    hooks: list[ProcessingHooks] = field(default_factory=list)  # called by every generation, in this order
    extensions: Any = None  # sdui.extensions.startup.ExtensionRuntime once extensions are loaded
    controlnet: Any = None  # sdui.controlnet.job_hook.ControlNetScript: the built-in ControlNet (also in `hooks`)


def generate(ctx: AppContext, request: GenerationRequest, *, job: Job, script: Callable | None = None) -> Processed:
    """Run one generation request with the selected model (or the one `override_settings` names). `script`: a
    selectable script that runs instead of process(), with its arguments (A1111's script_name)."""
    from sdui.core.processing import process  # late: importing torch/diffusers is not needed to build the app

    overrides = dict(request.override_settings or {})
    checkpoint = ctx.options.cast_value(CHECKPOINT_KEY, overrides.pop(CHECKPOINT_KEY, None)) or None
    settings = ctx.options.snapshot(overrides)  # a bad override is refused here, before any work
    model = ctx.store.get(checkpoint)
    if checkpoint is None:
        remember_model(ctx, model)
    # A1111 saves under outputs/ unless both do_not_save flags are set; processing honours each flag itself
    save = not (request.do_not_save_samples and request.do_not_save_grid)
    kwargs = dict(
        policy=ctx.policy,
        settings=settings,
        hooks=ctx.hooks,
        events=job,
        data_dir=ctx.paths.data_dir if save else None,
        preview_dirs=ctx.paths.taesd_dirs,
    )
    if script is not None:
        kwargs["models"] = ctx.store  # a script may switch models (X/Y/Z plot's checkpoint axis)
    processed = (script or process)(request, model, **kwargs)
    if overrides and not request.override_settings_restore_afterwards:
        keep_overrides(ctx, overrides, model if checkpoint else None)
    return processed


def keep_overrides(ctx: AppContext, overrides: dict, model: SDModel | None) -> None:
    """A1111's override_settings_restore_afterwards=false: the request's overrides become the settings."""
    for key, value in overrides.items():
        ctx.options.set(key, value, run_callbacks=False)
    if model is not None:
        remember_model(ctx, model)
    try:
        ctx.options.save()
    except OSError as e:  # a settings file we cannot write must not fail a finished generation
        log.warning("Could not save settings: %s", e)


def remember_model(ctx: AppContext, model: SDModel) -> None:
    """Record the model in use as the selected checkpoint, by its full title (it gains "[hash]" once loaded) and
    sha256, as A1111 does; no callbacks run (this is not a new choice)."""
    info = model.checkpoint
    if info is not None:
        ctx.options.data[CHECKPOINT_KEY] = info.title
        ctx.options.data[CHECKPOINT_HASH_KEY] = info.sha256 or ""


def switch_model(ctx: AppContext, name: str) -> SDModel:
    """Load checkpoint `name` through the job queue and remember it as the sd_model_checkpoint setting.

    An unknown name raises CheckpointError (listing the known titles) before anything is queued."""
    info = ctx.store.select(name)
    model = ctx.jobs.run(lambda job: ctx.store.get(info.title), name="load checkpoint")
    remember_model(ctx, model)
    ctx.options.save()
    return model


def configure_upscalers(ctx: AppContext) -> None:
    """Model upscalers come from the upscaler folders and run on the generation device, in float16 where the
    models run in it, with the tile settings current when they run."""
    import torch

    from sdui.upscalers.model_upscalers import MODEL_UPSCALERS, RunSettings

    def run_settings() -> RunSettings:
        return RunSettings(
            device=ctx.policy.device,
            half=ctx.policy.dtype == torch.float16,
            tile=int(ctx.options.ESRGAN_tile),
            overlap=int(ctx.options.ESRGAN_tile_overlap),
        )

    MODEL_UPSCALERS.configure(list(ctx.paths.upscaler_dirs), run_settings)

    from sdui.upscalers.face_restoration import FACE_RESTORERS

    # A1111's folders: GFPGAN/RestoreFormer and facexlib's detection weights in models/GFPGAN, CodeFormer's own
    gfpgan = ctx.paths.models_dir / "GFPGAN"
    FACE_RESTORERS.configure(gfpgan, [gfpgan, ctx.paths.models_dir / "Codeformer"], lambda: ctx.policy.device)


def register_option_hooks(ctx: AppContext) -> None:
    """Settings that act at once: sd_model_checkpoint (Settings, an extension's opts.set) loads that model through
    the job queue; sd_checkpoint_cache resizes the RAM cache."""

    def load_selected():
        model = ctx.jobs.run(lambda job: ctx.store.get(ctx.options.sd_model_checkpoint or None), name="load checkpoint")
        remember_model(ctx, model)

    def resize_cache():
        ctx.store.cache_size = ctx.options.sd_checkpoint_cache

    ctx.options.onchange(CHECKPOINT_KEY, load_selected)
    ctx.options.onchange("sd_checkpoint_cache", resize_cache)


def apply_ckpt_flag(ctx: AppContext) -> None:
    """--ckpt FILE: it is listed first and selected for this run, over the saved setting (as A1111)."""
    if not ctx.paths.ckpt_from_flag:
        return
    if not ctx.paths.ckpt_file.is_file():
        log.warning("--ckpt %s: no such file; it is ignored.", ctx.paths.ckpt_file)
        return
    checkpoints = ctx.store.checkpoints
    if checkpoints:
        ctx.options.data[CHECKPOINT_KEY] = checkpoints[0].title


def startup_checkpoint(ctx: AppContext) -> CheckpointInfo | None:
    """The checkpoint to load at start (the setting, --ckpt, else the first listed), or None when there is none."""
    try:
        return ctx.store.select()
    except UserError:
        return None
