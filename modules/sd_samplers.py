"""A1111's `modules.sd_samplers`: the sampler table (sdui.extensions.models_api)."""

from sdui.extensions.models_api import SamplerData, find_sampler_config, sd_samplers_attribute, visible_sampler_names


def __getattr__(name):
    return sd_samplers_attribute(name)  # all_samplers, samplers, samplers_for_img2img, all_samplers_map


__all__ = ["SamplerData", "find_sampler_config", "visible_sampler_names"]
