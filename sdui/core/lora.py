"""LoRA and LyCORIS networks merged into a loaded model's weights, and taken out again (A1111's built-in Lora).

A network file holds, for some Linear/Conv layers of the UNet and the text encoders, a low-rank (or otherwise
factored) change of the weight. Applying a network adds `multiplier * scale * delta` to each such weight, with
`scale = alpha / rank` as A1111 computes it, and `activate` restores the originals exactly before it applies a
different set. Consecutive jobs with the same set do nothing. The merged weights are new tensors beside the
loaded ones, which stay untouched: taking a network out puts the loaded Parameters back, bit for bit, copying
nothing.

    state = activate(model, [(LoraFile, te_multiplier, unet_multiplier), ...])   # -> what was applied, skipped

Module names: kohya's `lora_unet_<path>` / `lora_te_<path>` / `lora_te1_` / `lora_te2_` with the path's dots as
underscores (the UNet path in diffusers' or the original LDM layout), and diffusers/PEFT files
(`unet.<path>.lora_A.weight`, `text_encoder.<path>.lora.down.weight`, ...). Module types: LoRA, LoCon (with a
Tucker mid), LoHa, LoKr, IA3, full "diff" and norm-layer modules; others (OFT, ...) are skipped with a message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sdui.errors import UserError
from sdui.models.ldm_unet_names import ldm_names

log = logging.getLogger(__name__)

_PEFT_SUFFIXES = {
    ".lora_A.weight": "lora_down.weight",
    ".lora_B.weight": "lora_up.weight",
    ".lora.down.weight": "lora_down.weight",
    ".lora.up.weight": "lora_up.weight",
    "_lora.down.weight": "lora_down.weight",  # diffusers' old attention-processor files: "...to_q_lora.down.weight"
    "_lora.up.weight": "lora_up.weight",
    ".alpha": "alpha",
}
_PEFT_PREFIXES = {"unet": "unet", "text_encoder": "te1", "text_encoder_2": "te2"}


@dataclass
class Target:
    module: torch.nn.Module
    part: str  # "unet" or "te" (which multiplier applies)


@dataclass
class ActiveSet:
    key: tuple = ()  # (path, te, unet) of each applied network, in order
    backups: dict = field(default_factory=dict)  # module -> (weight, bias) Parameters as loaded


class LoraFormatError(UserError):
    pass


# ----------------------------------------------------------------------------------------------- the model's layers


def model_targets(model) -> dict[str, Target]:
    """Every name a network may use for a layer of `model`, kohya style ("lora_unet_down_blocks_0_...") and
    diffusers style (("unet", "down_blocks.0....")) alike."""
    cached = model.applied.get("lora_targets")
    if cached is not None:
        return cached
    found: dict = {}
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.GroupNorm)  # norms: "norm" modules
    ldm = ldm_names(model.unet)
    for name, module in model.unet.named_modules():
        if isinstance(module, layers):
            target = Target(module, "unet")
            found["lora_unet_" + name.replace(".", "_")] = target
            found[("unet", name)] = target
            if name in ldm:
                found["lora_unet_" + ldm[name].replace(".", "_")] = target
    prefixes = ["lora_te1_", "lora_te2_"] if model.is_sdxl and len(model.text_encoders) > 1 else ["lora_te_"]
    if model.arch == "sdxl-refiner":
        prefixes = ["lora_te2_"]
    for encoder, prefix in zip(model.text_encoders, prefixes, strict=False):
        peft = {"lora_te_": "te1", "lora_te1_": "te1", "lora_te2_": "te2"}[prefix]
        for name, module in encoder.named_modules():
            if isinstance(module, layers):
                target = Target(module, "te")
                # files name the layers of transformers' CLIPTextModel, which newer versions keep without the
                # "text_model." level: both spellings lead here
                for spelled in {name, name if name.startswith("text_model.") else f"text_model.{name}"}:
                    found[prefix + spelled.replace(".", "_")] = target
                    found[(peft, spelled)] = target
    model.applied["lora_targets"] = found
    return found


# --------------------------------------------------------------------------------------------------- the file


def read_network(path) -> dict[str, torch.Tensor]:
    """The tensors of a network file (.safetensors, or .pt/.ckpt read with weights_only)."""
    path = str(path)
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to replace
        raise LoraFormatError(f"Cannot read the network file {path}: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise LoraFormatError(f"{path} is not a network file (no tensors by name)")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def group_modules(tensors: dict[str, torch.Tensor]) -> dict:
    """{module name: {"lora_up.weight": t, "alpha": t, ...}} in kohya's part names, whatever the file's layout."""
    groups: dict = {}
    for key, tensor in tensors.items():
        head = key.split(".", 1)[0]
        if head.startswith("lora_") or head.startswith("lycoris_"):  # kohya / LyCORIS: the module has no dots
            module, _, part = key.partition(".")
            groups.setdefault(module.replace("lycoris_", "lora_", 1), {})[part] = tensor
            continue
        for suffix, part in _PEFT_SUFFIXES.items():
            if key.endswith(suffix):
                path = key[: -len(suffix)]
                prefix, _, rest = path.partition(".")
                component = _PEFT_PREFIXES.get(prefix)
                if component is None:
                    component, rest = "unet", path  # an old diffusers file of the UNet alone
                rest = rest.replace("processor.", "")
                rest = rest[: -len(".to_out")] + ".to_out.0" if rest.endswith(".to_out") else rest
                groups.setdefault((component, rest), {})[part] = tensor
                break
    return groups


# ------------------------------------------------------------------------------------------------------ deltas


def module_delta(parts: dict, shape: torch.Size, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The weight change one module of a network makes, scaled by alpha/rank, in float32 and the weight's shape.
    LoRA/LoCon (with a Tucker mid), LoHa, LoKr, IA3 (which scales the current `weight`), full ("diff") and norm
    ("w_norm") modules; LoraFormatError for others."""
    f = {k: v.float() for k, v in parts.items()}
    alpha = float(f["alpha"]) if "alpha" in f else None
    if "weight" in f and "on_input" in parts:  # IA3: a learned scale per output (or input) channel
        if weight is None:
            raise LoraFormatError("an IA3 module needs the layer's weight")
        on_input = bool(parts["on_input"].flatten()[0]) if parts["on_input"].numel() else False
        w = weight.float()
        scales = f["weight"].reshape(1, -1) if on_input else f["weight"].reshape(-1, 1)
        if w.dim() == 4:
            scales = scales[..., None, None]
        if (w.shape[1] if on_input else w.shape[0]) != f["weight"].numel():
            raise LoraFormatError(f"an IA3 scale of {f['weight'].numel()} does not fit a weight of {tuple(shape)}")
        return w * scales
    if "lora_up.weight" in f and "lora_down.weight" in f:
        up, down = f["lora_up.weight"], f["lora_down.weight"]
        rank = down.shape[0]
        if "lora_mid.weight" in f:  # Tucker-decomposed conv: up (o, r), mid (r, r', kh, kw), down (r', i)
            delta = torch.einsum("rskl,or,si->oikl", f["lora_mid.weight"], up.flatten(1), down.flatten(1))
        elif down.dim() == 4 and down.shape[2:] != (1, 1):  # conv kernel in down, 1x1 up
            delta = (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:])
        else:
            delta = up.flatten(1) @ down.flatten(1)
        scale = alpha / rank if alpha is not None else 1.0
    elif "hada_w1_a" in f:
        w1 = _factor(f, "hada_w1_a", "hada_w1_b", "hada_t1")
        w2 = _factor(f, "hada_w2_a", "hada_w2_b", "hada_t2")
        delta = w1 * w2
        scale = alpha / f["hada_w1_b"].shape[0] if alpha is not None else 1.0
    elif any(k.startswith("lokr_") for k in f):
        w1 = f["lokr_w1"] if "lokr_w1" in f else f["lokr_w1_a"] @ f["lokr_w1_b"]
        w2 = f["lokr_w2"] if "lokr_w2" in f else _factor(f, "lokr_w2_a", "lokr_w2_b", "lokr_t2")
        if w2.dim() == 4 and w1.dim() == 2:
            w1 = w1[:, :, None, None]
        delta = torch.kron(w1, w2)
        rank = f["lokr_w1_b"].shape[0] if "lokr_w1_b" in f else f["lokr_w2_b"].shape[0] if "lokr_w2_b" in f else None
        scale = alpha / rank if alpha is not None and rank else 1.0
    elif "diff" in f:
        delta, scale = f["diff"], 1.0
    elif "w_norm" in f:  # a norm layer's weight (and bias, "b_norm") replaced by a trained change
        delta, scale = f["w_norm"], 1.0
    else:
        raise LoraFormatError(f"unknown module type with parts {', '.join(sorted(parts))}")
    if delta.numel() != shape.numel():
        raise LoraFormatError(f"a change of shape {tuple(delta.shape)} does not fit a weight of {tuple(shape)}")
    return delta.reshape(shape) * scale


