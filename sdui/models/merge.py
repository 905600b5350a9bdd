"""Checkpoint merging, as A1111's Checkpoint Merger does it (modules/extras.py run_modelmerger, v1.10).

  No interpolation   A                  (convert the format, bake in a VAE, prune, cast to float16)
  Weighted sum       (1 - M) * A + M * B
  Add difference     A + (B - C) * M

Only A's keys make the result. A key is merged when its name contains "model" (A1111's rule: the UNet, text
encoders, VAE and EMA weights; not the noise schedule buffers) and B (and C) has it; a key missing there keeps A's
value, and so do integer tensors (position ids), which cannot be interpolated. Old SD1 files that lack the
".text_model" level are renamed as A1111 renames them, so they merge with new ones. An inpainting (9 input
channels) or instruct-pix2pix (8) A merged with a normal B gets only its first 4 UNet input channels merged, and
".inpainting" / ".instruct-pix2pix" in its name; any other shape difference is refused, naming the key.

The inputs are read one tensor at a time (safetensors' safe_open; .ckpt through the loader's memory-mapped
torch.load), so peak memory is about one model: the result. It is written atomically into the checkpoint folder,
under a new name when the wanted one is taken (a merge never overwrites a file).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.atomic import remove_stale_temp_files, write_file_atomic
from sdui.errors import CheckpointError, InvalidRequestError
from sdui.models.detection import detect_arch, yaml_beside
from sdui.models.discovery import CHECKPOINT_EXTENSIONS, CheckpointInfo, calculate_shorthash, read_safetensors_metadata
from sdui.models.hashes import HashCache
from sdui.models.loading import read_state_dict
from sdui.models.unet_vae_loading import VAE_PREFIX

log = logging.getLogger(__name__)

NO_INTERPOLATION, WEIGHTED_SUM, ADD_DIFFERENCE = "No interpolation", "Weighted sum", "Add difference"
METHODS = (NO_INTERPOLATION, WEIGHTED_SUM, ADD_DIFFERENCE)
FORMATS = ("ckpt", "safetensors")
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")  # "Copy config from": the .yaml beside a model (our loader reads it)
NO_VAE = "None"

MAX_NAME_BYTES = 200  # of the file name's stem; file systems allow 255 bytes for the whole name
MAX_REGEX = 1000
MAX_METADATA_JSON = 1_000_000
MAX_RENAMES = 1000
_NOT_IN_NAMES = set('/\\<>:"|?*') | {chr(c) for c in range(32)} | {"\x7f"}
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}

# A1111 renames the text encoder keys of SD1 files written before transformers added the ".text_model" level
_SD1_RENAMES = tuple(
    (f"cond_stage_model.transformer.{part}.", f"cond_stage_model.transformer.text_model.{part}.")
    for part in ("embeddings", "encoder", "final_layer_norm")
)
# what A1111 leaves out of a VAE file (training leftovers)
_VAE_IGNORED = ("loss", "model_ema.decay", "model_ema.num_updates")
_VAE_CHECK_KEY = "decoder.conv_in.weight"
_EXTRA_CHANNELS = {9: "inpainting", 8: "instruct-pix2pix"}  # UNet input channels of A's variants -> name mark


@dataclass(frozen=True)
class MergeRequest:
    """What the Checkpoint Merger tab asks for: names of checkpoints (any of their list names: title, file name,
    hash) and of a VAE file, the rest as A1111's widgets give it."""

    primary: str
    secondary: str | None = None
    tertiary: str | None = None
    method: str = WEIGHTED_SUM
    multiplier: float = 0.3
    save_as_half: bool = False
    custom_name: str = ""
    checkpoint_format: str = "safetensors"
    config_source: int = 0  # index into CONFIG_SOURCES (A1111's radio is type="index")
    bake_in_vae: str = NO_VAE
    discard_weights: str = ""
    save_metadata: bool = True
    add_merge_recipe: bool = True
    copy_metadata_fields: bool = True
    metadata_json: str = "{}"


@dataclass
class MergeResult:
    path: Path  # the file written
    wanted: str  # the file name asked for; differs from path.name when that name was taken
    taken_by: Path | None  # the file that held the wanted name
    merged_keys: int  # tensors computed from more than A
    saved_keys: int  # tensors in the file
    discarded_keys: list[str] = field(default_factory=list)
    baked_vae_keys: int = 0
    config: Path | None = None  # the .yaml copied beside the result
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def renamed(self) -> bool:
        return self.taken_by is not None


