"""Which Stable Diffusion a single-file checkpoint is: architecture, variant, prediction type.

Follows A1111's rules (a same-name .yaml beside the file wins; otherwise the text encoder layout decides the
architecture, the UNet's input channels the variant, and SD2's v-prediction is found by running the UNet once).
Presence of keys and tensor shapes are what count, never exact widths, so tiny test models are detected like real ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from sdui.errors import CheckpointError
from sdui.models.unet_vae_loading import UNET_PREFIX, load_unet

UNET_INPUT_KEY = UNET_PREFIX + "input_blocks.0.0.weight"
SDXL_BIGG_KEY = "conditioner.embedders.1.model.ln_final.weight"          # base: CLIP-L + OpenCLIP bigG
SDXL_REFINER_KEY = "conditioner.embedders.0.model.ln_final.weight"       # refiner: bigG only
SD2_TEXT_PREFIX = "cond_stage_model.model."                              # OpenCLIP-H
SD1_TEXT_PREFIX = "cond_stage_model.transformer."                        # CLIP-L
SD3_KEY = UNET_PREFIX + "x_embedder.proj.weight"
V_PRED_KEY = "v_pred"            # marker some trainers store in v-prediction checkpoints

VARIANT_BY_IN_CHANNELS = {4: "base", 9: "inpaint", 5: "depth"}
SUPPORTED_VARIANTS = {"sd1": ("base", "inpaint"), "sd2": ("base", "inpaint", "depth"),
                      "sdxl": ("base", "inpaint"), "sdxl-refiner": ("base",)}
V_TEST_THRESHOLD = -1.0
NOT_SD = "does not look like a Stable Diffusion 1.x/2.x/XL checkpoint"


@dataclass(frozen=True)
class ModelSpec:
    arch: str               # sd1 | sd2 | sdxl | sdxl-refiner
    variant: str            # base | inpaint | depth
    prediction_type: str    # epsilon | v_prediction


def detect_arch(sd: dict) -> str:
    if SD3_KEY in sd:
        raise CheckpointError(f"This checkpoint is Stable Diffusion 3, which is not supported; it {NOT_SD}.")
    if UNET_INPUT_KEY not in sd:
        raise CheckpointError(f"The checkpoint has no UNet ('{UNET_INPUT_KEY}' is missing): it {NOT_SD} "
                              "(a VAE, LoRA or embedding file?). Put those in their own folders.")
    if SDXL_BIGG_KEY in sd:
        return "sdxl"
    if SDXL_REFINER_KEY in sd:
        return "sdxl-refiner"
    if any(k.startswith(SD2_TEXT_PREFIX) for k in sd):
        return "sd2"
    if any(k.startswith(SD1_TEXT_PREFIX) for k in sd):
        return "sd1"
    raise CheckpointError(f"The checkpoint has a UNet but no text encoder we know: it {NOT_SD} "
                          "(or it is a UNet-only file); use a full checkpoint.")


def detect_variant(sd: dict, arch: str) -> str:
    in_channels = sd[UNET_INPUT_KEY].shape[1]
    if in_channels == 8:
        raise CheckpointError("This is an instruct-pix2pix checkpoint (8 UNet input channels), which is not supported.")
    variant = VARIANT_BY_IN_CHANNELS.get(in_channels)
    if variant not in SUPPORTED_VARIANTS[arch]:
        raise CheckpointError(f"A {arch} UNet with {in_channels} input channels is not a model we know "
                              f"(supported: {', '.join(SUPPORTED_VARIANTS[arch])}); it {NOT_SD}.")
    return variant


@torch.no_grad()
def v_prediction_score(unet) -> float:
    """A1111's probe: mean(UNet(0.5 everywhere, t=999) - input). v-models answer far below -1, epsilon models do not."""
    param = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=param.device, dtype=param.dtype)
    t = torch.tensor([999], device=param.device)
    out = unet(x, t, encoder_hidden_states=context).sample
    return (out.float() - x.float()).mean().item()


