"""Control types ("Canny", "Depth", ...): the extension's way of narrowing the preprocessor and model lists to one
kind of control, as /controlnet/control_types answers: per type, the preprocessors (UI names) and models whose names
mention the type (or one of its words), its default preprocessor and the first matching model."""

from __future__ import annotations

from collections.abc import Sequence

# type -> (its default preprocessor, more words its preprocessors and models are named with)
CONTROL_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "All": ("none", ()),
    "Canny": ("canny", ()),
    "Depth": ("depth_midas", ()),
    "NormalMap": ("normal_bae", ("normal",)),
    "OpenPose": ("openpose_full", ("openpose",)),
    "MLSD": ("mlsd", ()),
    "Lineart": ("lineart_standard (from white bg & black line)", ("lineart",)),
    "SoftEdge": ("softedge_pidinet", ("softedge", "hed", "pidi")),
    "Scribble/Sketch": ("scribble_pidinet", ("scribble", "sketch")),
    "Segmentation": ("seg_ofade20k", ("seg",)),
    "Shuffle": ("shuffle", ()),
    "Tile/Blur": ("tile_resample", ("tile", "blur")),
    "Inpaint": ("inpaint_only", ("inpaint",)),
    "InstructP2P": ("none", ("ip2p",)),
    "Reference": ("reference_only", ("reference",)),
    "Recolor": ("recolor_luminance", ("recolor",)),
    "Revision": ("revision_clipvision", ("revision",)),
    "T2I-Adapter": ("none", ("t2ia", "t2i", "adapter")),
    "IP-Adapter": ("ip-adapter_clip_sd15", ("ip-adapter", "ip_adapter")),
}


def _matches(name: str, control_type: str, words: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in (control_type.lower(), *words))


def control_type(name: str, preprocessors: Sequence[str], models: Sequence[str]) -> dict:
    """One type's entry: {"module_list", "model_list", "default_option", "default_model"}; "none" and "None"
    are always offered."""
    default, words = CONTROL_TYPES[name]
    if name == "All":
        return {
            "module_list": list(preprocessors),
            "model_list": list(models),
            "default_option": "none",
            "default_model": "None",
        }
    found_preprocessors = [p for p in preprocessors if p == "none" or _matches(p, name, words)]
    found_models = [m for m in models if m == "None" or _matches(m, name, words)]
    chosen = [m for m in found_models if m != "None"]
    return {
        "module_list": found_preprocessors,
        "model_list": found_models,
        "default_option": default if default in found_preprocessors else found_preprocessors[0],
        "default_model": chosen[0] if chosen else "None",
    }


def control_types(preprocessors: Sequence[str], models: Sequence[str]) -> dict:
    return {"control_types": {name: control_type(name, preprocessors, models) for name in CONTROL_TYPES}}
