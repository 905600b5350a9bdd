"""A1111's `modules.devices`: the app's device and dtypes, torch_gc (sdui.extensions.models_api)."""

from sdui.extensions.models_api import (
    autocast,
    cpu,
    device_attribute,
    get_optimal_device,
    get_optimal_device_name,
    has_mps,
    torch_gc,
    without_autocast,
)


def __getattr__(name):
    return device_attribute(name)  # device, dtype, dtype_vae, dtype_unet, device_interrogate, ...


__all__ = [
    "autocast",
    "cpu",
    "get_optimal_device",
    "get_optimal_device_name",
    "has_mps",
    "torch_gc",
    "without_autocast",
]
