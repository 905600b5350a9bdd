"""Where things live: the data-dir layout, decided once from the flags (A1111's layout and defaults).

The program folder (repo_dir) holds code and shipped configs; the data folder (--data-dir, default: the program
folder) holds everything the user owns. Relative output settings (outdir_*) resolve against the data folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdui.app.flags import Flags

SD_MODELS_PLACEHOLDER = "Put Stable Diffusion checkpoints here.txt"
EXTENSIONS_PLACEHOLDER = "put extensions here.txt"


# model upscaler folders under models/, in A1111's listing order; all but HAT have a --<name>-models-path flag
UPSCALER_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")


def _abs(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


@dataclass(frozen=True)
class DataPaths:
    repo_dir: Path
    data_dir: Path
    models_dir: Path
    sd_models_dir: Path  # models/Stable-diffusion
    ckpt_dirs: tuple[Path, ...]  # scanned in this order: --ckpt-dir, then models/Stable-diffusion
    ckpt_file: Path  # --ckpt, else <repo>/model.ckpt (listed first when it exists)
    ckpt_from_flag: bool  # --ckpt was given: it is also the checkpoint selected at start
    vae_dir: Path
    vae_approx_dir: Path  # models/VAE-approx: TAESD's decoders for live previews (taesd_decoder.pth, taesdxl_...)
    lora_dir: Path
    hypernetwork_dir: Path
    upscaler_dirs: tuple[Path, ...]  # model upscalers: models/ESRGAN, RealESRGAN, SwinIR, DAT, HAT (or their flags)
    embeddings_dir: Path
    outputs_dir: Path
    config_file: Path  # settings (config.json)
    ui_config_file: Path
    styles_files: tuple[Path, ...]
    cache_dir: Path  # hashes.json lives here
    extensions_dir: Path
    extensions_builtin_dir: Path
    localizations_dir: Path  # --localizations-dir, else <program>/localizations
    configs_dir: Path  # shipped model/component configs (program folder)
    log_dir: Path
    tmp_dir: Path

    @classmethod
    def from_flags(cls, flags: Flags, repo_dir: str | os.PathLike) -> DataPaths:
        repo = _abs(repo_dir)
        data = _abs(flags.data_dir) if flags.data_dir else repo
        models = _abs(flags.models_dir) if flags.models_dir else data / "models"
        sd_models = models / "Stable-diffusion"
        ckpt_dirs = [_abs(flags.ckpt_dir)] if flags.ckpt_dir else []
        if sd_models not in ckpt_dirs:
            ckpt_dirs.append(sd_models)
        cache = os.environ.get("SD_WEBUI_CACHE_DIR")
        styles = [_abs(s) for s in flags.styles_file] or [data / "styles.csv"]
        return cls(
            repo_dir=repo,
            data_dir=data,
            models_dir=models,
            sd_models_dir=sd_models,
            ckpt_dirs=tuple(ckpt_dirs),
            ckpt_file=_abs(flags.ckpt) if flags.ckpt else repo / "model.ckpt",
            ckpt_from_flag=bool(flags.ckpt),
            vae_dir=_abs(flags.vae_dir) if flags.vae_dir else models / "VAE",
            vae_approx_dir=models / "VAE-approx",
            lora_dir=_abs(flags.lora_dir) if flags.lora_dir else models / "Lora",
            hypernetwork_dir=_abs(flags.hypernetwork_dir) if flags.hypernetwork_dir else models / "hypernetworks",
            upscaler_dirs=tuple(
                _abs(getattr(flags, f"{name.lower()}_models_path", None) or models / name) for name in UPSCALER_FOLDERS
            ),
            embeddings_dir=_abs(flags.embeddings_dir) if flags.embeddings_dir else data / "embeddings",
            outputs_dir=data / "outputs",
            config_file=_abs(flags.ui_settings_file) if flags.ui_settings_file else data / "config.json",
            ui_config_file=_abs(flags.ui_config_file) if flags.ui_config_file else data / "ui-config.json",
            styles_files=tuple(styles),
            cache_dir=_abs(cache) if cache else data / "cache",
            extensions_dir=data / "extensions",
            extensions_builtin_dir=repo / "extensions-builtin",
            localizations_dir=_abs(flags.localizations_dir) if flags.localizations_dir else repo / "localizations",
            configs_dir=repo / "configs",
            log_dir=data / "log",
            tmp_dir=data / "tmp",
        )

    def resolve(self, path: str | os.PathLike) -> Path:
        """A setting's folder (e.g. outdir_txt2img_samples "outputs/txt2img-images") as an absolute path."""
        p = Path(os.path.expanduser(os.fspath(path)))
        return p if p.is_absolute() else self.data_dir / p

    @property
    def taesd_dirs(self) -> tuple[Path, ...]:
        """Where live previews look for TAESD's files: models/VAE-approx, then models/VAE-taesd (where later A1111
        versions download them)."""
        return (self.vae_approx_dir, self.models_dir / "VAE-taesd")

    def ensure_dirs(self) -> None:
        """Create the folders a user is told to drop files into, with A1111's placeholder files."""
        for folder in (
            self.sd_models_dir,
            self.vae_dir,
            self.vae_approx_dir,
            self.lora_dir,
            self.embeddings_dir,
            self.outputs_dir,
            self.extensions_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        for folder, name in (
            (self.sd_models_dir, SD_MODELS_PLACEHOLDER),
            (self.extensions_dir, EXTENSIONS_PLACEHOLDER),
        ):
            placeholder = folder / name
            if not placeholder.exists():
                placeholder.touch()
