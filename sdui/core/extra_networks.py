"""Extra networks for each job: the textual inversion embeddings of the embeddings folder that fit the model (the
encoder puts their vectors where their names stand), and the networks prompts name, applied for each batch:
`<lora:name:multiplier>` (also `<lyco:...>`), `<lora:name:te:unet>` and the named `te=` / `unet=`. As in A1111
the tags of the batch's first prompt and first negative prompt count, and the text encoders never see the tags
(sdui.text.extra_networks).

The LoRA step runs where A1111 activates extra networks: after process_batch, before the prompts are encoded. It
writes "Lora hashes" into the infotext and tells the user about a name it cannot find or a file that does not fit.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from sdui.core import lora
from sdui.core.hooks import ProcessingHooks
from sdui.infotext import parse_infotext
from sdui.models.embeddings import load_embeddings
from sdui.models.files import list_files
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
    def __init__(
        self,
        lora_dir: Path,
        embeddings_dir: Path | None = None,
        hash_cache: HashCache | None = None,
        hypernetwork_dir: Path | None = None,
    ):
        self.lora_dir = Path(lora_dir)
        self.hypernetwork_dir = Path(hypernetwork_dir) if hypernetwork_dir is not None else None
        self.embeddings_dir = Path(embeddings_dir) if embeddings_dir is not None else None
        self.hash_cache = hash_cache
        self._files: list = []
        self._hypernetwork_files: dict = {}

    def before_process(self, run) -> None:
        # once per job: a file dropped in is found by the next job
        self._files = list_loras(self.lora_dir)
        folder = self.hypernetwork_dir
        self._hypernetwork_files = {p.stem: p for p in list_files(folder, (".pt",))} if folder is not None else {}
        if self.embeddings_dir is not None:
            run.embeddings = embeddings_for(run.model, self.embeddings_dir, self.hash_cache)

    def process_batch(self, run, batch) -> None:
        self._activate(run, batch.prompts[:1] + batch.negative_prompts[:1])

    def before_hires(self, run, batch) -> None:
        """The second pass uses the networks of the hires prompts when they differ from the first pass's (A1111)."""
        request = run.request
        hr_prompt = request.hr_prompt or request.prompt
        hr_negative = request.hr_negative_prompt or request.negative_prompt
        if (hr_prompt, hr_negative) != (request.prompt, request.negative_prompt):
            self._activate(run, [hr_prompt, hr_negative])

    def _activate(self, run, texts: list[str]) -> None:
        every = []
        for text in texts:
            every += parse_tags(text)[1]
        self._hypernetworks(run, [u for u in every if u.kind == "hypernet"])
        uses = [u for u in every if u.kind in KINDS]
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
        if hashes and run.settings.lora_add_hashes_to_infotext:
            run.extra_generation_params["Lora hashes"] = ", ".join(hashes)

    def _hypernetworks(self, run, uses: list[NetworkUse]) -> None:
        from sdui.core.hypernetworks import activate_hypernetworks

        files = self._hypernetwork_files
        wanted, missing = [], []
        for use in uses:
            if use.name not in files:
                missing.append(use.name)
                continue
            try:
                wanted.append((files[use.name], float(use.positional[1]) if len(use.positional) > 1 else 1.0))
            except ValueError:
                _tell(run, f"Hypernetwork {use.name}: the multiplier {use.positional[1]!r} is not a number")
        if missing:
            _tell(run, f"Hypernetworks not found: {', '.join(missing)}")
        for message in activate_hypernetworks(run.model, wanted):
            _tell(run, message)


def embeddings_for(model, folder: Path, hash_cache: HashCache | None = None):
    """The embeddings of `folder` that fit `model`, read again only when a file there changed."""
    signature = _folder_signature(folder)
    cached = model.applied.get("embeddings")
    if cached is not None and cached[0] == signature:
        return cached[1]
    db = load_embeddings(folder, model)
    for embedding in db.loaded.values():
        embedding.shorthash(hash_cache)
    model.applied["embeddings"] = (signature, db)
    return db


def _folder_signature(folder: Path) -> tuple:
    found = []
    for root, _, files in os.walk(folder, followlinks=True):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            found.append((root, name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


def _tell(run, message: str) -> None:
    if message not in run.comments:
        log.warning("%s", message)
        run.comments[message] = message


def relink_lora_tags(infotext: str, files: list, cache: HashCache | None) -> str:
    """An infotext whose `<lora:alias:` tags name, where "Lora hashes" allows, the local file with that hash (A1111's
    paste: a LoRA renamed on this machine is still found). Only hashes already computed are looked up."""
    listed = str(parse_infotext(infotext, defaults=False).get("Lora hashes") or "")
    wanted = {}
    for entry in listed.split(","):
        alias, sep, shorthash = entry.partition(":")
        if sep:
            wanted[alias.strip()] = shorthash.strip()
    if not wanted or cache is None:
        return infotext
    by_hash = {}
    for f in files:
        try:
            value = cache.get(f"lora/{f.name}", os.path.getmtime(f.path))
        except OSError:
            continue
        if value:
            by_hash[value[:12]] = f

    def local(match: re.Match) -> str:
        found = by_hash.get(wanted.get(match[1], ""))
        return f"<lora:{found.alias}:" if found is not None else match[0]

    return re.sub(r"<lora:([^:>]+):", local, infotext)