@torch.no_grad()
def merged_weight(parts: dict, weight: torch.Tensor, multiplier: float) -> torch.Tensor:
    """weight + multiplier * module_delta, as a new tensor, summed in float32 and rounded once to the weight's dtype
    (a float16/bfloat16 weight would otherwise take the delta rounded, then the sum rounded again). A plain LoRA
    (the common case) is one fused multiply-add, W + (multiplier * alpha / rank) * up @ down, with no weight-sized
    temporaries beyond the float32 copy of a half or bfloat16 weight."""
    plain = "lora_up.weight" in parts and "lora_down.weight" in parts and "lora_mid.weight" not in parts
    if plain:
        up = parts["lora_up.weight"].to(weight.device, torch.float32).flatten(1)
        down = parts["lora_down.weight"].to(weight.device, torch.float32).flatten(1)
        rows = weight.shape[0]
        if up.shape[0] != rows or up.shape[1] != down.shape[0] or down.shape[1] * rows != weight.numel():
            raise LoraFormatError(
                f"a change of shape {(up.shape[0], down.shape[1])} does not fit a weight of {tuple(weight.shape)}"
            )
        alpha = float(parts["alpha"]) if "alpha" in parts else None
        scale = alpha / down.shape[0] if alpha is not None else 1.0
        base = weight.reshape(rows, -1).float()
        return torch.addmm(base, up, down, alpha=multiplier * scale).reshape(weight.shape).to(weight.dtype)
    delta = module_delta(parts, weight.shape, weight) * multiplier
    return (weight.float() + delta.to(weight.device)).to(weight.dtype)


