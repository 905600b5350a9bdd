"""A1111's `modules.sd_models`: the checkpoints the app lists and loads (sdui.extensions.models_api)."""

from sdui.extensions.models_api import (
    get_closet_checkpoint_match,
    list_models,
    model_hash,
    reload_model_weights,
    sd_models_attribute,
    select_checkpoint,
)


def __getattr__(name):
    return sd_models_attribute(name)  # checkpoints_list, checkpoint_aliases, model_data


__all__ = ["get_closet_checkpoint_match", "list_models", "model_hash", "reload_model_weights", "select_checkpoint"]
