"""The ControlNet preprocessors that run an annotator model (depth, pose, line art, soft edges, segmentation, ...):
which files each needs, which of them run here, and the refusal a user gets while one cannot run.

The files are the ones sd-webui-controlnet downloads into its `annotator/downloads/<folder>/`; a user copies them
into `models/ControlNet-annotators/`, either flat or in those same sub-folders; nothing is ever downloaded. Those in
RUNNABLE run once their files are in place (depth_midas and normal_midas also on an SD 2 depth checkpoint's own
MiDaS: midas_annotator.py); every other one is listed (the extension's API lists them) and `refusal` says what is
missing.
"""

from __future__ import annotations

from pathlib import Path

from sdui.errors import UserError

DEFAULT_FOLDER = "models/ControlNet-annotators"

_MIDAS = "midas/dpt_hybrid-midas-501f0c75.pt"
_HED = "hed/ControlNetHED.pth"
_PIDINET = "pidinet/table5_pidinet.pth"
_BODY = "openpose/body_pose_model.pth"
_HAND = "openpose/hand_pose_model.pth"
_FACE = "openpose/facenet.pth"
_LERES = "leres/res101.pth"
_DENSEPOSE = "densepose/densepose_r50_fpn_dl.torchscript"

# module name (the extension's internal key) -> files under the annotator folder, in the extension's layout
FILES: dict[str, tuple[str, ...]] = {
    "depth": (_MIDAS,),
    "normal_map": (_MIDAS,),
    "depth_leres": (_LERES,),
    "depth_leres++": (_LERES, "leres/latest_net_G.pth"),
    "depth_zoe": ("zoedepth/ZoeD_M12_N.pt",),
    "depth_anything": ("depth_anything/depth_anything_vitl14.pth",),
    "hed": (_HED,),
    "hed_safe": (_HED,),
    "scribble_hed": (_HED,),
    "pidinet": (_PIDINET,),
    "pidinet_safe": (_PIDINET,),
    "pidinet_sketch": (_PIDINET,),
    "pidinet_scribble": (_PIDINET,),
    "te_hed": ("TEED/7_model.pth",),
    "mlsd": ("mlsd/mlsd_large_512_fp32.pth",),
    "openpose": (_BODY,),
    "openpose_hand": (_BODY, _HAND),
    "openpose_face": (_BODY, _FACE),
    "openpose_faceonly": (_FACE,),
    "openpose_full": (_BODY, _HAND, _FACE),
    "dw_openpose_full": ("openpose/yolox_l.onnx", "openpose/dw-ll_ucoco_384.onnx"),
    "animal_openpose": ("openpose/yolox_l.onnx", "openpose/rtmpose-m_ap10k_256.onnx"),
    "densepose": (_DENSEPOSE,),
    "densepose_parula": (_DENSEPOSE,),
    "segmentation": ("uniformer/upernet_global_small.pth",),
    "oneformer_coco": ("oneformer/150_16_swin_l_oneformer_coco_100ep.pth",),
    "oneformer_ade20k": ("oneformer/250_16_swin_l_oneformer_ade20k_160k.pth",),
    "anime_face_segment": ("anime_face_segment/UNet.pth",),
    "normal_bae": ("normal_bae/scannet.pt",),
    "lineart": ("lineart/sk_model.pth",),
    "lineart_coarse": ("lineart/sk_model2.pth",),
    "lineart_anime": ("lineart_anime/netG.pth",),
    "lineart_anime_denoise": ("manga_line/erika.pth",),
    "inpaint_only+lama": ("lama/ControlNetLama.pth",),
}

_EMBEDDING = "it makes an image embedding for IP-Adapter, Revision, T2I style or InstantID models (not supported)"

# modules no file makes usable here: what they need instead
NOT_SUPPORTED: dict[str, str] = {
    "clip_vision": _EMBEDDING,
    "revision_clipvision": _EMBEDDING,
    "revision_ignore_prompt": _EMBEDDING,
    "ip-adapter_clip_sd15": _EMBEDDING,
    "ip-adapter_clip_sdxl_plus_vith": _EMBEDDING,
    "ip-adapter_clip_sdxl": _EMBEDDING,
    "ip-adapter_face_id": _EMBEDDING,
    "ip-adapter_face_id_plus": _EMBEDDING,
    "instant_id_face_keypoints": "it needs the insightface package and its antelopev2 models",
    "instant_id_face_embedding": _EMBEDDING,
    "mediapipe_face": "it needs the mediapipe package",
    "depth_hand_refiner": "it needs the hand_refiner package and its MeshGraphormer models",
}

NAMES = frozenset(FILES) | frozenset(NOT_SUPPORTED)

# modules this build runs once their files are in place (preprocessors.run has their runners)
RUNNABLE = frozenset({"depth", "normal_map"})
# modules an SD 2 depth checkpoint's own MiDaS can run without their file
DEPTH_MODEL_RUNS = frozenset({"depth", "normal_map"})


class AnnotatorUnavailableError(UserError):
    status_code = 422  # the extension answers an unusable module with 422


def find_file(relative: str, folder: Path | None) -> Path | None:
    """Where annotator file `relative` (e.g. "midas/x.pt") is: `folder/midas/x.pt` or `folder/x.pt`, else None."""
    if folder is None:
        return None
    return next((path for path in (folder / relative, folder / Path(relative).name) if path.is_file()), None)


def missing_files(name: str, folder: Path | None) -> list[str]:
    """The files `name` needs that are in neither `folder/<file>` nor `folder/<sub-folder>/<file>`."""
    return [relative for relative in FILES.get(name, ()) if find_file(relative, folder) is None]


def available(name: str, folder: Path | None, has_depth_model: bool = False) -> bool:
    """Whether annotator module `name` can run here: a runner and its files, or (depth) a depth model loaded."""
    if name not in RUNNABLE:
        return False
    return not missing_files(name, folder) or (has_depth_model and name in DEPTH_MODEL_RUNS)


def refusal(name: str, label: str, folder: Path | None) -> AnnotatorUnavailableError:
    """Why preprocessor `name` (shown as `label`) cannot run, and what to do instead."""
    where = str(folder) if folder is not None else DEFAULT_FOLDER
    use_a_map = "or preprocess the image elsewhere and send the map with preprocessor 'none'"
    if name in NOT_SUPPORTED:
        return AnnotatorUnavailableError(
            f"ControlNet preprocessor '{label}' is not supported here: {NOT_SUPPORTED[name]}. "
            f"Choose another preprocessor, {use_a_map}."
        )
    missing = missing_files(name, folder)
    if missing:
        files = ", ".join(Path(relative).name for relative in missing)
        layout = ", ".join(missing)
        depth_model = " (or load an SD 2 depth checkpoint: its own MiDaS is used)" if name in DEPTH_MODEL_RUNS else ""
        return AnnotatorUnavailableError(
            f"ControlNet preprocessor '{label}' needs the annotator file(s) {files}: put them in {where} (flat, or as "
            f"sd-webui-controlnet's annotator/downloads keeps them: {layout}){depth_model}, {use_a_map}."
        )
    return AnnotatorUnavailableError(
        f"ControlNet preprocessor '{label}' runs an annotator model, and this build does not run annotator models yet "
        f"beyond MiDaS (depth_midas, normal_midas; its files are in place in {where}). Choose a built-in preprocessor "
        f"or a MiDaS one, {use_a_map}."
    )
