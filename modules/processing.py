"""A1111's `modules.processing`: the processing object `p` (over our run or request), process_images(p),
Processed and fix_seed."""

from sdui.core.processed import Processed
from sdui.core.rng import fix_seed as get_fixed_seed
from sdui.extensions.bridge import process_images
from sdui.extensions.processing_view import ProcessingView, fix_seed

StableDiffusionProcessing = ProcessingView
StableDiffusionProcessingTxt2Img = ProcessingView
StableDiffusionProcessingImg2Img = ProcessingView

__all__ = [
    "Processed",
    "StableDiffusionProcessing",
    "StableDiffusionProcessingImg2Img",
    "StableDiffusionProcessingTxt2Img",
    "fix_seed",
    "get_fixed_seed",
    "process_images",
]
