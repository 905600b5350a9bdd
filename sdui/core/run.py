"""The state of one generation while it runs: what hooks see and may change (A1111's `p`, the parts it uses).

`Run` lives for one call of `process()`: the request (hooks may edit it in before_process), the job's frozen
settings, the model, and the per-image lists the core fills in step 1 (prompts, seeds) and then uses as hooks left
them. `Batch` is the slice of those lists one batch works on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdui.models.sd_model import SDModel
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings


@dataclass
class Run:
    request: GenerationRequest
    settings: Settings
    model: SDModel
    job_timestamp: str = ""
    all_prompts: list[str] = field(default_factory=list)
    all_negative_prompts: list[str] = field(default_factory=list)
    all_seeds: list[int] = field(default_factory=list)
    all_subseeds: list[int] = field(default_factory=list)
    # infotext entries added by hooks (A1111's p.extra_generation_params); written after the core's own keys
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    iteration: int = 0  # the batch being worked on
    # what hooks changed in the text encoders (the LoRA set merged into them): part of the conditioning cache key
    text_encoder_key: tuple = ()
    embeddings: Any = None  # the textual inversion embeddings that fit the model (EmbeddingDatabase), set by a hook
    face_restoration: str | None = None  # the restorer every image goes through (restore_faces), by name
    # what adds residuals to the UNet's skip connections in every pass (ControlNet units), set by a hook's process()
    residual_contributors: list = field(default_factory=list)


@dataclass
class Batch:
    index: int
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]

    def __len__(self) -> int:
        return len(self.seeds)