Progress = Callable[[str, int, int], None]  # (what, done, total)


# ---- names and choices -------------------------------------------------------------------------------------------
def find_exact(checkpoints: list[CheckpointInfo], name: str | None, role: str) -> CheckpointInfo:
    """The checkpoint one of whose list names is exactly `name` (never a guess: a merge writes a file)."""
    if name:
        for info in checkpoints:
            if name in info.ids:
                return info
    known = ", ".join(info.title for info in checkpoints[:20]) + (", ..." if len(checkpoints) > 20 else "")
    if not name:
        raise InvalidRequestError(f"Choose the {role}. Checkpoints: {known or 'none (put one into the folder)'}.")
    raise InvalidRequestError(
        f"{role} {name!r} is not in the checkpoint list; choose one of: {known}. If you just added it, press refresh."
    )


def resolve_vae(name: str | None, vae_files: dict[str, Path]) -> Path | None:
    if not name or name == NO_VAE:
        return None
    if name in vae_files:
        return vae_files[name]
    known = ", ".join(sorted(vae_files)) or "none (put VAE files into models/VAE)"
    raise InvalidRequestError(f"VAE {name!r} is not in the VAE list; choose None or one of: {known}.")


def _used_models(request: MergeRequest, checkpoints: list[CheckpointInfo]) -> tuple:
    if request.method not in METHODS:
        raise InvalidRequestError(f"Unknown interpolation method {request.method!r}; use one of: {', '.join(METHODS)}.")
    a = find_exact(checkpoints, request.primary, "Primary model (A)")
    b = c = None
    if request.method != NO_INTERPOLATION:
        b = find_exact(checkpoints, request.secondary, "Secondary model (B)")
    if request.method == ADD_DIFFERENCE:
        c = find_exact(checkpoints, request.tertiary, "Tertiary model (C)")
    return a, b, c


def default_name(
    method: str, multiplier: float, a: CheckpointInfo, b: CheckpointInfo | None, c: CheckpointInfo | None
) -> str:
    """A1111's file name (without extension) when no custom name is given."""
    if method == WEIGHTED_SUM:
        return f"{round(1 - multiplier, 2)}({a.model_name}) + {round(multiplier, 2)}({b.model_name})"
    if method == ADD_DIFFERENCE:
        return f"{a.model_name} + {round(multiplier, 2)}({b.model_name} - {c.model_name})"
    return a.model_name


def check_custom_name(name: str) -> str:
    """The custom name as a file name stem in the checkpoint folder; refused when it would name another folder, a
    hidden file or something a file system cannot hold. A checkpoint extension typed with it is dropped."""
    stem = (name or "").strip()
    for ext in CHECKPOINT_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)].rstrip()
    bad = sorted({ch for ch in stem if ch in _NOT_IN_NAMES})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise InvalidRequestError(
            f"The custom name {name!r} contains {shown}: give a plain file name (no folders, "
            "none of / \\ < > : \" | ? *); the checkpoint is always saved in the checkpoint "
            "folder."
        )
    if stem.startswith("."):
        raise InvalidRequestError(
            f"The custom name {name!r} starts with '.': such files are hidden and not listed; "
            "choose a name that starts with a letter or digit."
        )
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise InvalidRequestError(f"The custom name {name!r} is a reserved device name on Windows; choose another.")
    if len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidRequestError(
            f"The custom name is too long ({len(stem.encode('utf-8'))} bytes); use at most {MAX_NAME_BYTES}."
        )
    return stem


def _fit_default(stem: str) -> str:
    """A1111's default names of long model names can pass the file systems' limit: shorten them."""
    stem = "".join("_" if ch in _NOT_IN_NAMES else ch for ch in stem).lstrip(".") or "merged"
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem


def taken_by(folder: Path, base: str) -> Path | None:
    """The file that holds the name `base` in `folder`: a checkpoint of either format (both would be listed as one
    model name) or a .yaml (our loader would read it as the new checkpoint's config)."""
    return next((p for p in (folder / (base + e) for e in (*CHECKPOINT_EXTENSIONS, ".yaml")) if p.exists()), None)


