"""The settings one job runs with: a frozen copy, taken when the job starts.

A change made in the Settings tab or through POST /sdapi/v1/options while a job runs applies to the next job, and a
request's `override_settings` live only in its own snapshot: the shared settings never change under a running job.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any


class Settings(Mapping[str, Any]):
    """Read-only mapping of setting key -> value; `settings.key` reads too. Mutable values are deep-copied in, so
    nothing a job holds can be changed from outside (or the other way round)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(copy.deepcopy(dict(values))))

    @classmethod
    def defaults(cls, **overrides: Any) -> Settings:
        """Our registered defaults (plus `overrides`): what a job sees on a fresh install."""
        from sdui.settings.definitions import builtin_registry

        registry = builtin_registry()
        values = registry.defaults()
        for key, value in overrides.items():
            values[key] = registry[key].validate(key, value) if key in registry else value
        return cls(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings of a job are read-only; change the shared settings for the next job instead")

    def __repr__(self) -> str:
        return f"Settings({len(self._values)} keys)"

    def replace(self, changes: Mapping[str, Any]) -> Settings:
        """A new snapshot with `changes` (already validated) on top."""
        return Settings({**self._values, **changes})
