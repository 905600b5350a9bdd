"""The ControlNet preprocessors that need no weights, as small pure functions: HWC uint8 RGB image in, HWC uint8 map
out, each as sd-webui-controlnet computes it (OpenCV and numpy, the same operations in the same order).

Those that work at the preprocessor resolution resize the image so its short side is that many pixels (bicubic up,
area down); the edge detectors run on it edge-padded to multiples of 64 and cropped back, as the extension's do,
which decides what they see at the right and bottom borders. preprocessors.py lists them with their settings.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

# ---------------------------------------------------------------------------------------------------------- helpers


def to_rgb(image: np.ndarray) -> np.ndarray:
    """HWC uint8 with 3 channels: grey is repeated, RGBA is laid over white (the extension's HWC3)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an HW or HWC uint8 image, got {image.dtype} {image.shape}")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    if channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    return image


def scaled_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(h, w) with the short side at `resolution` (rounded half to even, as numpy's round the extension uses)."""
    k = resolution / min(height, width)
    return max(1, round(height * k)), max(1, round(width * k))


def _grey(single: np.ndarray) -> np.ndarray:
    return np.repeat(single[:, :, None], 3, axis=2)


def _at_resolution(image: np.ndarray, resolution: int) -> np.ndarray:
    """The image with its short side at `resolution`: bicubic up, area down (the extension's choice)."""
    height, width = image.shape[:2]
    new_h, new_w = scaled_size(height, width, resolution)
    interpolation = cv2.INTER_CUBIC if resolution > min(height, width) else cv2.INTER_AREA
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def _on_padded(image: np.ndarray, resolution: int, detect: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run `detect` at the resolution on the image edge-padded to multiples of 64, and crop the padding off the
    result: the extension's way, which decides what edge detectors see at the right and bottom borders."""
    resized = _at_resolution(image, resolution)
    height, width = resized.shape[:2]
    padded = np.pad(resized, ((0, -height % 64), (0, -width % 64), (0, 0)), mode="edge")
    return np.ascontiguousarray(detect(padded)[:height, :width])


# ------------------------------------------------------------------------------------------ the built-in preprocessors


def canny(image: np.ndarray, resolution: int, low: float, high: float) -> np.ndarray:
    """White one-pixel edges on black: OpenCV's Canny with the hysteresis thresholds (threshold_a, threshold_b)."""
    return _grey(_on_padded(image, resolution, lambda x: cv2.Canny(x, low, high)))


def threshold(image: np.ndarray, resolution: int, level: float) -> np.ndarray:
    """White where every channel is above `level`, black elsewhere."""
    return _grey(_on_padded(image, resolution, lambda x: np.where(x.min(axis=2) > level, 255, 0).astype(np.uint8)))


def scribble_xdog(image: np.ndarray, resolution: int, level: float) -> np.ndarray:
    """White scribble lines where a difference of Gaussians (sigma 0.5 vs 5) darkens by more than level / 2."""

    def xdog(x: np.ndarray) -> np.ndarray:
        fine = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 0.5)
        coarse = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 5.0)
        dog = (255 - (coarse - fine).min(axis=2)).clip(0, 255).astype(np.uint8)
        # 2 * (255 - dog) wraps around at 256: the extension computes it in uint8, and its maps are the reference
        return np.where(2 * (255 - dog.astype(np.int32)) % 256 > level, 255, 0).astype(np.uint8)

    return _grey(_on_padded(image, resolution, xdog))


def lineart_standard(image: np.ndarray, resolution: int) -> np.ndarray:
    """White lines where the image is darker than its blur (sigma 6), scaled by the median line strength."""

    def lines(x: np.ndarray) -> np.ndarray:
        pixels = x.astype(np.float32)
        intensity = (cv2.GaussianBlur(pixels, (0, 0), 6.0) - pixels).min(axis=2).clip(0, 255)
        strong = intensity[intensity > 8]
        intensity = intensity / max(16.0, float(np.median(strong)) if strong.size else 0.0) * 127
        return intensity.clip(0, 255).astype(np.uint8)

    return _grey(_on_padded(image, resolution, lines))


def invert(image: np.ndarray) -> np.ndarray:
    """Black lines on white turned into the white-on-black maps the models were trained on; no resizing."""
    return 255 - image


def blur_gaussian(image: np.ndarray, resolution: int, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(_at_resolution(image, resolution), (0, 0), sigma)


def tile_resample(image: np.ndarray, factor: float) -> np.ndarray:
    """The image shrunk by `factor` (area averaging); below 1.1 it is left as it is. No preprocessor resolution."""
    if factor < 1.1:
        return image
    height, width = image.shape[:2]
    size = (max(1, int(width / factor)), max(1, int(height / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shuffle_seed(seed: int, subseed: int) -> int:
    """The numpy seed the extension sets before preprocessing: (seed + subseed) mod 2^32, with -1 taken as 0. The
    caller passes the job's first seed for a subseed of -1, as the extension does."""
    return (max(int(seed), 0) + max(int(subseed), 0)) & 0xFFFFFFFF


def _noise_field(rng: np.random.RandomState, height: int, width: int, cell: int = 256) -> np.ndarray:
    """Smooth noise in [0, 1]: uniform values on a grid `cell` pixels apart, bicubically interpolated."""
    grid = rng.uniform(low=0, high=1, size=(height // cell + 2, width // cell + 2))
    field = cv2.resize(grid, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    field = field[cell : cell + height, cell : cell + width]
    field = field - field.min()
    return field / field.max()


def shuffle(image: np.ndarray, resolution: int, seed: int) -> np.ndarray:
    """The content shuffle: every pixel fetched from a place a smooth random field picks. The extension draws from
    numpy's global generator after seeding it; a RandomState with the same seed gives the same numbers."""
    resized = _at_resolution(image, resolution)
    height, width = resized.shape[:2]
    rng = np.random.RandomState(seed & 0xFFFFFFFF)
    from_x = _noise_field(rng, height, width) * float(width - 1)
    from_y = _noise_field(rng, height, width) * float(height - 1)
    return cv2.remap(resized, from_x.astype(np.float32), from_y.astype(np.float32), cv2.INTER_LINEAR)


def recolor_luminance(image: np.ndarray, gamma: float) -> np.ndarray:
    """Grey map of the image's lightness raised to `gamma`. The extension converts its RGB array as if it were BGR
    (so R and B trade weights); we do the same, since the map is what the recolor models are given."""
    lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, :, 0]
    return _grey(((lightness.astype(np.float32) / 255.0) ** gamma * 255.0).clip(0, 255).astype(np.uint8))


def recolor_intensity(image: np.ndarray, gamma: float) -> np.ndarray:
    """Grey map of max(R, G, B) (HSV's value) raised to `gamma`."""
    value = image.max(axis=2)
    return _grey(((value.astype(np.float32) / 255.0) ** gamma * 255.0).clip(0, 255).astype(np.uint8))


def color_grid(image: np.ndarray, resolution: int) -> np.ndarray:
    """The T2I colour adapter's map: the image at the resolution (area), averaged into 64-pixel cells."""
    height, width = image.shape[:2]
    if height < width:  # the annotator's own rounding (from the aspect ratio, not the scale factor)
        new_h, new_w = resolution, max(1, round(width / height * resolution))
    else:
        new_h, new_w = max(1, round(height / width * resolution)), resolution
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    cells = cv2.resize(resized, (max(1, new_w // 64), max(1, new_h // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(cells, (new_w, new_h), interpolation=cv2.INTER_NEAREST)


def inpaint_map(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """RGBA: the image, and the mask (white = repaint) in the alpha channel, how the extension carries inpaint
    units to the model (which sees the kept pixels and -1 where alpha > 127: `inpaint_hint`). No mask: nothing
    masked. A mask of another size is resized to the image."""
    height, width = rgb.shape[:2]
    if mask is None:
        alpha = np.zeros((height, width), np.uint8)
    else:
        alpha = mask if mask.ndim == 2 else mask[:, :, 0]
        if alpha.shape != (height, width):
            alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.concatenate([rgb, alpha[:, :, None]], axis=2)


def inpaint_hint(rgba: np.ndarray) -> np.ndarray:
    """What an inpaint ControlNet is fed for an RGBA map (at the generation size): float32 HWC, the image in [0, 1]
    where kept and -1 where masked (alpha > 127), the extension's `c * (1 - m) - m`."""
    masked = rgba[:, :, 3:4] > 127
    return np.where(masked, -1.0, rgba[:, :, :3].astype(np.float32) / 255.0).astype(np.float32)