def free_name(folder: Path, stem: str, mark: str, ext: str) -> Path:
    """`<stem><mark>.<ext>` in `folder`, or `<stem>-N<mark>.<ext>` with the first free N: a merge never replaces a
    file."""
    for n in range(MAX_RENAMES + 1):
        base = f"{stem}-{n}{mark}" if n else f"{stem}{mark}"
        if taken_by(folder, base) is None:
            return folder / f"{base}.{ext}"
    raise InvalidRequestError(
        f"{stem}{mark}.{ext} and {MAX_RENAMES} numbered variants of it exist already in "
        f"{folder}; choose another custom name."
    )


# ---- reading ------------------------------------------------------------------------------------------------------
def a1111_key(key: str) -> str:
    for old, new in _SD1_RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


class _Source:
    """One input checkpoint read a tensor at a time, under A1111's key names."""

    def __init__(self, info: CheckpointInfo, stack: ExitStack):
        from safetensors import safe_open

        path = Path(info.filename)
        self.name = path.name
        if not path.is_file():
            raise CheckpointError(f"Checkpoint not found: {path}. Press refresh and choose an existing file.")
        if path.suffix.lower() == ".safetensors":
            try:
                handle = stack.enter_context(safe_open(str(path), framework="pt", device="cpu"))
            except Exception as e:  # noqa: BLE001 - safetensors reports damaged headers with its own error types
                raise CheckpointError(
                    f"Cannot read the checkpoint {path.name}: not a valid safetensors file ({e}). "
                    "It is damaged or incomplete; re-download it."
                ) from None
            names, self._read, self.pickled = list(handle.keys()), handle.get_tensor, False
        else:
            tensors = read_state_dict(path)  # torch.load(weights_only=True), memory-mapped where the format allows
            names, self._read, self.pickled = list(tensors), tensors.__getitem__, True
        self.keys = {a1111_key(n): n for n in names}

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str) -> torch.Tensor:
        return self._read(self.keys[key])

    def keep(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor of this file as it goes into the result: a pickle's tensors may share storage or be strided,
        which safetensors cannot save, so they are copied."""
        return tensor.clone(memory_format=torch.contiguous_format) if self.pickled else tensor

    def arch(self) -> str | None:
        try:
            return detect_arch(dict.fromkeys(self.keys))
        except CheckpointError:
            return None  # not an SD checkpoint we know: the shape checks still guard the merge


def _same_arch(sources: dict[str, _Source]) -> None:
    archs = {role: src.arch() for role, src in sources.items()}
    known = {role: arch for role, arch in archs.items() if arch}
    if len(set(known.values())) > 1:
        said = ", ".join(f"{role} ({sources[role].name}) is {arch}" for role, arch in known.items())
        raise CheckpointError(f"The models are of different architectures: {said}. Merge models of one architecture.")


# ---- the arithmetic ------------------------------------------------------------------------------------------------
def _mergeable(key: str, tensor: torch.Tensor) -> bool:
    return "model" in key and tensor.is_floating_point()


def _combine(key: str, a: torch.Tensor, b: torch.Tensor, fn, what: str) -> tuple[torch.Tensor, str]:
    """fn(a, b); an inpainting/instruct-pix2pix A with a normal B: only the 4 channels both have (A's dtype kept, as
    A1111 writes into A's tensor). Returns (tensor, name mark)."""
    if a.shape == b.shape:
        return fn(a, b), ""
    channels_differ = a.ndim == b.ndim == 4 and a.shape[0] == b.shape[0] and a.shape[2:] == b.shape[2:]
    if channels_differ and a.shape[1] in _EXTRA_CHANNELS and b.shape[1] == 4:
        out = a.clone()
        out[:, :4] = fn(a[:, :4], b)
        return out, "." + _EXTRA_CHANNELS[a.shape[1]]
    if channels_differ and a.shape[1] == 4 and b.shape[1] in _EXTRA_CHANNELS:
        kind = _EXTRA_CHANNELS[b.shape[1]]
        raise CheckpointError(
            f"When merging an {kind} model with a normal one, A must be the {kind} model "
            f"({key}: A has {a.shape[1]} input channels, {what} {b.shape[1]}). Swap the models."
        )
    raise CheckpointError(
        f"Cannot merge {key}: A has shape {tuple(a.shape)}, {what} {tuple(b.shape)}. The models "
        "have different architectures; merge models of one kind."
    )


# A1111's arithmetic, rounding for rounding, with as few temporary tensors as it allows: freed temporaries of
# every key fragment the C heap, and the peak grows to about two models instead of one (bench/bench_merge.py)
def weighted_sum(x: torch.Tensor, y: torch.Tensor, m: float) -> torch.Tensor:
    """(1 - m) * x + m * y"""
    out = torch.mul(x, 1 - m).to(torch.promote_types(x.dtype, y.dtype))
    out += torch.mul(y, m)
    return out


def add_difference(x: torch.Tensor, d: torch.Tensor, m: float) -> torch.Tensor:
    """x + m * d, consuming d (B - C, made for this key)"""
    d.mul_(m)
    if d.dtype == torch.promote_types(x.dtype, d.dtype):
        return d.add_(x)  # d + x is x + d, bit for bit
    return x + d


def _merge_key(key: str, a: torch.Tensor, b_src: _Source | None, c_src: _Source | None, m: float):
    """A's tensor merged with B (and C) at this key, or None where A's value stays."""
    if b_src is None or key not in b_src or not _mergeable(key, a):
        return None
    if c_src is None:
        return _combine(key, a, b_src.get(key), lambda x, y: weighted_sum(x, y, m), "B")
    if key not in c_src:
        return None  # A1111: B - C counts as 0 where C lacks the key, so A stays
    b, c = b_src.get(key), c_src.get(key)
    if b.shape != c.shape:
        raise CheckpointError(
            f"Cannot subtract C from B at {key}: B has shape {tuple(b.shape)}, C "
            f"{tuple(c.shape)}. B and C must be models of the same kind."
        )
    return _combine(key, a, b - c, lambda x, d: add_difference(x, d, m), "B - C")


def _to_half(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.half() if tensor.dtype == torch.float32 else tensor


def read_vae_weights(path: Path) -> dict[str, torch.Tensor]:
    """A VAE file's weights under their names inside first_stage_model (with or without that prefix in the file)."""
    sd = read_state_dict(path)
    if any(k.startswith(VAE_PREFIX) for k in sd):
        sd = {k[len(VAE_PREFIX) :]: v for k, v in sd.items() if k.startswith(VAE_PREFIX)}
    sd = {k: v for k, v in sd.items() if not k.startswith(_VAE_IGNORED)}
    if _VAE_CHECK_KEY not in sd:
        raise CheckpointError(f"{path.name} is not a VAE in the original (LDM) layout; choose another VAE file.")
    return sd


def _bake_vae(out: dict, path: Path, half: bool) -> int:
    replaced = 0
    for key, tensor in read_vae_weights(path).items():
        target = VAE_PREFIX + key
        if target not in out:
            continue
        if out[target].shape != tensor.shape:
            raise CheckpointError(
                f"The VAE {path.name} does not fit the model: {target} has shape "
                f"{tuple(out[target].shape)} in the model, {tuple(tensor.shape)} in the VAE file."
            )
        tensor = tensor.clone(memory_format=torch.contiguous_format)  # a pickled VAE's tensors may share storage
        out[target] = _to_half(tensor) if half else tensor
        replaced += 1
    if not replaced:
        raise CheckpointError(f"The merged model has no VAE weights for {path.name} to replace; choose None.")
    return replaced


# ---- metadata ------------------------------------------------------------------------------------------------------
def parse_metadata_json(text: str) -> dict:
    text = (text or "").strip() or "{}"
    if len(text) > MAX_METADATA_JSON:
        raise InvalidRequestError(
            f"The metadata JSON is too long ({len(text)} characters); use at most {MAX_METADATA_JSON}."
        )
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidRequestError(f"The metadata is not valid JSON ({e}); fix it or clear it to {{}}.") from None
    if not isinstance(value, dict):
        raise InvalidRequestError("The metadata JSON must be an object ({\"key\": \"value\", ...}).")
    return value


def metadata_of(infos) -> dict:
    """The safetensors metadata of the models, later ones winning (A1111's "Copy metadata from merged models")."""
    merged = {}
    for info in infos:
        if info is not None and info.is_safetensors:
            merged.update(read_safetensors_metadata(info.filename))
    return merged


def build_metadata(request: MergeRequest, models: dict, user: dict, marks: set[str], hash_of) -> dict[str, str]:
    """The result's safetensors metadata as A1111 writes it: copied fields, the user's JSON, format "pt", and the
    merge recipe with every merged model (and the models they were merged from) by sha256."""
    a, b, c = models["A"], models["B"], models["C"]
    metadata = metadata_of((a, b, c)) if request.copy_metadata_fields else {}
    metadata.update(user)
    metadata["format"] = "pt"
    if request.add_merge_recipe:
        recipe = {
            "type": "webui",
            "primary_model_hash": hash_of(a),
            "secondary_model_hash": hash_of(b) if b else None,
            "tertiary_model_hash": hash_of(c) if c else None,
            "interp_method": request.method,
            "multiplier": request.multiplier,
            "save_as_half": request.save_as_half,
            "custom_name": request.custom_name,
            "config_source": request.config_source,
            "bake_in_vae": request.bake_in_vae,
            "discard_weights": request.discard_weights,
            "is_inpainting": ".inpainting" in marks,
            "is_instruct_pix2pix": ".instruct-pix2pix" in marks,
        }
        merge_models = {}
        for info in (a, b, c):
            if info is None:
                continue
            own = read_safetensors_metadata(info.filename) if info.is_safetensors else {}
            merge_models[hash_of(info)] = {
                "name": info.name,
                "legacy_hash": info.hash,
                "sd_merge_recipe": own.get("sd_merge_recipe"),
            }
            parents = own.get("sd_merge_models")
            if isinstance(parents, dict):
                merge_models.update(parents)
        metadata["sd_merge_recipe"] = json.dumps(recipe)
        metadata["sd_merge_models"] = json.dumps(merge_models)
    # safetensors keeps strings only: fields read back as JSON objects are written as JSON again
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def _config_to_copy(source: int, a, b, c) -> Path | None:
    """A1111's "Copy config from": the .yaml beside A, B or C (the first there is), beside B, beside C, or none."""
    candidates = {0: (a, b, c), 1: (b,), 2: (c,)}.get(source, ())
    for info in candidates:
        if info is not None and (found := yaml_beside(info.filename)):
            return found
    return None


# ---- the merge -----------------------------------------------------------------------------------------------------
def _check(request: MergeRequest) -> tuple[float, re.Pattern | None, dict]:
    """Everything about the request that can be refused before a file is opened."""
    if request.checkpoint_format not in FORMATS:
        raise InvalidRequestError(
            f"Checkpoint format {request.checkpoint_format!r} is unknown; use safetensors or ckpt."
        )
    try:
        m = float(request.multiplier)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"The multiplier must be a number, not {request.multiplier!r}.") from None
    if not (math.isfinite(m) and 0 <= m <= 1):
        raise InvalidRequestError(f"The multiplier (M) must be between 0 and 1, not {request.multiplier!r}.")
    if request.config_source not in range(len(CONFIG_SOURCES)):
        raise InvalidRequestError(f"Copy config from: choose one of {', '.join(CONFIG_SOURCES)}.")
    pattern = None
    if request.discard_weights:
        if len(request.discard_weights) > MAX_REGEX:
            raise InvalidRequestError(f"The discard pattern is too long; use at most {MAX_REGEX} characters.")
        try:
            pattern = re.compile(request.discard_weights)
        except re.error as e:
            raise InvalidRequestError(
                f"Discard weights with matching name: {request.discard_weights!r} is not a "
                f"valid regular expression ({e})."
            ) from None
    user = parse_metadata_json(request.metadata_json) if request.save_metadata else {}
    return m, pattern, user


def _save(tensors: dict, path: Path, fmt: str, metadata: dict) -> None:
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(path), metadata=metadata or None)
    else:
        with open(path, "wb") as f:  # a file object: the archive is not named after the (random) temp file
            torch.save(tensors, f)  # a dict of tensors only: loads with torch.load(weights_only=True)


def merge_checkpoints(
    request: MergeRequest,
    checkpoints: list[CheckpointInfo],
    vae_files: dict[str, Path],
    out_dir: Path,
    *,
    hash_cache: HashCache | None = None,
    hashing: bool = True,
    progress: Progress | None = None,
) -> MergeResult:
    """Merge as `request` says and write the result into `out_dir` (the checkpoint folder).

    `checkpoints`: the listed checkpoints the names are looked up in; `vae_files`: name -> file for "Bake in VAE";
    `hashing`: compute the models' sha256 for the recipe (off with --no-hashing)."""
    report = progress or (lambda what, done, total: None)
    # 1. refuse what can be refused before any work
    m, pattern, user_metadata = _check(request)
    a_info, b_info, c_info = _used_models(request, checkpoints)
    vae_path = resolve_vae(request.bake_in_vae, vae_files)
    stem = check_custom_name(request.custom_name) if (request.custom_name or "").strip() else None

    with ExitStack() as stack:
        # 2. open the inputs (nothing is read until a tensor is asked for)
        sources = {role: _Source(info, stack) for role, info in (("A", a_info), ("B", b_info), ("C", c_info)) if info}
        _same_arch(sources)
        a_src, b_src, c_src = sources["A"], sources.get("B"), sources.get("C")

        # 3. A's keys, merged where B (and C) have them
        out: dict[str, torch.Tensor] = {}
        marks: set[str] = set()
        merged = 0
        total = len(a_src.keys)
        for n, key in enumerate(a_src.keys):
            a = a_src.get(key)
            result = _merge_key(key, a, b_src, c_src, m)
            if result is None:
                out[key] = a_src.keep(a)
            else:
                out[key], mark = result
                marks.add(mark)
                merged += 1
            if request.save_as_half:
                out[key] = _to_half(out[key])
            report("Merging", n + 1, total)

    # 4. bake in the VAE, then discard what the pattern names (A1111's order)
    baked = _bake_vae(out, vae_path, request.save_as_half) if vae_path else 0
    discarded = [k for k in out if pattern.search(k)] if pattern else []
    for key in discarded:
        del out[key]
    if not out:
        raise InvalidRequestError(
            f"The discard pattern {request.discard_weights!r} matches every weight; nothing would be left to save."
        )

    # 5. the name (A1111's, or the custom one), never replacing a file
    mark = "".join(sorted(marks - {""}))  # A has one UNet input layer: one mark at most
    stem = stem or _fit_default(default_name(request.method, m, a_info, b_info, c_info))
    out_dir = Path(out_dir).resolve()
    wanted = f"{stem}{mark}.{request.checkpoint_format}"
    clash = taken_by(out_dir, f"{stem}{mark}")
    path = free_name(out_dir, stem, mark, request.checkpoint_format)
    if path.parent != out_dir:  # the name checks make this impossible; a file outside the folder is never written
        raise InvalidRequestError(f"{wanted!r} would leave the checkpoint folder; choose a plain name.")

    # 6. metadata (safetensors only: a .ckpt has no place for it) and the write
    metadata = {}
    if request.save_metadata and request.checkpoint_format == "safetensors":

        def hash_of(info):
            if hashing:
                calculate_shorthash(info, hash_cache)
            return info.sha256

        models = {"A": a_info, "B": b_info, "C": c_info}
        metadata = build_metadata(request, models, user_metadata, marks, hash_of)
    report("Saving", 0, 1)
    remove_stale_temp_files(out_dir)  # what a merge killed mid-write left (hidden, never listed, but large)
    write_file_atomic(path, lambda tmp: _save(out, tmp, request.checkpoint_format, metadata))

    # 7. the config beside the result, as A1111's "Copy config from"
    config_source = _config_to_copy(request.config_source, a_info, b_info, c_info)
    config = None
    if config_source is not None:
        config = write_file_atomic(path.with_suffix(".yaml"), lambda tmp: shutil.copyfile(config_source, tmp))
    log.info("Checkpoint saved to %s", path)
    return MergeResult(
        path=path,
        wanted=wanted,
        taken_by=clash,
        merged_keys=merged,
        saved_keys=len(out),
        discarded_keys=discarded,
        baked_vae_keys=baked,
        config=config,
        metadata=metadata,
    )


def register_merged(store, path: Path) -> CheckpointInfo | None:
    """Rescan the checkpoint list so the new file is in it (the pickers, /sdapi/v1/sd-models), with its sha256
    unless hashing is off; its CheckpointInfo, or None when it is not below a checkpoint folder."""
    store.refresh()
    info = next((i for i in store.checkpoints if Path(i.filename).resolve() == Path(path).resolve()), None)
    if info is not None and not store.no_hashing:
        calculate_shorthash(info, store.hash_cache)
    return info
