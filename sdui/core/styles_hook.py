"""Prompt styles named by a request (A1111's `styles` field and the UI's style picker), applied before anything
else sees the prompts, as A1111 does in process_images: the styled prompt is what is encoded, written into the
infotext and saved (A1111 1.6+ recognises the styles back out of a pasted prompt). The hires prompt, when set,
gets the same styles."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from sdui.core.hooks import ProcessingHooks
from sdui.text.styles import apply_styles, merge_prompts, read_styles

log = logging.getLogger(__name__)


class PromptStyles(ProcessingHooks):
    def __init__(self, style_files: tuple[Path, ...]):
        self.style_files = tuple(style_files)

    def before_process(self, run) -> None:
        request = run.request
        if not request.styles:
            return
        styles = read_styles(self.style_files)  # per job: an edited styles.csv counts at once
        prompt, negative, missing = apply_styles(request.prompt, request.negative_prompt, request.styles, styles)
        changes = {"prompt": prompt, "negative_prompt": negative}
        by_name = {s.name: s for s in styles}
        for field, kind in (("hr_prompt", "prompt"), ("hr_negative_prompt", "negative_prompt")):
            value = getattr(request, field, None)
            if value:
                for name in request.styles:
                    value = merge_prompts(getattr(by_name[name], kind) if name in by_name else "", value)
                changes[field] = value
        run.request = dataclasses.replace(request, **changes)
        if missing:
            message = f"Styles not found: {', '.join(missing)}"
            log.warning("%s", message)
            run.comments[message] = message
