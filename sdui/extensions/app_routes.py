"""Extensions' own HTTP routes: script_callbacks.on_app_started(fn(demo, app)) is where A1111 extensions add
them. They get the FastAPI app through a thin wrapper whose route-adding methods put our API's password check
(--api-auth) in front of every route they add, so an extension's route is guarded like ours."""

from __future__ import annotations

from typing import Any

from sdui.extensions import registry

_ROUTE_METHODS = ("get", "post", "put", "delete", "patch", "options", "head", "api_route", "add_api_route")


class GuardedApp:
    """The FastAPI app as extensions see it: routes they add carry `dependencies`."""

    def __init__(self, app, dependencies: list):
        self.__dict__.update(_app=app, _dependencies=list(dependencies))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._app, name)
        if name in _ROUTE_METHODS:
            return self._guarded(attribute)
        if name == "include_router":
            return lambda router, **kw: attribute(router, **{**kw, "dependencies": self._with(kw)})
        return attribute

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._app, name, value)

    def _with(self, kwargs: dict) -> list:
        return [*self._dependencies, *(kwargs.get("dependencies") or [])]

    def _guarded(self, method):
        def add(*args, **kwargs):
            return method(*args, **{**kwargs, "dependencies": self._with(kwargs)})

        return add


def run_app_started(demo, app, dependencies: list) -> None:
    """Call every on_app_started callback with (demo, the guarded app); demo is None without the UI."""
    if registry.callbacks("app_started"):
        registry.call("app_started", demo, GuardedApp(app, dependencies) if dependencies else app)
