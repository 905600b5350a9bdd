"""The /sdapi/v1 routes that list what is installed, in A1111's shapes: upscalers, latent upscale modes, VAEs, LoRAs,
hypernetworks, embeddings, styles, face restorers, memory, scripts and extensions (empty lists where nothing of
the kind is installed or supported yet, so that clients that ask get an answer, not a 404)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter

from sdui.app.context import AppContext
from sdui.extensions.offered import script_infos
from sdui.models.files import list_files
from sdui.models.lora_files import list_loras
from sdui.text.styles import read_styles
from sdui.upscalers.upscaling import LATENT_UPSCALE_MODES, upscaler_entries


def add_listing_routes(router: APIRouter, ctx: AppContext) -> None:
    paths = ctx.paths

    @router.get("/upscalers")
    def upscalers() -> list[dict]:
        return upscaler_entries()

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict]:
        return [{"name": name} for name in LATENT_UPSCALE_MODES]

    @router.get("/sd-vae")
    def sd_vae() -> list[dict]:
        from sdui.core.vae_choice import vae_files

        return [
            {"model_name": name, "filename": str(p)} for name, p in vae_files(paths.vae_dir, paths.ckpt_dirs).items()
        ]

    @router.get("/sd-modules")
    def sd_modules() -> list[dict]:
        return []  # separately loadable text encoders / VAEs (A1111's sd_unet modules): none here

    @router.get("/hypernetworks")
    def hypernetworks() -> list[dict]:
        return [{"name": p.stem, "path": str(p)} for p in list_files(paths.hypernetwork_dir, (".pt",))]

    @router.get("/loras")
    def loras() -> list[dict]:
        return [f.api_dict() for f in list_loras(paths.lora_dir)]

    @router.get("/embeddings")
    def embeddings() -> dict:
        """A1111's shape; which embeddings fit depends on the loaded model (none loaded: none listed)."""
        from sdui.core.extra_networks import embeddings_for

        model = ctx.store.current
        if model is None:
            return {"loaded": {}, "skipped": {}}
        return embeddings_for(model, paths.embeddings_dir, ctx.store.hash_cache).api_dict()

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict]:
        return [
            {"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            for s in read_styles(paths.styles_files)
        ]

    @router.get("/face-restorers")
    def face_restorers() -> list[dict]:
        """A1111's shape, the restorers whose weights are present (models/GFPGAN, models/Codeformer)."""
        from sdui.upscalers.face_restoration import FACE_RESTORERS

        return [{"name": r.name, "cmd_dir": str(r.path.parent)} for r in FACE_RESTORERS.available()]

    @router.get("/realesrgan-models")
    def realesrgan_models() -> list[dict]:
        return []

    @router.get("/script-info")
    def script_info() -> list[dict]:
        return script_infos(ctx)

    @router.get("/extensions")
    def extensions() -> list[dict]:
        from sdui.extensions.startup import installed_extensions

        return [e.to_api() for e in installed_extensions(ctx)]

    for name in ("refresh-embeddings", "refresh-vae", "refresh-loras"):
        router.add_api_route(f"/{name}", lambda: None, methods=["POST"], name=name)

    @router.get("/memory")
    def memory() -> dict:
        return {"ram": _ram(), "cuda": _cuda()}


def _ram() -> dict:
    import psutil

    process = psutil.Process(os.getpid())
    used = process.memory_info().rss
    total = psutil.virtual_memory().total
    return {"free": total - used, "used": used, "total": total}


def _cuda() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"error": "unavailable"}
    free, total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()

    def pair(key: str) -> dict:
        return {"current": stats.get(f"{key}.all.current", 0), "peak": stats.get(f"{key}.all.peak", 0)}

    return {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
    }
