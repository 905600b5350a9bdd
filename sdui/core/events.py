"""How the core reports progress and learns that it should stop: one small interface, which a job implements.

The core never reads or writes a job's attributes: it calls these methods. `process()` announces its batches; a
job that runs several requests (X/Y/Z, scripts) sees their batches add up, so "batch N of M" covers all of them.
"""

from __future__ import annotations

from typing import Protocol

from PIL import Image


class ProgressEvents(Protocol):
    def add_batches(self, count: int, steps_per_batch: int) -> None:
        """`count` more batches of `steps_per_batch` sampling steps each are coming."""

    def step_done(self, step: int, steps: int) -> None:
        """`step` of the current batch's `steps` is done."""

    def step_part_done(self, fraction: float) -> None:
        """About `fraction` (0..1) of the step under way is done: on a slow machine one step can take minutes,
        and this lets the job give an ETA before the first step ends."""

    def batch_done(self) -> None:
        """The current batch is finished (decoded, described, saved); a skip request applied to it is cleared."""

    def preview(self, image: Image.Image) -> None:
        """A live preview of the current batch."""

    def interrupted(self) -> bool:
        """Stop the whole job after the current step."""

    def skipped(self) -> bool:
        """Stop the current batch after the current step."""


class NoEvents:
    """For a generation outside any job (tests, scripts): nobody watches, nothing stops it."""

    def add_batches(self, count: int, steps_per_batch: int) -> None:
        pass

    def step_done(self, step: int, steps: int) -> None:
        pass

    def step_part_done(self, fraction: float) -> None:
        pass

    def batch_done(self) -> None:
        pass

    def preview(self, image: Image.Image) -> None:
        pass

    def interrupted(self) -> bool:
        return False

    def skipped(self) -> bool:
        return False
