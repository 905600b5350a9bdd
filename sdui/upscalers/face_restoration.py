"""Face restoration (A1111's GFPGAN / CodeFormer, and RestoreFormer): find the faces, restore each aligned 512x512
crop with a spandrel-loaded model, paste them back, blend the result over the input by `visibility`.

Detection (RetinaFace), 5-point alignment and the paste-back mask (ParseNet when its file is present) are facexlib's,
reading the files A1111 users already have in models/GFPGAN. facexlib downloads a missing file from GitHub: every file
it would look for is checked here first, so a missing one is a FaceRestorationError naming the file and the folder and
facexlib's download is never reached. The restorers' weights are read with safetensors or
`torch.load(weights_only=True)`. CodeFormer's architecture lives in `spandrel_extra_arches` (non-commercial licence,
not a requirement): it is offered only when that package is importable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdui.errors import UserError
from sdui.upscalers.spandrel_files import SUFFIXES, load_descriptor

log = logging.getLogger(__name__)

DETECTION_FILE = "detection_Resnet50_Final.pth"  # facexlib's retinaface_resnet50
PARSING_FILE = "parsing_parsenet.pth"  # ParseNet: the paste-back mask follows the face (facexlib always loads it)
FACE_SIZE = 512  # the crop every restorer here was trained on
MAX_FACES = 64  # restored per image, the most confident first: each costs a model run and full-size masks
NOISE_SEED = 0  # GFPGAN's decoder injects noise: seeded so the same input gives the same output

# A1111's restorer name -> what its file stem contains, and the spandrel architecture id it must load as
RESTORERS = {"CodeFormer": ("codeformer", "CodeFormer"), "GFPGAN": ("gfpgan", "GFPGAN")}
RESTORERS["RestoreFormer"] = ("restoreformer", "RestoreFormer")


class FaceRestorationError(UserError):
    status_code = 422


@dataclass(frozen=True)
class Restorer:
    name: str  # "GFPGAN", "CodeFormer", "RestoreFormer"
    path: Path | None  # its weights, None when unavailable
    reason: str = ""  # why it is unavailable


# 1. Pure steps -------------------------------------------------------------------------------------------------


def blend(original: Image.Image, restored: Image.Image, visibility: float) -> Image.Image:
    """A1111's visibility: 0 = the input exactly, 1 = the restored image."""
    if visibility <= 0:
        return original
    if visibility >= 1:
        return restored
    return Image.blend(original, restored, visibility)


def restore_crop(model: torch.nn.Module, crop_bgr: np.ndarray, device: torch.device, **kwargs) -> np.ndarray:
    """One aligned face crop (uint8 BGR, as facexlib gives it) through a restorer that works in [-1, 1] RGB."""
    x = torch.from_numpy(crop_bgr[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    x = (x * 2 - 1).to(device, next(model.parameters()).dtype)
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(NOISE_SEED)
        out = model(x, **kwargs)[0]
    out = ((out[0].float().clamp(-1, 1) + 1) / 2 * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[:, :, ::-1])


def restore_at(helper, image: Image.Image, landmarks: list[np.ndarray], restore: Callable) -> Image.Image:
    """Align the faces at the given 5-point landmarks, restore each crop with `restore` (BGR -> BGR), paste back.
    `helper` is a facexlib FaceRestoreHelper; its own detection is not used here, so tests can give known faces."""
    helper.clean_all()
    helper.read_image(np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]))
    helper.all_landmarks_5 = [np.asarray(p, dtype=np.float32).reshape(5, 2) for p in landmarks]
    if not helper.all_landmarks_5:
        return image.convert("RGB")
    helper.align_warp_face()
    for crop in helper.cropped_faces:
        helper.add_restored_face(restore(crop))
    helper.get_inverse_affine(None)
    pasted = helper.paste_faces_to_input_image()
    return Image.fromarray(np.clip(pasted, 0, 255).round().astype(np.uint8)[:, :, ::-1].copy())


def detect(helper, image: Image.Image, max_faces: int = MAX_FACES) -> list[np.ndarray]:
    """The 5-point landmarks of the faces RetinaFace finds (A1111's settings: resize 640, eye distance over 5), the
    `max_faces` most confident (RetinaFace lists them by confidence)."""
    helper.clean_all()
    helper.read_image(np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]))
    helper.get_face_landmarks_5(only_center_face=False, resize=640, eye_dist_threshold=5)
    if len(helper.all_landmarks_5) > max_faces:
        log.warning("%d faces found; restoring the %d most confident", len(helper.all_landmarks_5), max_faces)
    return [np.asarray(p) for p in helper.all_landmarks_5[:max_faces]]


# 2. The models ------------------------------------------------------------------------------------------------


def codeformer_available() -> str:
    """'' when CodeFormer can be loaded, else why not."""
    try:
        import spandrel_extra_arches  # noqa: F401
    except ImportError:
        return (
            "CodeFormer needs the spandrel_extra_arches package (non-commercial licence), which is not installed; "
            "install it in the venv (pip install spandrel_extra_arches) or use GFPGAN"
        )
    return ""


