"""The sd-webui-controlnet extension's routes (/controlnet/*), so its clients work against the built-in ControlNet.

Shapes as the extension answers: {"version": 2}; {"model_list": ["name [hash]", ...]}; {"module_list": [...],
"module_detail": {...}}; {"control_types": {"Canny": {...}, ...}}; {"control_net_unit_count": N}; detect:
{"images": [base64 PNG, ...], "info": "Success"}.
Behind the same credentials as /sdapi/v1 (--api-auth).
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Body, Depends
from fastapi.concurrency import run_in_threadpool

from sdui.api.errors import ApiRoute
from sdui.app.auth import Credentials
from sdui.app.context import AppContext
from sdui.controlnet import control_types as types
from sdui.controlnet import preprocessors
from sdui.errors import InvalidRequestError

API_VERSION = 2  # what the extension's /controlnet/version has answered since its API v2
MAX_DETECT_IMAGES = 16


def create_controlnet_router(ctx: AppContext, auth_dependency) -> APIRouter:
    credentials = Credentials.from_flags(ctx.flags).api
    dependencies = [Depends(auth_dependency(credentials))] if credentials else []
    router = APIRouter(prefix="/controlnet", dependencies=dependencies, route_class=ApiRoute, tags=["controlnet"])
    script = ctx.controlnet

    @router.get("/version")
    def version():
        return {"version": API_VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True):
        if update:
            script.catalog.refresh()
        return {"model_list": script.catalog.titles(include_none=False)}

    @router.get("/module_list")
    def module_list(alias_names: bool = False):
        return preprocessors.module_list(alias_names)

    @router.get("/control_types")
    def control_types():
        preprocessor_names = preprocessors.module_list(True)["module_list"]
        return types.control_types(preprocessor_names, script.catalog.titles())

    @router.get("/settings")
    def settings():
        return {"control_net_unit_count": int(ctx.options.control_net_unit_count)}

    @router.post("/detect")
    async def detect(
        controlnet_module: str = Body("none"),
        controlnet_input_images: list[str] = Body([]),
        controlnet_images: list[str] = Body([]),  # the older name, which the webuiapi client still sends
        controlnet_processor_res: float = Body(-1),
        controlnet_threshold_a: float = Body(-1),
        controlnet_threshold_b: float = Body(-1),
        controlnet_masks: list[str] = Body([]),
        low_vram: bool = Body(False),
    ):
        module = preprocessors.find(controlnet_module)  # 422 naming the known modules
        controlnet_input_images = controlnet_input_images or controlnet_images
        if not controlnet_input_images:
            raise InvalidRequestError("No image selected: send controlnet_input_images, a list of base64 images.")
        if len(controlnet_input_images) > MAX_DETECT_IMAGES:
            raise InvalidRequestError(
                f"{len(controlnet_input_images)} images sent to /controlnet/detect; send at most {MAX_DETECT_IMAGES}."
            )
        return await run_in_threadpool(
            _detect,
            ctx,
            module.name,
            controlnet_input_images,
            controlnet_masks,
            (controlnet_processor_res, controlnet_threshold_a, controlnet_threshold_b),
        )

    return router


def _detect(ctx: AppContext, module: str, images: list[str], masks: list[str], params: tuple) -> dict:
    import io

    import numpy as np
    from PIL import Image

    from sdui.imaging.encoding import decode_base64_image

    limit = int(ctx.options.max_image_pixels)
    resolution, threshold_a, threshold_b = params
    encoded = []
    for i, data in enumerate(images):
        image = decode_base64_image(data, limit)
        mask = None
        if i < len(masks) and masks[i]:
            mask = np.asarray(decode_base64_image(masks[i], limit).convert("L").resize(image.size))
        result = preprocessors.run(
            module,
            np.asarray(image.convert("RGB")),
            resolution=resolution,
            threshold_a=threshold_a,
            threshold_b=threshold_b,
            mask=mask,
            annotator_dir=ctx.controlnet.annotator_dir,
            depth_estimator=_loaded_depth_estimator(ctx),
            device=ctx.policy.device,
        )
        buffer = io.BytesIO()
        Image.fromarray(result).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return {"images": encoded, "info": "Success"}


def _loaded_depth_estimator(ctx: AppContext):
    """The MiDaS of the loaded checkpoint when it is an SD 2 depth one (never loads a model just for a map)."""
    model = ctx.store.current
    return model.depth_estimator if model is not None else None
