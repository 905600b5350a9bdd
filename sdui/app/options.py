"""Settings (config.json) with A1111's keys and defaults.

`opts.key` and `opts.get(key)` read a setting (its default when unset); `opts.set(key, value)` casts and validates,
then runs the key's onchange callbacks (a failing callback puts the old value back and re-raises); `opts.save()`
writes config.json atomically. A corrupt config.json is kept as config.json.bak and the program starts on defaults.
Keys we do not know (old A1111 configs, extensions, clients) are kept and saved as they are, without validation.
`null` for a known key resets it to its default.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from sdui.errors import InvalidRequestError, UserError
from sdui.atomic import write_text_atomic

log = logging.getLogger(__name__)

# Largest width*height a request may ask for: 4096x4096 (or e.g. 8192x2048). Covers 2x hires fix of SDXL sizes;
# beyond it one VAE decode needs tens of GB. Users with the memory raise it in Settings.
MAX_IMAGE_PIXELS = 4096 * 4096

OPTION_DEFAULTS: dict[str, Any] = {
    # model
    "sd_model_checkpoint": "",
    "sd_checkpoint_hash": "",             # sha256 of the loaded checkpoint (A1111 keeps it here)
    "sd_checkpoint_cache": 1,             # checkpoints kept in RAM, the loaded one included
    "sd_checkpoints_limit": 1,
    "sd_vae": "Automatic",
    "sd_vae_overrides_per_model_preferences": True,
    "sd_unet": "Automatic",
    "auto_vae_precision": True,
    "sd_vae_encode_method": "Full",
    "sd_vae_decode_method": "Full",
    # prompt and noise
    "CLIP_stop_at_last_layers": 1,
    "emphasis": "Original",
    "comma_padding_backtrack": 20,
    "randn_source": "CPU",
    "eta_noise_seed_delta": 0,
    "enable_batch_seeds": True,
    "upcast_attn": False,
    "tiling": False,
    "max_image_pixels": MAX_IMAGE_PIXELS,
    # samplers
    "eta_ddim": 0.0,
    "eta_ancestral": 1.0,
    "ddim_discretize": "uniform",
    "s_churn": 0.0,
    "s_tmin": 0.0,
    "s_tmax": 0.0,
    "s_noise": 1.0,
    "sigma_min": 0.0,
    "sigma_max": 0.0,
    "rho": 0.0,
    "always_discard_next_to_last_sigma": False,
    "sgm_noise_multiplier": False,
    "uni_pc_variant": "bh1",
    "uni_pc_skip_type": "time_uniform",
    "uni_pc_order": 3,
    "uni_pc_lower_order_final": True,
    "sd_noise_schedule": "Default",
    "hide_samplers": [],
    # img2img / inpaint
    "inpainting_mask_weight": 1.0,
    "initial_noise_multiplier": 1.0,
    "img2img_extra_noise": 0.0,
    "img2img_color_correction": False,
    "img2img_fix_steps": False,
    "img2img_background_color": "#ffffff",
    # saving
    "samples_save": True,
    "samples_format": "png",
    "samples_filename_pattern": "",
    "save_images_add_number": True,
    "save_images_replace_action": "Replace",
    "grid_save": True,
    "grid_format": "png",
    "grid_extended_filename": False,
    "grid_only_if_multiple": True,
    "grid_prevent_empty_spots": False,
    "n_rows": -1,
    "grid_background_color": "#ffffff",
    "return_grid": True,
    "enable_pnginfo": True,
    "save_txt": False,
    "jpeg_quality": 80,
    "webp_lossless": False,
    "export_for_4chan": True,
    "save_incomplete_images": False,
    "save_images_before_highres_fix": False,
    "save_mask": False,
    "save_mask_composite": False,
    "save_init_img": False,
    "outdir_samples": "",
    "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_img2img_samples": "outputs/img2img-images",
    "outdir_extras_samples": "outputs/extras-images",
    "outdir_grids": "",
    "outdir_txt2img_grids": "outputs/txt2img-grids",
    "outdir_img2img_grids": "outputs/img2img-grids",
    "outdir_save": "log/images",
    "outdir_init_images": "outputs/init-images",
    "save_to_dirs": True,
    "grid_save_to_dirs": True,
    "directories_filename_pattern": "[date]",
    "directories_max_prompt_words": 8,
    # infotext
    "add_model_hash_to_info": True,
    "add_model_name_to_info": True,
    "add_user_name_to_info": False,
    "add_version_to_infotext": True,
    "lora_add_hashes_to_infotext": True,
    "textual_inversion_add_hashes_to_infotext": True,
    # networks
    "sd_lora": "None",
    "lora_preferred_name": "Alias from file",
    # live preview
    "show_progressbar": True,
    "live_previews_enable": True,
    "live_previews_image_format": "png",
    "show_progress_every_n_steps": 10,
    "show_progress_type": "Full",   # previews decode with the real VAE; approximate decoders are not here yet
    "live_preview_content": "Prompt",
    "live_preview_refresh_period": 1000.0,
    # API / UI
    "api_enable_requests": True,
    "api_forbid_local_requests": True,
    "api_useragent": "",
    "quicksettings_list": ["sd_model_checkpoint"],
    "samples_log_stdout": False,
}

OPTION_CHOICES: dict[str, tuple] = {
    "randn_source": ("GPU", "CPU"),
    "emphasis": ("None", "Ignore", "Original", "No norm"),
    "samples_format": ("png", "jpg", "jpeg", "webp", "avif", "gif"),
    "grid_format": ("png", "jpg", "jpeg", "webp", "avif", "gif"),
    "save_images_replace_action": ("Replace", "Add number suffix"),
    "ddim_discretize": ("uniform", "quad"),
    "uni_pc_variant": ("bh1", "bh2", "vary_coeff"),
    "uni_pc_skip_type": ("time_uniform", "time_quadratic", "logSNR"),
    "sd_noise_schedule": ("Default", "Zero Terminal SNR"),
    "sd_vae_encode_method": ("Full", "TAESD"),
    "sd_vae_decode_method": ("Full", "TAESD"),
    "show_progress_type": ("Full", "Approx NN", "Approx cheap", "TAESD"),
    "live_preview_content": ("Combined", "Prompt", "Negative prompt"),
    "live_previews_image_format": ("png", "jpeg", "webp"),
    "lora_preferred_name": ("Alias from file", "Filename"),
}

# values A1111 offers that we do not implement yet: refused with the reason instead of being silently ignored
UNSUPPORTED_VALUES: dict[tuple[str, Any], str] = {
    ("randn_source", "NV"): "randn_source 'NV' (NVidia-compatible noise) is not supported yet; use 'CPU' "
                            "(same image on every device) or 'GPU'.",
}

OPTION_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "CLIP_stop_at_last_layers": (1, 12),
    "sd_checkpoint_cache": (0, 10),
    "sd_checkpoints_limit": (1, 10),
    "max_image_pixels": (64 * 64, None),
    "jpeg_quality": (1, 100),
    "n_rows": (-1, 16),
    "uni_pc_order": (1, 50),
    "directories_max_prompt_words": (1, 20),
    "show_progress_every_n_steps": (-1, 32),
    "comma_padding_backtrack": (0, 74),
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _cast(key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default`, or InvalidRequestError saying what the key expects."""
    def wrong(expected: str):
        return InvalidRequestError(f"Setting {key!r} expects {expected}, got {value!r} ({type(value).__name__}).")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong("true or false")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise wrong("a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise wrong("a whole number") from None
            if number.is_integer():
                return int(number)
        raise wrong("a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise wrong("a number")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong("text")
    if isinstance(default, list):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):   # old A1111 configs kept lists as comma-separated text
            return [part.strip() for part in value.split(",") if part.strip()]
        raise wrong("a list")
    if isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
        raise wrong("an object")
    return value


def validate_option(key: str, value: Any, default: Any) -> Any:
    """Cast + choices + limits for a known key; returns the value to store."""
    if isinstance(value, str) and (key, value) in UNSUPPORTED_VALUES:
        raise InvalidRequestError(UNSUPPORTED_VALUES[(key, value)])
    value = _cast(key, value, default)
    choices = OPTION_CHOICES.get(key)
    if choices and value not in choices:
        raise InvalidRequestError(f"Setting {key!r} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    low, high = OPTION_LIMITS.get(key, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidRequestError(f"Setting {key!r} must be {bounds}; got {value!r}.")
    return value


class Options:
    _INTERNAL = frozenset({"data", "data_labels", "config_file", "frozen"})

    def __init__(self, config_file: str | os.PathLike | None = None, *, frozen: bool = False):
        self.config_file = Path(config_file) if config_file is not None else None
        self.frozen = frozen                     # --freeze-settings
        self.data: dict[str, Any] = dict((k, _copy(v)) for k, v in OPTION_DEFAULTS.items())
        self.data_labels: dict[str, Any] = {}    # key -> what add_option was given (A1111's OptionInfo)
        self._defaults: dict[str, Any] = dict(OPTION_DEFAULTS)
        self._explicit: set[str] = set()         # keys loaded from the file or set since: always saved
        self._callbacks: dict[str, list[Callable[[], Any]]] = {}
        self._lock = threading.RLock()
        if self.config_file is not None:
            self.load(self.config_file)

    # ---- reading -------------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = self.__dict__.get("data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # `opts.key = value` (A1111 style) stores a cast value without callbacks
        if name.startswith("_") or name in self._INTERNAL:
            object.__setattr__(self, name, value)
        elif name in self.data or name in self._defaults:
            self.set(name, value, run_callbacks=False)
        else:
            raise AttributeError(f"no setting named {name!r}; use opts.add_option() to add one")

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def get_default(self, key: str) -> Any:
        return self._defaults.get(key)

    def cast_value(self, key: str, value: Any) -> Any:
        return validate_option(key, value, self._defaults[key]) if key in self._defaults else value

    # ---- writing -------------------------------------------------------------------------------------------------
    def set(self, key: str, value: Any, *, run_callbacks: bool = True, is_api: bool = False) -> bool:
        """Store a setting; True when it changed. Raises InvalidRequestError for a bad value."""
        if self.frozen:
            raise UserError(f"Settings are frozen (--freeze-settings); {key!r} was not changed. "
                            "Restart without --freeze-settings to change settings.")
        with self._lock:
            if value is None and key in self._defaults:
                value = _copy(self._defaults[key])
            elif key in self._defaults:
                value = validate_option(key, value, self._defaults[key])
            missing = object()
            old = self.data.get(key, missing)
            self._explicit.add(key)
            if old is not missing and old == value:
                return False
            self.data[key] = value
            if not run_callbacks:
                return True
            try:
                for fn in self._callbacks.get(key, ()):
                    fn()
            except BaseException:
                if old is missing:
                    self.data.pop(key, None)
                else:
                    self.data[key] = old
                raise
            return True

    def onchange(self, key: str, fn: Callable[[], Any], call: bool = False) -> None:
        """Run fn() after `key` changes through set(); `call=True` also runs it now (A1111's default)."""
        self._callbacks.setdefault(key, []).append(fn)
        if call:
            fn()

    def add_option(self, key: str, info: Any) -> None:
        """Register a setting; `info` is a default value or an object with `.default` (A1111's OptionInfo)."""
        default = getattr(info, "default", info)
        with self._lock:
            self._defaults[key] = default
            self.data_labels[key] = info
            if key not in self.data:
                self.data[key] = _copy(default)
            elif key in self._explicit:
                try:   # a value loaded before the option existed is validated now
                    self.data[key] = validate_option(key, self.data[key], default)
                except UserError as e:
                    log.warning("Setting %s: %s Using the default.", key, e.message)
                    self.data[key] = _copy(default)
        onchange = getattr(info, "onchange", None)
        if callable(onchange):
            self.onchange(key, onchange)

    # ---- file ----------------------------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        """Read settings from path; never raises: problems are logged and defaults used."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as e:
            log.error("Cannot read settings file %s (%s); starting with default settings.", path, e)
            return
        try:
            loaded = json.loads(text)
            if not isinstance(loaded, dict):
                raise ValueError(f"expected a JSON object, found {type(loaded).__name__}")
        except ValueError as e:
            backup = path.with_name(path.name + ".bak")
            try:
                shutil.copy2(path, backup)
                kept = f"the broken file was kept as {backup}"
            except OSError as copy_error:
                kept = f"it could not be backed up ({copy_error})"
            log.error("Settings file %s is corrupt (%s); %s. Starting with default settings.", path, e, kept)
            return
        with self._lock:
            for key, value in loaded.items():
                if key in self._defaults:
                    try:
                        value = _copy(self._defaults[key]) if value is None else \
                            validate_option(key, value, self._defaults[key])
                    except UserError as e:
                        log.warning("Settings file %s: %s Using the default.", path, e.message)
                        continue
                self.data[key] = value
                self._explicit.add(key)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write set and non-default settings to config.json atomically (temp file + rename)."""
        path = Path(path) if path is not None else self.config_file
        if path is None:
            raise ValueError("Options.save() needs a path: this Options object has no config_file")
        with self._lock:
            out = {k: v for k, v in self.data.items()
                   if k in self._explicit or k not in self._defaults or v != self._defaults[k]}
            text = json.dumps(out, indent=4, ensure_ascii=False, default=str)  # an odd extension value must not stop the save
            # still under the lock: an older snapshot must never replace a newer one
            write_text_atomic(path, text)
        return path


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
