"""The depth_midas and normal_midas preprocessors (internal names "depth", "normal_map"): MiDaS DPT-Hybrid run the
way sd-webui-controlnet runs it.

The network comes from the extension's annotator file dpt_hybrid-midas-501f0c75.pt in the annotator folder, or,
without that file, from the SD 2 depth checkpoint in use: both hold the same MiDaS DPT-Hybrid (the checkpoint
under `depth_model.model.`, the file without a prefix), so the checkpoint's converter
(sdui/models/depth_estimator.py) loads both. The file is read with torch's weights-only unpickler and never
downloaded.

The maps, as the extension's midas preprocessors make them: the image's short side resized to the preprocessor
resolution, edge-padded to multiples of 64; the network on that image in [-1, 1] at its own size (no resize to 384);
then, over the padded map and cropped back afterwards:
- depth: min-max scaled to 0..255 (truncated to uint8), grey in three channels;
- normals: (Sobel x, Sobel y, 2 pi) of the raw depth, x and y zeroed where the scaled depth is below the background
  threshold, to unit length, then 127.5 * n + 127.5 as RGB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sdui.controlnet.builtin_preprocessors import _on_padded
from sdui.errors import CheckpointError
from sdui.models.depth_estimator import DEPTH_PREFIX, DepthEstimator, load_depth_estimator_from_checkpoint
from sdui.models.loading import read_state_dict

ANNOTATOR_FILE = "midas/dpt_hybrid-midas-501f0c75.pt"  # the extension's annotator/downloads layout
NORMAL_Z = 2 * np.pi  # the extension's fixed z component: how strongly a slope tilts the normal


# ------------------------------------------------------------------------------------------------------ loading


def load_annotator(path: Path) -> DepthEstimator:
    """The MiDaS DPT-Hybrid in an annotator file (keys as MiDaS names them), on the CPU in float32."""
    weights = read_state_dict(path)  # weights only: a pickle that asks for code is refused (CheckpointError)
    # the converter reads an SD 2 depth checkpoint's depth_model.model.* names: the same network, one prefix more
    prefixed = {k if k.startswith(DEPTH_PREFIX) else DEPTH_PREFIX + k: v for k, v in weights.items()}
    try:
        estimator = load_depth_estimator_from_checkpoint(prefixed, torch.float32)
    except CheckpointError as e:
        raise _not_the_annotator(path, e.message) from None
    if estimator is None:  # unreachable with the prefix added; kept so a None never reaches the caller
        raise _not_the_annotator(path, "it holds no MiDaS weights")
    return estimator


def _not_the_annotator(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"The ControlNet annotator file {path} is not the MiDaS DPT-Hybrid that depth_midas runs. Details: {why} "
        f"Replace it with sd-webui-controlnet's {Path(ANNOTATOR_FILE).name} (its annotator/downloads/midas/ file)."
    )


@dataclass(frozen=True)
class _Key:
    path: Path
    mtime_ns: int
    size: int
    device: str


class AnnotatorCache:
    """One loaded annotator at a time (the extension keeps one per module too), reloaded when its file changes
    (path, size, mtime) or another device is asked for. Thread-safe: the API and the job worker both run maps."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key: _Key | None = None
        self._estimator: DepthEstimator | None = None

    def get(self, path: Path, device: torch.device) -> DepthEstimator:
        stat = path.stat()
        key = _Key(path.resolve(), stat.st_mtime_ns, stat.st_size, str(torch.device(device)))
        with self._lock:
            if key != self._key:
                self._key, self._estimator = None, None  # the old one goes before the new one loads
                self._estimator = load_annotator(path).to(device)
                self._key = key
            return self._estimator

    def clear(self) -> None:
        with self._lock:
            self._key, self._estimator = None, None


CACHE = AnnotatorCache()  # process-wide like the extension's: keyed by the file, so data folders never mix


# ------------------------------------------------------------------------------------------------------ the map


@torch.no_grad()
def _midas_depth(estimator: DepthEstimator, padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the network's depth, the same min-max scaled to 0..1): HW float32 each, for one HWC uint8 image whose sides
    are multiples of 64."""
    param = next(estimator.parameters())
    # 1. [-1, 1], as the extension feeds MiDaS; then the estimator's own mean/std (MiDaS' 0.5/0.5 leaves it as it is)
    x = torch.from_numpy(padded).float().to(param.device) / 127.5 - 1.0
    x = x.permute(2, 0, 1).unsqueeze(0)
    mean = x.new_tensor(estimator.image_mean).view(1, 3, 1, 1)
    std = x.new_tensor(estimator.image_std).view(1, 3, 1, 1)
    x = x * (0.5 / std) + (0.5 - mean) / std
    # 2. the network at the image's own size
    depth = estimator(x.to(param.dtype)).float()
    if tuple(depth.shape[-2:]) != padded.shape[:2]:  # a DPT answers at its input size; any other model is resized
        depth = F.interpolate(depth[:, None], size=padded.shape[:2], mode="bicubic", align_corners=False)[:, 0]
    # 3. min-max over the whole (padded) map, as the extension does; a flat map scales to 0, not NaN
    scaled = depth[0] - depth[0].min()
    peak = scaled.max()
    scaled = scaled / peak if peak > 0 else scaled
    return depth[0].cpu().numpy(), scaled.cpu().numpy()


def _normals(depth: np.ndarray, scaled: np.ndarray, background: float) -> np.ndarray:
    """RGB normals of a depth map: the slopes (Sobel) with z = NORMAL_Z, flat where the scaled depth < background."""
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    far = scaled < background
    x[far], y[far] = 0, 0
    normal = np.stack([x, y, np.full_like(x, NORMAL_Z)], axis=2)
    normal /= np.sum(normal**2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)


def depth_midas(image: np.ndarray, resolution: int, estimator: DepthEstimator) -> np.ndarray:
    """The depth_midas map of an HWC uint8 RGB image: HWC uint8, grey in three channels, short side `resolution`."""

    def grey(padded: np.ndarray) -> np.ndarray:
        return (_midas_depth(estimator, padded)[1] * 255.0).clip(0, 255).astype(np.uint8)

    return np.repeat(_on_padded(image, resolution, grey)[:, :, None], 3, axis=2)


def normal_midas(image: np.ndarray, resolution: int, background: float, estimator: DepthEstimator) -> np.ndarray:
    """The normal_midas map of an HWC uint8 RGB image: HWC uint8 RGB normals, short side `resolution`;
    `background` (threshold_a, 0..1) flattens what is farther than that share of the depth range."""
    return _on_padded(image, resolution, lambda padded: _normals(*_midas_depth(estimator, padded), background))


def estimator_for(annotator_file: Path | None, fallback: DepthEstimator | None, device: torch.device | None):
    """The network depth_midas and normal_midas run: the annotator file's (cached, on `device`, float32), else the
    checkpoint's own (left where its model keeps it); None when there is neither."""
    if annotator_file is not None:
        return CACHE.get(annotator_file, torch.device(device or "cpu"))
    return fallback
