"""What A1111's `modules.shared` offers, over the running app (registry.REGISTRY.app, set by webui.py before
extensions load): `opts` is our Options (attribute access, add_option, onchange, set, save: the same calls),
`cmd_opts` the parsed flags with extensions' own, `sd_model` the loaded model, `device` the torch device,
`state` the progress of the current job."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from sdui.extensions import registry
from sdui.extensions.a1111_helpers import path_constant
from sdui.settings.registry import OptionInfo, options_section

OptionHTML = OptionInfo  # A1111's HTML-only entries read as options without a value here


class _State:
    """A1111's shared.state: the current job's progress and its interrupt/skip switches."""

    def _job(self):
        app = registry.REGISTRY.app
        return app.jobs.current if app is not None else None

    def __getattr__(self, name: str) -> Any:
        job = self._job()
        values = {
            "interrupted": bool(job and job.interrupted()),
            "skipped": bool(job and job.skipped()),
            "job_count": getattr(job, "job_count", 0) if job else 0,
            "job_no": getattr(job, "job_no", 0) if job else 0,
            "sampling_step": getattr(job, "sampling_step", 0) if job else 0,
            "sampling_steps": getattr(job, "sampling_steps", 0) if job else 0,
            "job": "" if job is None else str(getattr(job, "id", "")),
            "textinfo": None,
            "current_latent": None,
            "current_image": None,
            "stopping_generation": False,
        }
        if name in values:
            return values[name]
        raise AttributeError(name)

    def interrupt(self) -> None:
        app = registry.REGISTRY.app
        if app is not None:
            app.jobs.interrupt()

    def skip(self) -> None:
        app = registry.REGISTRY.app
        if app is not None:
            app.jobs.skip()

    def begin(self, job: str = "(unknown)") -> None:  # the job queue keeps its own state
        pass

    def end(self) -> None:
        pass

    def nextjob(self) -> None:
        pass


state = _State()


def lookup(name: str) -> Any:
    app = registry.REGISTRY.app
    if name == "state":
        return state
    if app is None:
        raise AttributeError(f"modules.shared.{name} is available once the app has started")
    if name == "opts":
        return app.options
    if name == "cmd_opts":
        return Namespace(**dict(app.flags.raw))
    if name == "sd_model":
        return app.store.current
    if name == "device":
        return app.policy.device
    try:
        return path_constant(name)  # models_path, data_path, script_path, ...: modules.paths' constants
    except AttributeError:
        pass
    raise AttributeError(f"modules.shared has no {name!r} here")


__all__ = ["OptionHTML", "OptionInfo", "lookup", "options_section", "state"]
