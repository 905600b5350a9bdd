"""Saving a job's images the way A1111's settings say: folders, file names, formats, .txt files, hooks.

The folders are settings (outdir_*), relative to the data folder; a request with do_not_save_samples writes
nothing. Every save goes through the before_image_saved / image_saved hooks with A1111's parameters.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PIL import Image

from sdui.core.hooks import ImageSaveParams, ProcessingHooks
from sdui.core.run import Run
from sdui.imaging.saving import SaveOptions, SavePlan, plan_save, save_text_beside, write_image
from sdui.settings.snapshot import Settings

log = logging.getLogger(__name__)


def save_options(settings: Settings, *, grid: bool = False) -> SaveOptions:
    pattern = settings.samples_filename_pattern
    if grid and not pattern:  # A1111 picks the default by save_to_dirs (the images'), for grids too
        pattern = "[seed]" if settings.save_to_dirs else "[seed]-[prompt_spaces]"
    return SaveOptions(
        fmt=settings.grid_format if grid else settings.samples_format,
        pattern=pattern,
        add_number=settings.save_images_add_number,
        replace_existing=settings.save_images_replace_action == "Replace",
        save_to_dirs=settings.grid_save_to_dirs if grid else settings.save_to_dirs,
        dir_pattern=settings.directories_filename_pattern,
        max_prompt_words=int(settings.directories_max_prompt_words),
        jpeg_quality=int(settings.jpeg_quality),
        webp_lossless=bool(settings.webp_lossless),
    )


def filename_tags(run: Run) -> dict:
    """Pattern tags from the request and job (A1111's [steps], [cfg], [sampler], [model_hash], ...)."""
    r = run.request
    model = run.model.checkpoint
    return {
        "steps": r.steps,
        "cfg": r.cfg_scale,
        "width": r.width,
        "height": r.height,
        "sampler": r.sampler_name,
        "scheduler": r.scheduler,
        "styles": ", ".join(r.styles) or "None",
        "batch_size": r.batch_size,
        "seed_first": run.all_seeds[0] if run.all_seeds else "",
        "seed_last": run.all_seeds[-1] if run.all_seeds else "",
        "job_timestamp": run.job_timestamp,
        "clip_skip": run.settings.CLIP_stop_at_last_layers,
        "model_hash": model.shorthash if model is not None else "",
        "model_name": model.model_name if model else "",
        "denoising": r.denoising_strength,
    }


class OutputWriter:
    """Saves the images of one run under `data_dir` (outdir_* settings are relative to it)."""

    def __init__(self, run: Run, hooks: ProcessingHooks, data_dir: Path):
        self.run = run
        self.hooks = hooks
        self.data_dir = Path(data_dir)
        self.settings = run.settings
        self.errors: list[str] = []  # what could not be written, for the user

    def folder(self, kind: str) -> Path:
        """ "samples", "grids" or "init-images": A1111's outdir_* setting for the run's mode."""
        s, mode = self.settings, self.run.request.mode
        if kind == "init-images":
            path = s.outdir_init_images
        elif kind == "grids":
            path = s.outdir_grids or s[f"outdir_{mode}_grids"]
        else:
            path = s.outdir_samples or s[f"outdir_{mode}_samples"]
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.data_dir / path

    def save(
        self,
        image: Image.Image,
        *,
        infotext: str | None,
        seed: int | None,
        prompt: str | None,
        kind: str = "samples",
        basename: str = "",
        suffix: str = "",
    ) -> Path | None:
        """Save one image; None when the disk refused (full, read-only, a file where a folder should be): the
        generation goes on and returns its images, and `errors` says which folder failed and why."""
        try:
            return self._save(
                image, infotext=infotext, seed=seed, prompt=prompt, kind=kind, basename=basename, suffix=suffix
            )
        except OSError as e:
            folder = self.folder(kind)
            message = f"Could not save an image into {folder}: {e.strerror or e}. The images are returned unsaved."
            log.error("%s", message)
            if message not in self.errors:
                self.errors.append(message)
            return None

    def _save(self, image, *, infotext, seed, prompt, kind, basename, suffix) -> Path:
        grid = kind == "grids"
        options = save_options(self.settings, grid=grid)
        if grid and not self.settings.grid_extended_filename:
            seed = None  # short grid names: grid-0001.png
        plan = plan_save(
            image,
            self.folder(kind),
            options,
            seed=seed,
            basename=basename,
            prompt=prompt,
            tags=filename_tags(self.run),
            suffix=suffix,
        )
        # as A1111: hooks, .txt and log get the infotext either way; enable_pnginfo only keeps it out of the file
        saved = self._write(plan, image, options, {"parameters": infotext} if infotext is not None else {})
        text = saved.pnginfo.get("parameters")
        if self.settings.save_txt and text:
            save_text_beside(saved.filename, text)
        if self.settings.samples_log_stdout and text:
            log.info("Saved %s:\n%s", saved.filename, text)
        self.hooks.image_saved(saved)
        return saved.filename

    def save_init_image(self, image: Image.Image) -> str:
        """A1111's save_init_img: the init image under its md5, in outdir_init_images; returns the hash (the
        infotext's "Init image hash")."""
        digest = hashlib.md5(image.tobytes()).hexdigest()
        options = SaveOptions(fmt="png", pattern=digest, add_number=False, replace_existing=True, save_to_dirs=False)
        info = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}  # A1111 keeps them
        try:
            plan = plan_save(image, self.folder("init-images"), options, seed=0)
            self.hooks.image_saved(self._write(plan, image, options, info))
        except OSError as e:
            self.errors.append(f"Could not save the init image into {self.folder('init-images')}: {e.strerror or e}.")
            log.error("%s", self.errors[-1])
        return digest

    def _write(self, plan: SavePlan, image: Image.Image, options: SaveOptions, pnginfo: dict) -> ImageSaveParams:
        """before_image_saved, then the file; the params for image_saved. As A1111, every pnginfo entry the hooks
        leave is a PNG text chunk, and none is written when enable_pnginfo is off."""
        params = ImageSaveParams(image=image, run=self.run, filename=plan.predicted(), pnginfo=pnginfo)
        self.hooks.before_image_saved(params)
        keep = self.settings.enable_pnginfo
        path = write_image(
            plan,
            params.image,
            params.pnginfo.get("parameters") if keep else None,
            options,
            chunks=params.pnginfo if keep else {},
        )
        return ImageSaveParams(image=params.image, run=self.run, filename=path, pnginfo=params.pnginfo)

    def save_masks(
        self, image: Image.Image, overlay: Image.Image, *, infotext: str, seed: int, prompt: str
    ) -> list[Path]:
        """A1111's save_mask / save_mask_composite: the mask used (`overlay`), and the result shown through it."""
        saved = []
        if self.settings.save_mask:
            saved.append(self.save(overlay.convert("RGB"), infotext=infotext, seed=seed, prompt=prompt, suffix="-mask"))
        if self.settings.save_mask_composite:
            mask = overlay.resize(image.size) if overlay.size != image.size else overlay
            composite = Image.composite(image.convert("RGBA"), Image.new("RGBA", image.size), mask.convert("L"))
            saved.append(self.save(composite, infotext=infotext, seed=seed, prompt=prompt, suffix="-mask-composite"))
        return saved

    def save_before_hires(
        self, images: list[Image.Image], *, infotexts: list[str], seeds: list[int], prompts: list[str]
    ) -> list[Path]:
        """A1111's save_images_before_highres_fix: the first pass's images, with the final images' infotexts."""
        return [
            self.save(image, infotext=text, seed=seed, prompt=prompt, suffix="-before-highres-fix")
            for image, text, seed, prompt in zip(images, infotexts, seeds, prompts, strict=True)
        ]


def save_script_grid(
    image: Image.Image,
    processed,
    model,
    *,
    data_dir: Path | None,
    hooks=(),
    basename: str,
    prompt: str,
) -> Path | None:
    """A script's grid (X/Y/Z plot, Prompt matrix) saved as A1111 saves it: into the grids folder when grid_save
    is on, unless the request said not to save grids (the API without save_images); None when not saved."""
    from sdui.core.hooks import HookSet

    request, settings = processed.request, processed.settings
    if data_dir is None or request.do_not_save_grid or not settings.grid_save:
        return None
    run = Run(request=request, settings=settings, model=model)
    writer = OutputWriter(run, HookSet(hooks), data_dir)
    text = image.info.get("parameters") if isinstance(image.info.get("parameters"), str) else None
    return writer.save(image, infotext=text, seed=processed.seed, prompt=prompt, kind="grids", basename=basename)
