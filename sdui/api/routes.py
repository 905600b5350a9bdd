"""The /sdapi/v1 routes A1111 clients use (the route table of A1111 1.10's API), on top of the app context.

Generation and model switches go through the shared job queue (ctx.jobs), so API and UI requests run one at a
time in arrival order. With --api-auth every route here needs HTTP Basic credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from sdui.api.errors import ApiRoute
from sdui.api.extras import add_extras_routes
from sdui.api.listing import add_listing_routes
from sdui.api.models import (
    GenerationResponse,
    Img2ImgRequest,
    PngInfoRequest,
    PngInfoResponse,
    ProgressResponse,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    Txt2ImgRequest,
    to_generation_request,
    to_img2img_request,
)
from sdui.app.auth import Credentials
from sdui.app.context import AppContext, generate, switch_model
from sdui.app.selectable_scripts import find_script
from sdui.errors import CheckpointError, InvalidRequestError
from sdui.extensions.offered import BUILTIN_ALWAYSON, check_alwayson, selectable_scripts

log = logging.getLogger(__name__)


class CheckpointNotFoundError(CheckpointError):
    """An API client named a checkpoint that is not in the list: 404, with the titles it can choose from."""

    status_code = 404

    def __init__(self, message: str, titles: list[str]):
        super().__init__(message)
        self.api_extra = {"checkpoints": titles}


# ---------------------------------------------------------------------------------------------------------- auth


def basic_auth_dependency(credentials: dict[str, str]):
    """A FastAPI dependency that lets a request through only with one of `credentials` (constant-time compare)."""
    security = HTTPBasic(auto_error=False)
    expected = [(u.encode(), p.encode()) for u, p in credentials.items()]

    def check(given: HTTPBasicCredentials | None = Depends(security)) -> str:
        if given is None:
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Basic"})
        user, password = given.username.encode(), given.password.encode()
        ok = False
        for u, p in expected:  # every pair is compared: the time taken does not tell which part was wrong
            ok |= secrets.compare_digest(u, user) & secrets.compare_digest(p, password)
        if not ok:
            raise HTTPException(401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})
        return given.username

    return check


# ------------------------------------------------------------------------------------------------------- helpers


def apply_infotext(body: Txt2ImgRequest, options=None, mode: str = "txt2img") -> Txt2ImgRequest:
    """Fill the fields the client did not set from body.infotext (A1111: explicit fields win); setting-backed
    values go into override_settings, under the client's own overrides."""
    if not body.infotext:
        return body
    from sdui.core.infotext_fields import request_fields
    from sdui.infotext import parse_infotext

    fields = request_fields(parse_infotext(body.infotext), mode=mode, current=options)
    updates: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "override_settings":
            updates[name] = {**value, **(body.override_settings or {})}
        elif name in type(body).model_fields and name not in body.model_fields_set:
            updates[name] = value
    return type(body).model_validate({**body.model_dump(), **updates})


def check_client_folders(settings: dict[str, Any] | None, paths) -> None:
    """Output folders (outdir_* settings) a client sends must lie inside the data folder: over the network a client
    must not make this server write files elsewhere. Folders outside it are set in config.json or the UI."""
    data_dir = paths.data_dir.resolve()
    for key, value in (settings or {}).items():
        if key.startswith("outdir_") and isinstance(value, str) and value.strip():
            if not paths.resolve(value).resolve().is_relative_to(data_dir):
                raise InvalidRequestError(
                    f"Setting {key!r} names {value!r}, which is outside the data folder {data_dir}: through the API "
                    "output folders must lie inside it. Send a folder relative to the data folder, or set this "
                    "one in config.json."
                )


def script_runner(ctx: AppContext, body: Txt2ImgRequest, mode: str) -> Callable | None:
    """The selectable script the body names (script_name, script_args), as the callable that runs in place of
    process(); None without one. Always-on scripts the server lacks are refused (A1111's 422)."""
    check_alwayson(ctx, list(body.alwayson_scripts or {}), mode)
    if not body.script_name:
        return None
    script = find_script(selectable_scripts(ctx), body.script_name, mode)
    return script.runner(body.script_args or [])


