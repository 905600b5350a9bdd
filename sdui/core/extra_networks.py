"""Extra networks named in prompts, applied for each batch: `<lora:name:multiplier>` (also `<lyco:...>`),
`<lora:name:te:unet>` and the named `te=` / `unet=`; as in A1111 the tags of the batch's first prompt and first
negative prompt count, and the text encoders never see the tags (sdui.text.extra_networks).

The hook runs where A1111 activates extra networks: after process_batch, before the prompts are encoded. It writes
"Lora hashes" into the infotext and tells the user about a name it cannot find or a file that does not fit.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sdui.core import lora
from sdui.core.hooks import ProcessingHooks
from sdui.models.hashes import HashCache
from sdui.models.lora_files import find_lora, list_loras
from sdui.text.extra_networks import NetworkUse, parse_tags

log = logging.getLogger(__name__)
KINDS = ("lora", "lyco")


def multipliers(use: NetworkUse) -> tuple[float, float]:
    """(text encoder, UNet) multipliers of a tag: A1111's positional te, unet and named te=, unet=; the UNet's
    defaults to the text encoder's."""
    args, named = use.positional, use.named
    te = float(named.get("te", args[1] if len(args) > 1 and args[1] else 1.0))
    unet = float(named.get("unet", args[2] if len(args) > 2 and args[2] else te))
    return te, unet


class ExtraNetworks(ProcessingHooks):
    def __init__(self, lora_dir: Path, hash_cache: HashCache | None = None):
        self.lora_dir = Path(lora_dir)
        self.hash_cache = hash_cache
        self._files: list = []

    def before_process(self, run) -> None:
        self._files = list_loras(self.lora_dir)  # once per job: a file dropped in is found by the next job

    def process_batch(self, run, batch) -> None:
        uses = []
        for text in batch.prompts[:1] + batch.negative_prompts[:1]:
            uses += [u for u in parse_tags(text)[1] if u.kind in KINDS]
        wanted, used, missing = [], [], []
        for use in uses:
            found = find_lora(self._files, use.name)
            if found is None:
                missing.append(use.name)
                continue
            try:
                te, unet = multipliers(use)
            except ValueError:
                _tell(run, f"Lora {use.name}: the multipliers in {':'.join(use.positional)!r} are not numbers")
                continue
            wanted.append((found.path, te, unet))
            used.append((use.name, found))
        if missing:
            _tell(run, f"Networks not found: {', '.join(missing)}")
        report = lora.activate(run.model, wanted)
        for message in report.skipped:
            _tell(run, message)
        run.text_encoder_key = tuple(wanted)
        hashes = []
        for mentioned, found in used:
            if found.path.name in report.names:
                alias = mentioned.replace(":", "").replace(",", "")
                hashes.append(f"{alias}: {found.shorthash(self.hash_cache)}")
        if hashes:
            run.extra_generation_params["Lora hashes"] = ", ".join(hashes)


def _tell(run, message: str) -> None:
    if message not in run.comments:
        log.warning("%s", message)
        run.comments[message] = message