def _factor(f: dict, a: str, b: str, t: str) -> torch.Tensor:
    if t in f:  # Tucker: t (r, r', kh, kw), a (o, r), b (r', i)
        return torch.einsum("ijkl,jr,ip->prkl", f[t], f[b], f[a])
    return f[a] @ f[b].flatten(1) if f[b].dim() > 2 else f[a] @ f[b]


# ----------------------------------------------------------------------------------------------------- applying


@dataclass
class Applied:
    names: list[str] = field(default_factory=list)  # the files applied
    skipped: list[str] = field(default_factory=list)  # messages: what was left out and why


def activate(model, networks: Sequence[tuple], read=read_network) -> Applied:
    """Make `networks` ((file path, te multiplier, unet multiplier), ...) the ones merged into `model`: restores
    the weights as loaded first unless the same set is applied already."""
    key = tuple((str(path), float(te), float(unet)) for path, te, unet in networks)
    state: ActiveSet = model.applied.setdefault("lora", ActiveSet())
    if state.key == key:
        return model.applied.get("lora_report", Applied())
    restore(model)
    report = Applied()
    targets = model_targets(model) if key else {}
    try:
        for path, te, unet in key:
            _apply_file(model, state, targets, path, te, unet, read, report)
    except BaseException:
        restore(model)
        raise
    state.key = key
    model.applied["lora_report"] = report
    if key:
        model.on_undo("lora", lambda: restore(model))
    return report


def _apply_file(model, state: ActiveSet, targets: dict, path: str, te: float, unet: float, read, report) -> None:
    name = path.rsplit("/", 1)[-1]
    try:
        groups = group_modules(read(path))
    except LoraFormatError as e:
        report.skipped.append(e.message)
        return
    changes = []
    unknown, misfit = [], []
    for module_name, parts in groups.items():
        target = targets.get(module_name)
        if target is None:
            unknown.append(module_name)
            continue
        multiplier = te if target.part == "te" else unet
        if multiplier == 0:
            continue
        try:
            merged = merged_weight(parts, target.module.weight, multiplier)
        except LoraFormatError as e:
            misfit.append(f"{module_name}: {e.message}")
            continue
        bias = parts.get("diff_b", parts.get("b_norm"))
        changes.append((target.module, merged, None if bias is None else bias.float() * multiplier))
    if groups and not changes and (unknown or misfit):
        report.skipped.append(
            f"Network {name} does not fit this model ({model.arch}): none of its {len(groups)} layers matched"
        )
        return
    for module_name in unknown[:3]:
        log.info("Network %s: no layer %s in this model", name, module_name)
    for text in misfit[:3]:
        log.warning("Network %s: %s", name, text)
    with torch.no_grad():
        for module, merged, bias in changes:
            # the merged weight is a new tensor; the loaded Parameter itself is kept to be put back (exact, no copy)
            state.backups.setdefault(module, (module.weight, module.bias))
            if merged.stride() != module.weight.stride():  # keep the loaded layout (channels-last on a bf16 CPU)
                merged = torch.empty_like(module.weight).copy_(merged)
            module.weight = torch.nn.Parameter(merged, requires_grad=False)
            if bias is not None and module.bias is not None:
                merged_bias = (module.bias.float() + bias.to(module.bias.device)).to(module.bias.dtype)
                module.bias = torch.nn.Parameter(merged_bias, requires_grad=False)
    report.names.append(name)


def restore(model) -> None:
    """Put back the weights as loaded (exactly: the loaded Parameters themselves, not a subtraction)."""
    state: ActiveSet | None = model.applied.get("lora")
    if state is None:
        return
    for module, (weight, bias) in state.backups.items():
        module.weight = weight
        if bias is not None:
            module.bias = bias
    state.backups.clear()
    state.key = ()
    model.applied.pop("lora_report", None)