def encode_image(image, options) -> str:
    """base64 of the image in the samples_format setting, as A1111's API sends images."""
    from sdui.imaging.encoding import image_to_bytes

    data = image_to_bytes(
        image, options.samples_format, jpeg_quality=int(options.jpeg_quality), webp_lossless=bool(options.webp_lossless)
    )
    return base64.b64encode(data).decode("ascii")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return str(value)


def caller(request: Request, *, with_credentials: bool) -> str:
    """Who a request comes from, for the jobs it may see and stop: the Basic-auth user (when passwords are on),
    else the X-Client-Id header a client may send, else its address."""
    if with_credentials:
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            try:
                return "user:" + base64.b64decode(header[6:]).decode("utf-8").partition(":")[0]
            except ValueError:
                pass  # the auth dependency has refused it already
    client_id = request.headers.get("x-client-id", "").strip()
    if client_id:
        return f"client:{client_id[:200]}"
    return f"address:{request.client.host if request.client else '?'}"


# -------------------------------------------------------------------------------------------------------- routes


def create_api_router(ctx: AppContext) -> APIRouter:
    credentials = Credentials.from_flags(ctx.flags).api
    dependencies = [Depends(basic_auth_dependency(credentials))] if credentials else []
    router = APIRouter(prefix="/sdapi/v1", dependencies=dependencies, route_class=ApiRoute, tags=["sdapi"])

    def owner(request: Request) -> str:
        return caller(request, with_credentials=bool(credentials))

    async def run(body, request, mode: str, http: Request, script: Callable | None = None) -> dict:
        """Queue the generation and wait for it; a client that goes away meanwhile has its job dropped (still
        waiting) or stopped at the next step (running)."""
        job = ctx.jobs.submit(
            generate, ctx, request, name=mode, task_id=body.force_task_id, owner=owner(http), script=script
        )
        while not job.done:
            if not job.cancelled and await http.is_disconnected():
                job.cancel()
                log.info("%s: the client went away; its job is dropped", job.id)
            await asyncio.sleep(0.1)
        processed = job.wait()

        def encode() -> dict:
            images = [encode_image(i, processed.settings) for i in processed.images] if body.send_images else []
            return {"images": images, "info": json.dumps(_jsonable(processed.info_dict()))}

        return await run_in_threadpool(encode)

    @router.post("/txt2img", response_model=GenerationResponse)
    async def txt2img(body: Txt2ImgRequest, http: Request):
        body = await run_in_threadpool(apply_infotext, body, ctx.options)
        script = script_runner(ctx, body, "txt2img")
        check_client_folders(body.override_settings, ctx.paths)
        result = await run(body, to_generation_request(body, mode="txt2img"), "txt2img", http, script)
        return {**result, "parameters": _jsonable(body.model_dump())}

    @router.post("/img2img", response_model=GenerationResponse)
    async def img2img(body: Img2ImgRequest, http: Request):
        body = await run_in_threadpool(apply_infotext, body, ctx.options, mode="img2img")
        script = script_runner(ctx, body, "img2img")
        check_client_folders(body.override_settings, ctx.paths)
        request = await run_in_threadpool(to_img2img_request, body, max_pixels=ctx.options.max_image_pixels)
        result = await run(body, request, "img2img", http, script)
        echo = body.model_dump()
        if not body.include_init_images:  # A1111 does not echo the images back unless asked
            echo["init_images"] = echo["mask"] = None
        return {**result, "parameters": _jsonable(echo)}

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models():
        return ctx.store.api_list()

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints():
        ctx.store.refresh()
        return None

    @router.post("/unload-checkpoint")
    def unload_checkpoint():
        ctx.jobs.run(lambda job: ctx.store.unload(), name="unload checkpoint")
        return {}

    @router.post("/reload-checkpoint")
    def reload_checkpoint():
        ctx.jobs.run(lambda job: ctx.store.get(), name="load checkpoint")
        return {}

    @router.get("/options")
    def get_options():
        options = dict(ctx.options.data)
        loading = ctx.store.loading
        if loading is not None:  # as in A1111, the checkpoint being loaded is already the setting
            options["sd_model_checkpoint"] = loading.title
        return _jsonable(options)

    @router.post("/options")
    def set_options(settings: dict[str, Any] = Body(...)):
        settings = dict(settings)
        check_client_folders(settings, ctx.paths)
        checkpoint = settings.pop("sd_model_checkpoint", None)
        if checkpoint:
            titles = [info.title for info in ctx.store.checkpoints]
            try:
                ctx.store.select(checkpoint)
            except CheckpointError as e:
                if not titles:
                    raise
                raise CheckpointNotFoundError(e.message, titles) from None
        for key, value in settings.items():  # validate everything before changing anything
            ctx.options.cast_value(key, value)
        for key, value in settings.items():
            ctx.options.set(key, value, is_api=True)
        if checkpoint:
            switch_model(ctx, checkpoint)  # loads through the queue, then saves the choice
        ctx.options.save()
        return None

    @router.get("/cmd-flags")
    def cmd_flags():
        return {key: _jsonable(value) for key, value in ctx.flags.raw.items()}

    @router.get("/samplers", response_model=list[SamplerItem])
    def samplers():
        from sdui.core.samplers import SAMPLERS

        return [s.to_api() for s in SAMPLERS]

    @router.get("/schedulers", response_model=list[SchedulerItem])
    def schedulers():
        from sdui.core.schedules import SCHEDULERS

        return [s.to_api() for s in SCHEDULERS]

    @router.get("/scripts")
    def scripts():
        offered = selectable_scripts(ctx)
        # A1111 lists every script, always-on ones too: clients look for "controlnet" here
        builtin = [BUILTIN_ALWAYSON] if ctx.controlnet is not None else []
        return {
            mode: [s.title.lower() for s in offered if mode in s.modes] + builtin for mode in ("txt2img", "img2img")
        }

    add_listing_routes(router, ctx)
    add_extras_routes(router, ctx)
    if ctx.flags.api_server_stop:
        add_server_routes(router, ctx)

    @router.post("/png-info", response_model=PngInfoResponse)
    def png_info(body: PngInfoRequest):
        if not body.image.strip():
            return {"info": "", "items": {}, "parameters": {}}
        from sdui.imaging.encoding import decode_base64_image
        from sdui.imaging.pnginfo import read_info_from_image
        from sdui.infotext import parse_infotext

        text, items = read_info_from_image(decode_base64_image(body.image, int(ctx.options.max_image_pixels)))
        parameters = parse_infotext(text) if text else {}
        return {"info": text or "", "items": {k: _jsonable(v) for k, v in items.items()}, "parameters": parameters}

    @router.get("/progress", response_model=ProgressResponse)
    def progress(http: Request, skip_current_image: bool = False):
        return ctx.jobs.progress_info(
            skip_current_image=skip_current_image,
            image_format=ctx.options.live_previews_image_format,
            owner=owner(http),
        )

    @router.post("/interrupt")
    def interrupt(http: Request):
        ctx.jobs.interrupt(owner=owner(http))
        return {}

    @router.post("/skip")
    def skip(http: Request):
        ctx.jobs.skip(owner=owner(http))
        return None

    return router


def create_internal_router(ctx: AppContext) -> APIRouter:
    """Unauthenticated health routes (A1111 keeps /internal/* outside --api-auth too)."""
    router = APIRouter(prefix="/internal", route_class=ApiRoute, include_in_schema=False)

    @router.get("/ping")
    def ping():
        return {}

    return router


def add_server_routes(router: APIRouter, ctx: AppContext) -> None:
    """A1111's --api-server-stop routes."""

    @router.post("/server-stop")
    def server_stop():
        ctx.server.stop()
        return "Stopping."

    @router.post("/server-restart")
    def server_restart():
        if not ctx.server.can_restart:
            raise HTTPException(501, "Not started by webui.sh / webui.bat: nothing would start the server again.")
        ctx.server.stop(restart=True)
        return "Restarting."

    @router.post("/server-kill")
    def server_kill():
        ctx.server.stop()
        return "Stopping."
