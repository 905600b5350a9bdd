"""What the running app is made of, built once in webui.py and passed explicitly to the API, the UI and jobs.

`generate()` is the one way a request becomes images, whoever asks (UI tab, API route, script): it applies the
request's `override_settings` for that request only, picks the model, and calls the processing core. It is meant to
run inside a job of `ctx.jobs` (the worker passes `job=`), so generations and model switches never overlap.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator

from sdui.errors import UserError
from sdui.core.request import GenerationRequest, Processed

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "sd_model_checkpoint"
# what the store writes into the options when it activates a model: restored together with the checkpoint
_MODEL_KEYS = (CHECKPOINT_KEY, "sd_checkpoint_hash")


@dataclass
class AppContext:
    args: argparse.Namespace
    paths: Any      # modules.paths.DataPaths
    options: Any    # modules.options.Options
    policy: Any     # modules.devices.DevicePolicy
    store: Any      # modules.models.store.ModelStore
    jobs: Any       # modules.jobs.JobQueue


def generate(ctx: AppContext, request: GenerationRequest, job=None) -> Processed:
    """Run one generation request with the selected model (or the one `override_settings` names)."""
    from sdui.core.processing import process   # late: importing torch/diffusers is not needed to build the app

    overrides = dict(request.override_settings or {})
    checkpoint = overrides.pop(CHECKPOINT_KEY, None) or None
    if checkpoint and not ctx.options.get(CHECKPOINT_KEY):
        # nothing chosen yet: pin what a request without the override would use, so that is what comes back
        ctx.options.data[CHECKPOINT_KEY] = ctx.store.select().title
    restored = (*overrides, *(_MODEL_KEYS if checkpoint else ()))
    with _temporary_settings(ctx.options, overrides, restored, restore=request.override_settings_restore_afterwards):
        model = ctx.store.get(checkpoint)
        # processing saves under <outputs>/<mode>-images and -grids and honours each do_not_save flag itself
        save = not (request.do_not_save_samples and request.do_not_save_grid)
        return process(request, model, policy=ctx.policy, options=ctx.options,
                       outputs_dir=ctx.paths.outputs_dir if save else None, job=job)


@contextlib.contextmanager
def _temporary_settings(options, overrides: dict, keys: tuple, *, restore: bool) -> Iterator[None]:
    """Apply `overrides` (validated like any setting) for the duration of the block, then put back `keys`.

    With a checkpoint override `keys` include the ones the store writes when it activates a model, so the next
    request without an override gets the previously selected model again. With restore=False everything stays as
    the request left it and is saved, as A1111 does for override_settings_restore_afterwards=false.
    """
    saved = {key: options.data[key] for key in keys if key in options.data}
    try:
        for key, value in overrides.items():
            options.data[key] = options.cast_value(key, value) if hasattr(options, "cast_value") else value
        yield
    finally:
        if restore:
            for key in keys:
                options.data.pop(key, None)
            options.data.update(saved)
        else:
            _save_quietly(options)


def _save_quietly(options) -> None:
    try:
        options.save()
    except Exception as e:  # noqa: BLE001 - a settings file we cannot write must not fail a finished generation
        log.warning("Could not save settings: %s", e)


def switch_model(ctx: AppContext, name: str):
    """Load checkpoint `name` through the job queue and remember it as the sd_model_checkpoint setting.

    An unknown name raises CheckpointError (listing the known titles) before anything is queued."""
    info = ctx.store.select(name)
    model = ctx.jobs.run(lambda job: ctx.store.get(info.title), name="load checkpoint")
    title = model.checkpoint.title if getattr(model, "checkpoint", None) is not None else info.title
    ctx.options.set(CHECKPOINT_KEY, title, run_callbacks=False)
    ctx.options.save()
    return model


def register_option_hooks(ctx: AppContext) -> None:
    """Changing sd_model_checkpoint (settings, an extension's opts.set) loads that model, through the job queue."""
    def load_selected():
        ctx.jobs.run(lambda job: ctx.store.apply_checkpoint_option(), name="load checkpoint")
    ctx.options.onchange(CHECKPOINT_KEY, load_selected)


def startup_checkpoint(ctx: AppContext):
    """The checkpoint to load at start (the setting, --ckpt, else the first listed), or None when there is none."""
    try:
        return ctx.store.select()
    except UserError:
        return None
