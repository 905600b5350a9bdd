"""Masks for inpaint and outpaint, on the pixel side: preparing the user's mask, the "only masked" crop, A1111's
"fill" masked content, pasting the result back, the outpaint canvas, and the latent-space blend mask.

Conventions: a mask is a PIL 'L' image, white (255) = repaint, black (0) = keep. The order of operations and the
numbers follow A1111 v1.10 (StableDiffusionProcessingImg2Img.init); where we differ, the docstring says so.

How the processing core uses this (A1111's flow; W x H = the request's size, image = the flattened init image):
  mask, note = prepare_mask(request.mask, invert=..., blur_x=..., blur_y=..., round=..., size=image.size)
  "Only masked":   region = expand_to_aspect(crop_region(mask, padding), W, H, *image.size)
                   original = image; overlay = overlay_mask(mask, only_masked=True)
                   work image, work mask = crop_to_region(image, region, W, H), crop_to_region(mask, region, W, H)
  "Whole picture": work image = original = resize_image(resize_mode, image, W, H)
                   work mask = resize_image(resize_mode, mask, W, H)
                   overlay = overlay_mask(work mask, only_masked=False)
  inpainting_fill != 1: work image = fill_masked(work image, work mask) before VAE encoding (A1111 does it for
                        latent noise / nothing too: it changes the inpainting model's masked-image input)
  latent blend mask = latent_mask(work mask, (H // 8, W // 8), round=mask_round)
  result = composite(original, decoded, overlay, region if only masked else None)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import flatten, has_alpha, resize_image

# ----------------------------------------------------------------------------------------------- the user's mask


class PreparedMask(NamedTuple):
    mask: Image.Image  # 'L', white = repaint
    note: str | None  # set when the mask had to be resized to the image's size


def _mask_values(mask: Image.Image) -> tuple[Image.Image, bool]:
    """The mask as 'L', and whether it came from an alpha channel.

    A1111: a mask with transparency (what its UI's brush sends: painted strokes are opaque) is its alpha channel;
    a fully opaque or alpha-less mask is its brightness (the API's black-and-white masks).
    """
    if has_alpha(mask):
        rgba = mask.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema() != (255, 255):
            return alpha, True
        return rgba.convert("L"), False
    return mask.convert("L"), False


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A1111's 1-D mask-blur kernel: size 2*int(2.5*sigma + 0.5) + 1, Gaussian of that sigma, summing to 1
    (what cv2.GaussianBlur builds for those arguments)."""
    size = 2 * int(2.5 * sigma + 0.5) + 1
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(offsets**2) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def gaussian_blur_axis(values: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """1-D Gaussian blur of a float array along `axis`, borders mirrored without repeating the edge (gfedcb|abcdefgh|
    gfedcba, OpenCV's default BORDER_REFLECT_101, as A1111's cv2.GaussianBlur uses)."""
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    length = values.shape[axis]
    pad = [(0, 0)] * values.ndim
    pad[axis] = (radius, radius)
    # numpy's "reflect" is reflect-101; a one-pixel axis can only repeat itself
    padded = np.pad(values, pad, mode="reflect" if length > 1 else "edge")
    padded = np.moveaxis(padded, axis, 0)
    out = np.zeros((length,) + padded.shape[1:], dtype=np.float64)
    for tap, weight in enumerate(kernel):
        out += weight * padded[tap : tap + length]
    return np.moveaxis(out, 0, axis)


def blur_mask(mask: Image.Image, blur_x: float, blur_y: float) -> Image.Image:
    """A1111's mask blur: horizontal Gaussian of sigma blur_x, then vertical of sigma blur_y, each rounded to 8 bits.

    OpenCV computes 8-bit blurs in fixed point; this float version can differ from it by one level on some pixels.
    """
    values = np.asarray(mask.convert("L"), dtype=np.float64)
    for sigma, axis in ((blur_x, 1), (blur_y, 0)):
        if sigma and sigma > 0:
            values = np.clip(np.rint(gaussian_blur_axis(values, float(sigma), axis)), 0, 255)
    return Image.fromarray(values.astype(np.uint8), "L")


def prepare_mask(
    mask: Image.Image,
    *,
    invert: bool = False,
    blur_x: float = 4,
    blur_y: float = 4,
    round: bool = True,
    size: tuple[int, int] | None = None,
) -> PreparedMask:
    """The user's mask made ready: 'L', at the image's size, inverted if asked, blurred.

    A1111 order: read the mask (alpha channel, thresholded at >128 when `round`, else brightness) -> invert
    ("Inpaint not masked") -> blur x -> blur y. `round` (A1111's mask_round) only binarises alpha masks here; it
    also rounds the latent blend mask and the inpainting-model mask (see latent_mask, mask_to_tensor). A1111 uses
    the mask as given even when its size differs from the image's, which misplaces the "only masked" crop; we
    stretch it to `size` first (bilinear, so no ringing) and say so in `note`.
    """
    values, from_alpha = _mask_values(mask)
    note = None
    if size is not None and values.size != tuple(size):
        note = (
            f"the mask ({values.width}x{values.height}) was resized to the image's size "
            f"({size[0]}x{size[1]}); send a mask the size of the image to place it exactly"
        )
        values = values.resize(tuple(size), resample=Image.Resampling.BILINEAR)
    if from_alpha and round:
        values = values.point(lambda v: 255 if v > 128 else 0)
    if invert:
        values = values.point(lambda v: 255 - v)
    values = blur_mask(values, blur_x, blur_y)
    return PreparedMask(values, note)


def overlay_mask(mask: Image.Image, *, only_masked: bool) -> Image.Image:
    """The mask used to paste the result over the original.

    A1111: "Only masked" pastes with the blurred mask as is; "Whole picture" doubles it (clipped), so the generated
    pixels cover the painted area fully and only the outer half of the blur fades into the original.
    """
    mask = mask.convert("L")
    if only_masked:
        return mask.copy()
    return mask.point(lambda v: min(255, 2 * v))


# ----------------------------------------------------------------------------------------------- "only masked"


def crop_region(mask: Image.Image, padding: int = 0) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2): the box around every non-zero mask pixel, grown by `padding` on each side, inside the image."""
    if padding < 0:
        raise InvalidRequestError(f"inpaint_full_res_padding must be 0 or more, got {padding}")
    mask = mask.convert("L")
    box = mask.getbbox()
    if box is None:
        raise InvalidRequestError(
            "the mask is empty: paint the area to change in white (or send a mask with white "
            "where the image should change), or use inpaint area 'Whole picture'"
        )
    x1, y1, x2, y2 = box
    return max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, mask.width), min(y2 + padding, mask.height)


def _grow_span(start: int, end: int, extra: int, limit: int) -> tuple[int, int]:
    """[start, end) grown by `extra` (half before, the rest after), shifted back inside [0, limit), then clipped."""
    start -= extra // 2
    end += extra - extra // 2
    if end > limit:
        start, end = start - (end - limit), limit
    if start < 0:
        start, end = 0, end - start
    return start, min(end, limit)


def expand_to_aspect(
    region: tuple[int, int, int, int], width: int, height: int, image_w: int, image_h: int
) -> tuple[int, int, int, int]:
    """`region` grown along its short side to the aspect ratio of the processing size (width x height), staying
    inside the image (A1111's fix for "only masked": a 128x32 stroke processed at 512x512 becomes a 128x128 crop).
    Where the image is too small for the ratio the box stops at the image's edges."""
    x1, y1, x2, y2 = region
    target_ratio = width / height
    if (x2 - x1) / (y2 - y1) > target_ratio:
        extra = int((x2 - x1) / target_ratio - (y2 - y1))
        y1, y2 = _grow_span(y1, y2, extra, image_h)
    else:
        extra = int((y2 - y1) * target_ratio - (x2 - x1))
        x1, x2 = _grow_span(x1, x2, extra, image_w)
    return x1, y1, x2, y2


def crop_to_region(image: Image.Image, region: tuple[int, int, int, int], width: int, height: int) -> Image.Image:
    """The region cut out and brought to the processing size (A1111: "Resize and fill", for image and mask alike)."""
    return resize_image(2, image.crop(region), width, height)


# ----------------------------------------------------------------------------------------------- "fill" content

# (sigma, layers): coarse to fine. Each layer lays the unmasked colours, blurred, over the previous result with its
# own coverage as opacity, so colours from nearby win where they reach and far-away averages fill the rest.
_FILL_SCHEDULE = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2))


def _box_blur(values: np.ndarray, radius: int, axis: int) -> np.ndarray:
    if radius <= 0:
        return values
    values = np.moveaxis(values, axis, 0)
    length, window = values.shape[0], 2 * radius + 1
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    sums = np.zeros((padded.shape[0] + 1,) + padded.shape[1:])
    np.cumsum(padded, axis=0, out=sums[1:])
    return np.moveaxis((sums[window : window + length] - sums[:length]) / window, 0, axis)


def _soft_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-like blur of an HxW(xC) float array: three box passes per axis (O(1) per pixel at any sigma)."""
    radius = int(np.rint((np.sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0))
    for axis in (0, 1):
        for _ in range(3):
            values = _box_blur(values, radius, axis)
    return values


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill" masked content: the masked area painted with blurred colours of the unmasked area around it
    (used before encoding when inpainting_fill == 0). Unmasked pixels come back exactly; partly masked pixels are a
    blend. A mask that covers everything leaves nothing to take colours from: the result is black, as in A1111."""
    image = flatten(image)
    mask = mask.convert("L")
    if mask.size != image.size:
        raise InvalidRequestError(
            f"the mask is {mask.width}x{mask.height} but the image is "
            f"{image.width}x{image.height}; they must have the same size"
        )
    colours = np.asarray(image, dtype=np.float64)
    keep = 1.0 - np.asarray(mask, dtype=np.float64) / 255.0
    kept = colours * keep[..., None]  # premultiplied by how much each pixel is kept
    acc_colour = np.zeros_like(colours)  # premultiplied
    acc_alpha = np.zeros_like(keep)
    both = np.concatenate([kept, keep[..., None]], axis=2)  # one blur for colours and their coverage
    for sigma, layers in _FILL_SCHEDULE:
        blurred_both = _soft_blur(both, sigma)
        blurred, coverage = blurred_both[..., :3], np.clip(blurred_both[..., 3], 0.0, 1.0)
        colour = np.divide(blurred, coverage[..., None], out=np.zeros_like(blurred), where=coverage[..., None] > 1e-12)
        opacity = 1.0 - (1.0 - coverage) ** layers
        acc_colour = colour * opacity[..., None] + acc_colour * (1.0 - opacity[..., None])
        acc_alpha = opacity + acc_alpha * (1.0 - opacity)
    filled = np.divide(
        acc_colour, acc_alpha[..., None], out=np.zeros_like(acc_colour), where=acc_alpha[..., None] > 1e-12
    )
    out = colours * keep[..., None] + filled * (1.0 - keep[..., None])
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------------------------- paste back


def composite(
    original: Image.Image,
    generated: Image.Image,
    mask_for_overlay: Image.Image,
    region: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """The generated image laid over the original through the (blurred) overlay mask: where the mask is 0 the
    original's pixels come back exactly, where it is 255 the generated ones.

    With `region` ("only masked") the generated crop is first brought back to the region's size (A1111: "Crop and
    resize") and put in place; `original` and the mask are then at the full image's size.
    """
    original = flatten(original)
    generated = generated.convert("RGB")
    mask = mask_for_overlay.convert("L")
    if mask.size != original.size:
        raise ValueError(f"overlay mask is {mask.size}, original is {original.size}: they must match")
    if region is not None:
        x1, y1, x2, y2 = region
        placed = original.copy()
        placed.paste(resize_image(1, generated, x2 - x1, y2 - y1), (x1, y1))
        generated = placed
    elif generated.size != original.size:
        raise ValueError(f"generated image is {generated.size}, original is {original.size}: they must match")
    return Image.composite(generated, original, mask)


# ----------------------------------------------------------------------------------------------- outpaint


class OutpaintCanvas(NamedTuple):
    image: Image.Image  # RGB, the original at (left, up), new area pre-filled
    mask: Image.Image  # 'L', white over the new area (and `overlap` pixels into the original)


OUTPAINT_FILLS = ("edge", "fill", "none")


def outpaint_canvas(
    image: Image.Image,
    *,
    left: int = 0,
    right: int = 0,
    up: int = 0,
    down: int = 0,
    fill: str = "edge",
    overlap: int = 0,
) -> OutpaintCanvas:
    """A bigger canvas with the image in it, ready to inpaint the new area.

    Each side grows by a multiple of 8 pixels (the VAE works in 8-pixel cells). `fill` pre-fills the new area:
    "edge" stretches the outermost pixels outward, "fill" uses the fill_masked colours, "none" leaves it black (for
    latent noise / latent nothing). The mask reaches `overlap` pixels into the original on every side that grew, so
    that a blur there blends the seam (A1111's poor man's outpainting uses twice the mask blur).
    """
    amounts = {"left": left, "right": right, "up": up, "down": down}
    for side, amount in amounts.items():
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0 or amount % 8:
            hint = f", e.g. {max(8, (amount + 7) // 8 * 8)}" if isinstance(amount, int) else ""
            raise InvalidRequestError(
                f"outpaint '{side}' is {amount!r} pixels: each side must grow by a multiple "
                f"of 8 pixels (0, 8, 16, ...){hint}"
            )
    if not any(amounts.values()):
        raise InvalidRequestError("nothing to outpaint: give at least one of left, right, up, down (a multiple of 8)")
    if fill not in OUTPAINT_FILLS:
        raise InvalidRequestError(f"unknown outpaint fill {fill!r}: use one of {', '.join(OUTPAINT_FILLS)}")
    if overlap < 0:
        raise InvalidRequestError(f"outpaint overlap must be 0 or more, got {overlap}")

    source = flatten(image)
    w, h = source.size
    size = (w + left + right, h + up + down)
    mask = Image.new("L", size, 255)
    keep_box = (
        left + (overlap if left else 0),
        up + (overlap if up else 0),
        left + w - (overlap if right else 0),
        up + h - (overlap if down else 0),
    )
    if keep_box[0] < keep_box[2] and keep_box[1] < keep_box[3]:
        mask.paste(0, keep_box)

    if fill == "edge":
        pixels = np.pad(np.asarray(source), ((up, down), (left, right), (0, 0)), mode="edge")
        return OutpaintCanvas(Image.fromarray(pixels, "RGB"), mask)
    canvas = Image.new("RGB", size)
    canvas.paste(source, (left, up))
    if fill == "fill":
        new_area = Image.new("L", size, 255)
        new_area.paste(0, (left, up, left + w, up + h))
        canvas = fill_masked(canvas, new_area)
    return OutpaintCanvas(canvas, mask)


# ----------------------------------------------------------------------------------------------- latent side


def latent_mask(mask: Image.Image, latent_hw: tuple[int, int], *, round: bool = True) -> torch.Tensor:
    """(1, 1, h, w) float32 in [0, 1], 1 = repaint: the mask for blending latents each step (A1111's `nmask`;
    keep = 1 - this). A1111: bicubic resize to the latent size, then rounded to 0/1 when mask_round."""
    h, w = latent_hw
    small = mask.convert("L").resize((w, h), resample=Image.Resampling.BICUBIC)
    values = np.asarray(small, dtype=np.float32) / 255.0
    if round:
        values = np.around(values)
    return torch.from_numpy(values.copy())[None, None]


def mask_to_tensor(mask: Image.Image, *, round: bool = True) -> torch.Tensor:
    """(1, 1, H, W) float32 in [0, 1] at pixel size, 1 = repaint: the mask an inpainting checkpoint takes (A1111
    rounds it to 0/1 when mask_round, masks the image with it, then shrinks it to latent size, nearest)."""
    values = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
    if round:
        values = torch.round(values)
    return values[None, None]
