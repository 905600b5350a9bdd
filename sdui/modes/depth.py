"""What depth2img adds: the depth map as the 5th UNet input channel (SD2 depth checkpoints), from an uploaded
map or the checkpoint's own MiDaS estimate, normalised as A1111 does."""

from __future__ import annotations

import torch

from sdui.errors import InvalidRequestError
from sdui.models.depth_estimator import depth_from_image, estimate_depth
from sdui.models.sd_model import SDModel
from sdui.request import Img2ImgRequest


def depth_conditioning(request: Img2ImgRequest, model: SDModel, pixels: torch.Tensor, latent_hw) -> torch.Tensor:
    """(N,1,h,w) in [-1, 1]: the uploaded depth map, else the checkpoint's own MiDaS estimate (A1111's depth2img)."""
    n = pixels.shape[0]
    if request.depth_map is not None:
        return depth_from_image(request.depth_map, latent_hw).repeat(n, 1, 1, 1)
    if model.depth_estimator is None:
        raise InvalidRequestError(
            "This depth checkpoint carries no depth estimator (no depth_model.* weights): "
            "upload a depth map (depth_map), or use a checkpoint that includes MiDaS, such as "
            "512-depth-ema."
        )
    device = next(model.depth_estimator.parameters()).device
    return estimate_depth(model.depth_estimator, pixels.to(device), latent_hw)
