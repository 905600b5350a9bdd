"""/sdapi/v1 routes beyond generation: extras (upscaling), interrogation, and what A1111 offers for training."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sdui.app.context import AppContext
from sdui.app.postprocessing import Source, run_extras
from sdui.errors import NotFoundError, UserError
from sdui.imaging.encoding import decode_base64_image, image_to_png_bytes
from sdui.upscalers.extras import ExtrasOptions

INTERROGATORS = {
    "clip": "the BLIP caption model (models/BLIP/model_base_caption_capfilt_large.pth) and CLIP ViT-L/14",
    "deepdanbooru": "the DeepDanbooru model (models/deepbooru/model-resnet_custom_v3.pt)",
}


class ExtrasBase(BaseModel):
    """A1111's ExtrasBaseRequest."""

    resize_mode: int = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = 0
    codeformer_visibility: float = 0
    codeformer_weight: float = 0
    upscaling_resize: float = 2
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0
    upscale_first: bool = False

    def options(self) -> ExtrasOptions:
        return ExtrasOptions(**{k: v for k, v in self.model_dump().items() if k in ExtrasOptions.__dataclass_fields__})


class ExtrasSingleImageRequest(ExtrasBase):
    image: str = ""


class FileData(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasBase):
    imageList: list[FileData] = Field(default_factory=list)


class InterrogateRequest(BaseModel):
    image: str = ""
    model: str = "clip"


class UnsupportedError(UserError):
    status_code = 400


def add_extras_routes(router: APIRouter, ctx: AppContext) -> None:
    def process(images: list[str], options: ExtrasOptions) -> tuple[list[str], str]:
        """(each result as base64 PNG carrying its source's texts and "postprocessing", the first one's text)."""
        max_pixels = int(ctx.options.max_image_pixels)
        sources = [Source(decode_base64_image(data, max_pixels)) for data in images]
        outputs = run_extras(ctx, sources, options)
        encoded = [base64.b64encode(image_to_png_bytes(out.image, None)).decode("ascii") for out in outputs]
        return encoded, outputs[0].text if outputs else ""

    @router.post("/extra-single-image")
    def extra_single_image(body: ExtrasSingleImageRequest) -> dict:
        if not body.image:
            raise NotFoundError("Image not found: send the image as base64 in `image`.")
        images, text = process([body.image], body.options())
        return {"html_info": f"<p>{text}</p>" if text else "", "image": images[0]}

    @router.post("/extra-batch-images")
    def extra_batch_images(body: ExtrasBatchImagesRequest) -> dict:
        if not body.imageList:
            raise NotFoundError("No images: send them as imageList: [{data: base64, name: ...}].")
        if len(body.imageList) > ctx.options.max_batch_count:
            raise UnsupportedError(
                f"{len(body.imageList)} images are more than the configured limit of "
                f"{ctx.options.max_batch_count} (setting max_batch_count); send fewer at a time."
            )
        images, text = process([item.data for item in body.imageList], body.options())
        return {"html_info": f"<p>{text}</p>" if text else "", "images": images}

    @router.post("/interrogate")
    def interrogate(body: InterrogateRequest) -> dict:
        if body.model not in INTERROGATORS:
            raise NotFoundError(
                f"Model not found: {body.model!r}; A1111's interrogators are {', '.join(INTERROGATORS)}."
            )
        if not body.image:
            raise NotFoundError("Image not found: send the image as base64 in `image`.")
        decode_base64_image(body.image, int(ctx.options.max_image_pixels))
        raise UnsupportedError(
            f"Interrogation with {body.model!r} is not available: it needs "
            f"{INTERROGATORS[body.model]}, which this server does not run yet."
        )

    for kind in ("embedding", "hypernetwork"):
        for verb in ("create", "train"):
            router.add_api_route(f"/{verb}/{kind}", _refuse(verb, kind), methods=["POST"], name=f"{verb}_{kind}")


def _refuse(verb: str, kind: str):
    def route() -> dict:
        raise UnsupportedError(
            f"{verb.capitalize()} {kind}: training is not supported by this server; train with a "
            "dedicated trainer and drop the file into the models folder."
        )

    return route
