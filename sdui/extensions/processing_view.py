"""A1111's `p` (StableDiffusionProcessing) as extensions see it, over our own objects.

During a generation a `ProcessingView` stands over the `Run`: `p.all_prompts`, `p.extra_generation_params`, ...
are the run's own lists and dict (what a script changes, the core uses), `p.prompt`, `p.steps`, `p.cfg_scale`, ...
are the request's fields, `p.prompts` / `p.seeds` the current batch's. Before a generation (a selectable script's
`run(p, *args)`) it stands over the request alone; `processing.process_images(p)` then runs it. Attributes an
extension invents (`p.my_state = ...`) are kept on the view, as they are on A1111's object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sdui.core.run import Batch, Run
from sdui.request import GenerationRequest, Img2ImgRequest

_RUN_FIELDS = {
    "all_prompts",
    "all_negative_prompts",
    "all_seeds",
    "all_subseeds",
    "extra_generation_params",
    "comments",
    "iteration",
    "job_timestamp",
}
_BATCH_FIELDS = {"prompts": "prompts", "negative_prompts": "negative_prompts", "seeds": "seeds", "subseeds": "subseeds"}
_RENAMED = {"image_mask": "mask"}  # A1111's name -> our request field


class ProcessingView:
    def __init__(self, request: GenerationRequest, run: Run | None = None, *, script_args=(), runner=None):
        state = {
            "_request": request,
            "_run": run,
            "_batch": None,
            "_runner": runner,  # process_images(p) calls runner(request, view) -> Processed
            "script_args": list(script_args),
            "_pending": {},  # run fields set before there is a run
        }
        self.__dict__.update(state)

    # -- what A1111's object also offers

    @property
    def is_img2img(self) -> bool:
        return isinstance(self.request, Img2ImgRequest)

    @property
    def request(self) -> GenerationRequest:
        return self._run.request if self._run is not None else self._request

    @property
    def sd_model(self):
        return self._run.model if self._run is not None else None

    @property
    def n_iter(self) -> int:
        return self.request.n_iter

    @property
    def batch_index(self) -> int:
        return self._run.iteration if self._run is not None else 0

    def set_batch(self, batch: Batch | None) -> None:
        self.__dict__["_batch"] = batch

    def attach(self, run: Run) -> None:
        """The generation this view's request became: fields set on the view before it started apply now."""
        self.__dict__["_run"] = run
        for name, value in self._pending.items():
            if name == "extra_generation_params":
                run.extra_generation_params.update(value)
            else:
                setattr(run, name, value)
        self._pending.clear()

    # -- attribute mapping

    def __getattr__(self, name: str) -> Any:
        run = self.__dict__["_run"]
        if name in _RUN_FIELDS:
            if run is not None:
                return getattr(run, name)
            pending = self.__dict__["_pending"]
            if name in pending:
                return pending[name]
            if name in ("extra_generation_params", "comments"):
                return pending.setdefault(name, {})
            return None  # A1111's p before process_images: not set yet
        if name in _BATCH_FIELDS:
            batch = self.__dict__["_batch"]
            return getattr(batch, _BATCH_FIELDS[name]) if batch is not None else None
        request = run.request if run is not None else self.__dict__["_request"]
        field = _RENAMED.get(name, name)
        if field in {f.name for f in dataclasses.fields(request)}:
            return getattr(request, field)
        raise AttributeError(f"A1111's processing object here has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).__dict__ and isinstance(type(self).__dict__[name], property):
            raise AttributeError(f"{name!r} cannot be set on the processing object")
        run = self.__dict__["_run"]
        if name in _RUN_FIELDS:
            if run is not None:
                setattr(run, name, value)
            else:
                self._pending[name] = value
            return
        request = run.request if run is not None else self.__dict__["_request"]
        field = _RENAMED.get(name, name)
        if field in {f.name for f in dataclasses.fields(request)}:
            setattr(request, field, value)
            return
        self.__dict__[name] = value  # the extension's own attribute


def fix_seed(p: ProcessingView) -> None:
    """A1111's processing.fix_seed(p): a random seed and variation seed in place of -1."""
    from sdui.core.rng import fix_seed as fixed

    p.seed, p.subseed = fixed(p.seed), fixed(p.subseed)
