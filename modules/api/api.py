"""A1111's `modules.api.api`: the helpers extensions' routes use to move images in and out of base64."""

from sdui.extensions.a1111_helpers import decode_base64_to_image, encode_pil_to_base64

__all__ = ["decode_base64_to_image", "encode_pil_to_base64"]