def find_restorers(folders: list[Path]) -> list[Restorer]:
    """Every restorer A1111 knows, with the newest-named file of each ("GFPGANv1.4" over "GFPGANv1.3")."""
    files = sorted(
        (p for f in folders if f.is_dir() for p in f.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()),
        key=lambda p: p.name.lower(),
    )
    found = []
    for name, (stem_part, _) in RESTORERS.items():
        matches = [p for p in files if stem_part in p.stem.lower()]
        where = " or ".join(str(f) for f in folders)
        if name == "CodeFormer" and (reason := codeformer_available()):
            found.append(Restorer(name, None, reason))
        elif not matches:
            found.append(Restorer(name, None, f"no {name} weights (a file named like {name}*.pth) in {where}"))
        else:
            found.append(Restorer(name, matches[-1]))
    return found


def load_restorer(path: Path, architecture: str) -> torch.nn.Module:
    """The bare network of a restorer file, checked to be the expected architecture."""
    if architecture == "CodeFormer":
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
    unknown = f"is not a {architecture} model spandrel knows; remove it"
    model = load_descriptor(path, FaceRestorationError, "face restoration", unknown)
    if model.architecture.id != architecture:
        raise FaceRestorationError(f"{path} is a {model.architecture.name} model, not {architecture}; remove it")
    log.info("Loaded face restorer %s (%s)", path.name, architecture)
    return model.model.eval()


def required_files(folder: Path) -> list[Path]:
    return [folder / DETECTION_FILE, folder / PARSING_FILE]


def missing_message(missing: list[Path], folder: Path) -> str:
    return (
        f"face detection needs {', '.join(p.name for p in missing)} in {folder} (facexlib's RetinaFace and ParseNet "
        "weights, which A1111 keeps there); copy the file into that folder: nothing is downloaded"
    )


def make_helper(folder: Path, device: torch.device):
    """facexlib's FaceRestoreHelper reading its weights from `folder` only, set up as A1111 does: a missing file is
    refused here, before facexlib (which would download it) is called."""
    missing = [p for p in required_files(folder) if not p.is_file()]
    if missing:
        raise FaceRestorationError(missing_message(missing, folder))
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper

    return FaceRestoreHelper(
        upscale_factor=1,
        face_size=FACE_SIZE,
        crop_ratio=(1, 1),
        det_model="retinaface_resnet50",
        save_ext="png",
        use_parse=True,
        device=device,
        model_rootpath=str(folder),
    )


# 3. The process's catalogue -----------------------------------------------------------------------------------


class FaceRestorers:
    """The restorers in the configured folders; the last used network and the detection helper kept loaded."""

    def __init__(self) -> None:
        self.detection_folder = Path("models/GFPGAN")
        self.folders: list[Path] = [self.detection_folder]
        self.device: Callable[[], torch.device] = lambda: torch.device("cpu")
        self._loaded: tuple[Path, float, torch.nn.Module] | None = None
        self._helper: tuple[str, object] | None = None
        self._lock = threading.Lock()
        self.max_faces = MAX_FACES

    def configure(self, detection_folder: Path, folders: list[Path], device: Callable[[], torch.device]) -> None:
        self.detection_folder, self.folders, self.device = detection_folder, list(folders), device
        self.release()

    def list(self) -> list[Restorer]:
        return find_restorers(self.folders)

    def available(self) -> list[Restorer]:
        return [r for r in self.list() if r.path is not None]

    def get(self, name: str) -> Restorer:
        """The restorer by A1111's name (any case); FaceRestorationError saying why it cannot be used."""
        for r in self.list():
            if r.name.lower() == name.lower():
                if r.path is None:
                    raise FaceRestorationError(f"face restoration with {r.name} is not available: {r.reason}")
                return r
        raise FaceRestorationError(f"no face restorer {name!r}; choose one of: {', '.join(RESTORERS)}")

    def require(self, name: str) -> Restorer:
        """`get`, and the detection weights checked too: every file a run reads is known present before it starts."""
        restorer = self.get(name)
        missing = [p for p in required_files(self.detection_folder) if not p.is_file()]
        if missing:
            raise FaceRestorationError(missing_message(missing, self.detection_folder))
        return restorer

    def restore(self, image: Image.Image, name: str, visibility: float, codeformer_weight: float = 0.5):
        """The image with its faces restored by `name`, blended over it by `visibility` (0: returned unchanged)."""
        image = image.convert("RGB")
        if visibility <= 0:
            return image
        restorer = self.get(name)
        device = self.device()
        kwargs = {"weight": codeformer_weight, "adain": True} if restorer.name == "CodeFormer" else {}
        with self._lock:  # one helper and one network in memory, one user at a time
            helper = self._get_helper(device)
            model = self._load(restorer).to(device)
            landmarks = detect(helper, image, self.max_faces)
            restored = restore_at(helper, image, landmarks, lambda crop: restore_crop(model, crop, device, **kwargs))
        return blend(image, restored, visibility)

    def release(self) -> None:
        with self._lock:
            self._loaded, self._helper = None, None

    def _get_helper(self, device: torch.device):
        key = f"{self.detection_folder}|{device}"
        if self._helper is None or self._helper[0] != key:
            self._helper = (key, make_helper(self.detection_folder, device))
        return self._helper[1]

    def _load(self, restorer: Restorer) -> torch.nn.Module:
        mtime = restorer.path.stat().st_mtime
        if self._loaded is None or self._loaded[:2] != (restorer.path, mtime):
            self._loaded = None
            self._loaded = (restorer.path, mtime, load_restorer(restorer.path, RESTORERS[restorer.name][1]))
        return self._loaded[2]


# The process's catalogue, configured by the app with its folders and device (sdui/app/context.py).
FACE_RESTORERS = FaceRestorers()