def detect_prediction_type(sd: dict, arch: str, variant: str, unet=None) -> str:
    """epsilon or v_prediction. Only SD2 base is probed (as A1111 does); pass its `unet` if already loaded."""
    if V_PRED_KEY in sd:
        return "v_prediction"
    if arch != "sd2" or variant != "base":
        return "epsilon"
    if unet is None:
        unet = load_unet(sd, arch, torch.float32)
    return "v_prediction" if v_prediction_score(unet) < V_TEST_THRESHOLD else "epsilon"


def detect(sd: dict, unet=None) -> ModelSpec:
    arch = detect_arch(sd)
    variant = detect_variant(sd, arch)
    return ModelSpec(arch, variant, detect_prediction_type(sd, arch, variant, unet))


def yaml_beside(checkpoint: str | Path) -> Path | None:
    """A user's config for `foo.safetensors` is `foo.yaml` next to it (A1111's rule)."""
    path = Path(checkpoint).with_suffix(".yaml")
    return path if path.is_file() else None


def _dig(node, *path):
    """node[path[0]][path[1]]..., or None where a level is missing or not a mapping."""
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _yaml_arch(params: dict) -> str | None:
    """Architecture named by the config's class paths: LDM LatentDiffusion (SD1/SD2) or SGM DiffusionEngine (SDXL)."""
    cond = str(_dig(params, "cond_stage_config", "target") or "")
    if cond:
        return "sd2" if "OpenCLIP" in cond else "sd1" if "CLIP" in cond else None
    embedders = _dig(params, "conditioner_config", "params", "emb_models") or []
    text = [str(e.get("target", "")) for e in embedders if isinstance(e, dict)]
    has_l = any(t.endswith(".FrozenCLIPEmbedder") for t in text)
    has_g = any(t.endswith(".FrozenOpenCLIPEmbedder2") for t in text)
    if has_g:
        return "sdxl" if has_l else "sdxl-refiner"
    return None


def _yaml_prediction(params: dict) -> str | None:
    if params.get("parameterization") is not None:          # LDM: "eps" (default) or "v"
        return "v_prediction" if params["parameterization"] == "v" else "epsilon"
    scaling = str(_dig(params, "denoiser_config", "params", "scaling_config", "target") or "")
    if scaling:                                              # SGM: VScaling / EpsScaling
        return "v_prediction" if scaling.endswith("VScaling") else "epsilon"
    return None


def spec_from_yaml(path: str | Path, sd: dict) -> ModelSpec:
    """The model described by an LDM/SGM inference yaml; what it leaves unsaid is detected from the weights."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        doc, error = None, f"{type(e).__name__}: {e}"
    else:
        error = "it has no 'model:' section"
    if not isinstance(_dig(doc, "model"), dict):
        raise CheckpointError(f"The config {path.name} beside the checkpoint could not be read ({error}); "
                              "fix it or delete it to let the model be detected automatically.")
    params = _dig(doc, "model", "params")
    params = params if isinstance(params, dict) else {}
    detected_arch = detect_arch(sd)
    arch = _yaml_arch(params) or detected_arch
    if arch != detected_arch:
        raise CheckpointError(f"{path.name} describes a {arch} model but the checkpoint's weights are {detected_arch}; "
                              "fix the yaml or delete it.")
    in_channels = _dig(params, "unet_config", "params", "in_channels") or \
        _dig(params, "network_config", "params", "in_channels")
    if in_channels is not None and in_channels != sd[UNET_INPUT_KEY].shape[1]:
        raise CheckpointError(f"{path.name} says the UNet takes {in_channels} input channels but the checkpoint's "
                              f"UNet takes {sd[UNET_INPUT_KEY].shape[1]}; fix the yaml or delete it.")
    variant = detect_variant(sd, arch)
    prediction_type = _yaml_prediction(params) or "epsilon"
    return ModelSpec(arch, variant, prediction_type)
