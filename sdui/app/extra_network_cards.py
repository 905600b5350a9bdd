"""What the extra networks cards show, per kind (A1111's Textual Inversion, Hypernetworks, Checkpoints, Lora): a
card's name, the text a click puts into the prompt, its preview image and its user metadata.

User metadata is A1111's `<file stem>.json` beside the file ("description", "activation text", "preferred weight",
"notes"); the preview is `<stem>.preview.png` (or .png/.jpg/.jpeg/.webp, also with .preview) beside it. A preview
is served only for a card that is listed, looked up by kind and name: a client never names a path.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sdui.models.files import list_files

log = logging.getLogger(__name__)
KINDS = ("textual_inversion", "hypernetworks", "checkpoints", "lora")
TITLES = {
    "textual_inversion": "Textual Inversion",
    "hypernetworks": "Hypernetworks",
    "checkpoints": "Checkpoints",
    "lora": "Lora",
}
PREVIEW_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Card:
    kind: str
    name: str
    path: Path
    prompt: str = ""  # what a click adds to the prompt ("" for checkpoints: a click selects the model)
    description: str = ""
    preview: Path | None = None
    metadata: dict = field(default_factory=dict)
    folder: str = ""  # the subfolder it lies in, below its kind's folder ("" at the top)

    @property
    def mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


def user_metadata(path: Path) -> dict:
    """A1111's user metadata of a network file (`<stem>.json`); {} when there is none or it cannot be read."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("Cannot read %s: %s", meta, e)
        return {}
    return data if isinstance(data, dict) else {}


def preview_of(path: Path) -> Path | None:
    stem = path.with_suffix("")
    for suffix in PREVIEW_SUFFIXES:
        candidate = Path(f"{stem}{suffix}")
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def lora_prompt(name: str, meta: dict, default_multiplier: float = 1.0) -> str:
    """`<lora:name:weight>` with the preferred weight (when set) and the activation text, as A1111's card inserts."""
    weight = meta.get("preferred weight") or default_multiplier
    tag = f"<lora:{name}:{float(weight):g}>"
    activation = str(meta.get("activation text") or "").strip()
    return f"{tag} {activation}" if activation else tag


def cards(ctx, kind: str) -> list[Card]:
    """The cards of `kind`, sorted by name."""
    paths = ctx.paths
    multiplier = float(ctx.options.get("extra_networks_default_multiplier") or 1.0)
    found: list[Card] = []
    if kind == "lora":
        from sdui.models.lora_files import list_loras

        for f in list_loras(paths.lora_dir):
            meta = user_metadata(f.path)
            found.append(
                Card(
                    kind,
                    f.name,
                    f.path,
                    lora_prompt(f.alias if _use_alias(ctx) else f.name, meta, multiplier),
                    str(meta.get("description") or ""),
                    preview_of(f.path),
                    meta,
                )
            )
    elif kind == "hypernetworks":
        for p in list_files(paths.hypernetwork_dir, (".pt",)):
            meta = user_metadata(p)
            found.append(
                Card(
                    kind,
                    p.stem,
                    p,
                    f"<hypernet:{p.stem}:{float(meta.get('preferred weight') or multiplier):g}>",
                    str(meta.get("description") or ""),
                    preview_of(p),
                    meta,
                )
            )
    elif kind == "textual_inversion":
        for p in list_files(paths.embeddings_dir, (".pt", ".bin", ".safetensors")):
            meta = user_metadata(p)
            found.append(Card(kind, p.stem, p, p.stem, str(meta.get("description") or ""), preview_of(p), meta))
    elif kind == "checkpoints":
        for info in ctx.store.checkpoints:
            p = Path(info.filename)
            meta = user_metadata(p)
            found.append(Card(kind, info.title, p, "", str(meta.get("description") or ""), preview_of(p), meta))
    roots = {
        "lora": paths.lora_dir,
        "hypernetworks": paths.hypernetwork_dir,
        "textual_inversion": paths.embeddings_dir,
        "checkpoints": None,
    }
    for card in found:
        card.folder = _folder(card.path, [roots[kind]] if roots[kind] else list(paths.ckpt_dirs))
    return sorted(found, key=lambda c: c.name.lower())


def _folder(path: Path, roots: list[Path]) -> str:
    for root in roots:
        try:
            relative = path.parent.resolve().relative_to(Path(root).resolve())
        except ValueError:
            continue
        return "" if str(relative) == "." else relative.as_posix()
    return ""


def _use_alias(ctx) -> bool:
    return (ctx.options.get("lora_preferred_name") or "Alias from file") == "Alias from file"


def find_preview(ctx, kind: str, name: str) -> Path | None:
    if kind not in KINDS:
        return None
    card = next((c for c in cards(ctx, kind) if c.name == name), None)
    return card.preview if card is not None else None


def save_user_metadata(ctx, kind: str, name: str, changes: dict) -> Path:
    """Merge `changes` into the user metadata (`<stem>.json`) of card `name`, written atomically; other keys are
    kept. A name that is not listed is refused (a client never names a path)."""
    from sdui.atomic import write_text_atomic
    from sdui.errors import InvalidRequestError

    card = next((c for c in cards(ctx, kind) if c.name == name), None) if kind in KINDS else None
    if card is None:
        raise InvalidRequestError(f"No {TITLES.get(kind, kind)} named {name!r}; press 🔄 and pick one from the list.")
    data = {**card.metadata, **changes}
    path = card.path.with_suffix(".json")
    write_text_atomic(path, json.dumps(data, indent=4, ensure_ascii=False))
    return path
