"""Our settings, with A1111's keys, defaults and section ids, each one honoured by the code that reads it.

A setting is listed here only when it does what A1111's setting of the same key does (or, for our own `max_*` bounds,
what its label says). A1111's keys for features this program does not have are registered from a1111_only.py as
`inert` entries: clients can read and write them, nothing here acts on them; a feature's issue moves its keys here.
Values a client stores for keys nobody knows are kept in config.json as they are.
"""

from __future__ import annotations

from sdui.settings.a1111_only import A1111_API_RESTRICTED, A1111_ONLY_DEFAULTS
from sdui.settings.registry import OptionInfo, Registry, Section, options_section

# Largest width*height a request may ask for: 4096x4096 (or e.g. 8192x2048). Covers 2x hires fix of SDXL sizes;
# beyond it one VAE decode needs tens of GB. Users with the memory raise it in Settings.
MAX_IMAGE_PIXELS = 4096 * 4096
# Bounds on the work one request may ask for, far above what A1111's sliders offer (150 steps, batch size 8, count
# 100), so that no client's number runs for days or exhausts memory before it is checked.
MAX_SAMPLING_STEPS = 1000
MAX_BATCH_SIZE = 64
MAX_BATCH_COUNT = 1000

IMAGE_FORMATS = ("png", "jpg", "jpeg", "webp", "avif", "gif")
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")
RANDN_SOURCES = ("GPU", "CPU", "NV")
PREVIEW_CONTENT = ("Combined", "Prompt", "Negative prompt")
PREVIEW_FORMATS = ("png", "jpeg", "webp")
QUICK_SETTINGS_DEFAULT = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers")
PREVIEW_METHODS = ("Full", "Approx NN", "Approx cheap", "TAESD")  # A1111's show_progress_type choices


def _slider(minimum, maximum, step) -> dict:
    return {"minimum": minimum, "maximum": maximum, "step": step}


def _choices(*choices) -> dict:
    return {"choices": list(choices)}


def _sections() -> list[dict[str, OptionInfo]]:
    return [
        options_section(
            ("saving-images", "Saving images/grids", "saving"),
            {
                "samples_save": OptionInfo(True, "Save every generated image", "checkbox"),
                "samples_format": OptionInfo("png", "File format for images", "dropdown", _choices(*IMAGE_FORMATS)),
                "samples_filename_pattern": OptionInfo("", "File name pattern for images", "textbox").info(
                    "tags in brackets, e.g. [seed]-[prompt_words]; empty: [seed], or [seed]-[prompt_spaces] when not "
                    "saving into subfolders"
                ),
                "save_images_add_number": OptionInfo(True, "Start every file name with a sequence number", "checkbox"),
                "save_images_replace_action": OptionInfo(
                    "Replace",
                    "When a file of the same name exists (without sequence numbers)",
                    "radio",
                    _choices("Replace", "Add number suffix"),
                ),
                "save_selected_only": OptionInfo(
                    True, 'The "Save" button saves the selected image only (none selected: all)', "checkbox"
                ),
                "save_write_log_csv": OptionInfo(
                    True, 'The "Save" button writes log.csv beside the images', "checkbox"
                ),
                "grid_save": OptionInfo(True, "Save a grid of every batch of several images", "checkbox"),
                "grid_format": OptionInfo("png", "File format for grids", "dropdown", _choices(*IMAGE_FORMATS)),
                "grid_extended_filename": OptionInfo(
                    False, "Grid file names use the image file name pattern too", "checkbox"
                ),
                "grid_only_if_multiple": OptionInfo(True, "No grid for a single image", "checkbox"),
                "grid_prevent_empty_spots": OptionInfo(
                    False, "Choose grid rows so that no cell stays empty", "checkbox"
                ),
                "n_rows": OptionInfo(-1, "Grid rows", "slider", _slider(-1, 16, 1)).info(
                    "-1: about square; 0: the batch size"
                ),
                "grid_background_color": OptionInfo("#ffffff", "Grid background colour", "color"),
                "enable_pnginfo": OptionInfo(True, "Write generation parameters into the image file", "checkbox"),
                "save_txt": OptionInfo(
                    False, "Save the generation parameters as a .txt file beside each image", "checkbox"
                ),
                "jpeg_quality": OptionInfo(80, "JPEG, WebP and AVIF quality", "slider", _slider(1, 100, 1)),
                "webp_lossless": OptionInfo(False, "Lossless WebP", "checkbox"),
                "save_incomplete_images": OptionInfo(
                    False, "Save images that an interrupt or skip left unfinished", "checkbox"
                ),
                "save_images_before_highres_fix": OptionInfo(
                    False, "Also save the first pass of hires fix", "checkbox"
                ),
                "save_mask": OptionInfo(False, "For inpainting, also save the mask used", "checkbox"),
                "save_mask_composite": OptionInfo(
                    False, "For inpainting, also save the result blended over the mask", "checkbox"
                ),
                "save_init_img": OptionInfo(False, "Save the init images of img2img", "checkbox"),
            },
        ),
        options_section(
            ("saving-paths", "Paths for saving", "saving"),
            {
                "outdir_samples": OptionInfo("", "Folder for all images (empty: the folders below)", "textbox"),
                "outdir_txt2img_samples": OptionInfo("outputs/txt2img-images", "Folder for txt2img images", "textbox"),
                "outdir_img2img_samples": OptionInfo("outputs/img2img-images", "Folder for img2img images", "textbox"),
                "outdir_grids": OptionInfo("", "Folder for all grids (empty: the folders below)", "textbox"),
                "outdir_txt2img_grids": OptionInfo("outputs/txt2img-grids", "Folder for txt2img grids", "textbox"),
                "outdir_img2img_grids": OptionInfo("outputs/img2img-grids", "Folder for img2img grids", "textbox"),
                "outdir_init_images": OptionInfo("outputs/init-images", "Folder for img2img init images", "textbox"),
                "outdir_extras_samples": OptionInfo("outputs/extras-images", "Folder for extras images", "textbox"),
                "outdir_save": OptionInfo("log/images", 'Folder for images saved with the "Save" button', "textbox"),
            },
        ),
        options_section(
            ("saving-to-dirs", "Saving to a directory", "saving"),
            {
                "save_to_dirs": OptionInfo(True, "Save images into a subfolder", "checkbox"),
                "use_save_to_dirs_for_ui": OptionInfo(
                    False, 'The "Save" button saves into a subfolder too', "checkbox"
                ),
                "grid_save_to_dirs": OptionInfo(True, "Save grids into a subfolder", "checkbox"),
                "directories_filename_pattern": OptionInfo("[date]", "Subfolder name pattern", "textbox"),
                "directories_max_prompt_words": OptionInfo(
                    8, "Words of the prompt in [prompt_words]", "slider", _slider(1, 20, 1)
                ),
            },
        ),
        options_section(
            ("upscaling", "Upscaling", "postprocessing"),
            {
                "ESRGAN_tile": OptionInfo(
                    192, "Tile size for model upscalers (ESRGAN & co); 0 = no tiling", "slider", _slider(0, 512, 16)
                ).info("smaller tiles use less memory"),
                "ESRGAN_tile_overlap": OptionInfo(
                    8, "Context pixels around each upscaler tile", "slider", _slider(0, 48, 1)
                ).info("more hides seams better, at some cost"),
            },
        ),
        options_section(
            ("face-restoration", "Face restoration", "postprocessing"),
            {
                "face_restoration": OptionInfo(False, "Restore faces in every generated image", "checkbox").info(
                    "needs a restorer in models/GFPGAN (GFPGANv1.4.pth) and its detection weights"
                ),
                "face_restoration_model": OptionInfo(
                    "CodeFormer", "Face restoration model", "radio", _choices("CodeFormer", "GFPGAN", "RestoreFormer")
                ).info("when it is not installed, the first one that is"),
                "code_former_weight": OptionInfo(
                    0.5, "CodeFormer weight (0 = strongest effect, 1 = weakest)", "slider", _slider(0.0, 1.0, 0.01)
                ),
            },
        ),
        options_section(
            ("system", "System", "system"),
            {
                "max_image_pixels": OptionInfo(
                    MAX_IMAGE_PIXELS, "Largest image a request may ask for (pixels)", "number", {"minimum": 64 * 64}
                ).info("width x height, for every pass; larger images need more memory than most machines have"),
                "max_sampling_steps": OptionInfo(
                    MAX_SAMPLING_STEPS, "Most sampling steps a request may ask for", "number", {"minimum": 1}
                ),
                "max_batch_size": OptionInfo(
                    MAX_BATCH_SIZE, "Largest batch size a request may ask for", "number", {"minimum": 1}
                ).info("images generated at the same time; each needs its share of memory"),
                "max_batch_count": OptionInfo(
                    MAX_BATCH_COUNT, "Most batches a request may ask for", "number", {"minimum": 1}
                ),
                "samples_log_stdout": OptionInfo(
                    False, "Print the parameters of every saved image to the console", "checkbox"
                ),
            },
        ),
        options_section(
            ("sd", "Stable Diffusion", "sd"),
            {
                "sd_model_checkpoint": OptionInfo("", "Stable Diffusion checkpoint", "dropdown"),
                "sd_checkpoint_cache": OptionInfo(0, "Checkpoints to keep in RAM", "slider", _slider(0, 10, 1)).info(
                    "switching back to one of them takes no load from disk"
                ),
                "CLIP_stop_at_last_layers": OptionInfo(
                    1, "Clip skip", "slider", _slider(1, 12, 1), infotext="Clip skip"
                ),
                "sdxl_clip_l_skip": OptionInfo(
                    False, "Clip skip applies to SDXL's CLIP-L text encoder as well", "checkbox"
                ),
                "emphasis": OptionInfo(
                    "Original", "Emphasis mode", "radio", _choices(*EMPHASIS_MODES), infotext="Emphasis"
                ).info("how (word:1.2) weights are applied"),
                "comma_padding_backtrack": OptionInfo(
                    20,
                    "Prompt word wrap: move the words after a comma this close to "
                    "the end of a 75-token chunk into the next chunk",
                    "slider",
                    _slider(0, 74, 1),
                ),
                "tiling": OptionInfo(False, "Tiling", "checkbox", infotext="Tiling").info(
                    "seamless images that repeat across their edges; what a request without a tiling field uses"
                ),
                "randn_source": OptionInfo(
                    "CPU", "Random number generator source", "radio", _choices(*RANDN_SOURCES), infotext="RNG"
                ).info(
                    "CPU: a seed gives the same image on every machine; "
                    "NV: the numbers an NVIDIA GPU draws, on any machine"
                ),
            },
        ),
        options_section(
            ("vae", "VAE", "sd"),
            {
                "auto_vae_precision": OptionInfo(
                    True, "Decode again in float32 when the half-precision VAE overflows", "checkbox"
                ).info("instead of a black image"),
                "tiled_vae_megapixels": OptionInfo(
                    4.0,
                    "Tiled VAE: decode and encode images larger than this many megapixels in tiles",
                    "slider",
                    _slider(0.0, 16.0, 0.1),
                ).info(
                    "far less memory for big images, which change a little (2048x2048 is 4.2 megapixels); "
                    "0: never; not with seamless tiling"
                ),
            },
        ),
        options_section(
            ("img2img", "img2img", "sd"),
            {
                "initial_noise_multiplier": OptionInfo(
                    1.0, "Noise multiplier for img2img", "slider", _slider(0.0, 1.5, 0.001), infotext="Noise multiplier"
                ),
                "img2img_extra_noise": OptionInfo(
                    0.0,
                    "Extra noise for img2img and hires fix",
                    "slider",
                    _slider(0.0, 1.0, 0.01),
                    infotext="Extra noise",
                ).info("0: none; keep it below the denoising strength"),
                "img2img_fix_steps": OptionInfo(
                    False,
                    "img2img runs about the number of steps set (the schedule "
                    "stretches) instead of denoising strength x steps",
                    "checkbox",
                ),
                "img2img_background_color": OptionInfo(
                    "#ffffff", "Colour behind transparent parts of init images", "color"
                ),
            },
        ),
        options_section(
            ("sampler-params", "Sampler parameters", "sd"),
            {
                "eta_ddim": OptionInfo(
                    0.0, "Eta for DDIM", "slider", _slider(0.0, 1.0, 0.01), infotext="Eta DDIM"
                ).info("noise added at each step; 0: deterministic"),
                "eta_ancestral": OptionInfo(
                    1.0, "Eta for ancestral and SDE samplers", "slider", _slider(0.0, 1.0, 0.01), infotext="Eta"
                ),
                "eta_noise_seed_delta": OptionInfo(
                    0,
                    "Eta noise seed delta (ENSD)",
                    "number",
                    {"precision": 0, "minimum": 0, "maximum": 2**32 - 1},
                    infotext="ENSD",
                ).info("added to the seed of the noise ancestral samplers draw at every step"),
                "s_churn": OptionInfo(
                    0.0, "Sigma churn", "slider", _slider(0.0, 100.0, 0.01), infotext="Sigma churn"
                ).info("stochasticity for Euler, Heun and DPM2; 0: none"),
                "s_tmin": OptionInfo(0.0, "Sigma tmin", "slider", _slider(0.0, 10.0, 0.01), infotext="Sigma tmin").info(
                    "churn applies from this noise level"
                ),
                "s_tmax": OptionInfo(
                    0.0, "Sigma tmax", "slider", _slider(0.0, 999.0, 0.01), infotext="Sigma tmax"
                ).info("churn applies up to this noise level; 0: no limit"),
                "s_noise": OptionInfo(
                    1.0, "Sigma noise", "slider", _slider(0.0, 1.1, 0.001), infotext="Sigma noise"
                ).info("scale of the noise the samplers add"),
                "sigma_min": OptionInfo(
                    0.0, "Schedule min sigma", "number", {"minimum": 0.0}, infotext="Schedule min sigma"
                ).info("0: the model's (about 0.03)"),
                "sigma_max": OptionInfo(
                    0.0, "Schedule max sigma", "number", {"minimum": 0.0}, infotext="Schedule max sigma"
                ).info("0: the model's (about 14.6)"),
                "rho": OptionInfo(0.0, "Schedule rho", "number", {"minimum": 0.0}, infotext="Schedule rho").info(
                    "0: the schedule's own (7 for Karras, 1 for Polyexponential)"
                ),
                "always_discard_next_to_last_sigma": OptionInfo(
                    False, "Always discard the next-to-last sigma", "checkbox", infotext="Discard penultimate sigma"
                ),
                "sgm_noise_multiplier": OptionInfo(
                    False, "SGM noise multiplier", "checkbox", infotext="SGM noise multiplier"
                ).info("start txt2img from noise scaled by sqrt(1 + sigma_max^2), as SGM's code does"),
                "beta_dist_alpha": OptionInfo(
                    0.6, "Beta schedule alpha", "slider", _slider(0.01, 1.0, 0.01), infotext="Beta schedule alpha"
                ),
                "beta_dist_beta": OptionInfo(
                    0.6, "Beta schedule beta", "slider", _slider(0.01, 1.0, 0.01), infotext="Beta schedule beta"
                ),
                "uni_pc_variant": OptionInfo(
                    "bh1", "UniPC variant", "radio", _choices("bh1", "bh2"), infotext="UniPC variant"
                ),
                "uni_pc_skip_type": OptionInfo(
                    "time_uniform",
                    "UniPC skip type",
                    "radio",
                    _choices("time_uniform", "time_quadratic", "logSNR"),
                    infotext="UniPC skip type",
                ),
                "uni_pc_order": OptionInfo(3, "UniPC order", "slider", _slider(1, 50, 1), infotext="UniPC order").info(
                    "lowered to the number of steps when larger"
                ),
                "uni_pc_lower_order_final": OptionInfo(
                    True, "UniPC lower order final", "checkbox", infotext="UniPC lower order final"
                ),
                "no_dpmpp_sde_batch_determinism": OptionInfo(
                    False, "SDE samplers draw plain noise instead of a Brownian tree per image", "checkbox"
                ).info("then an image depends on its batch; A1111's compatibility option"),
                "use_old_karras_scheduler_sigmas": OptionInfo(False, "Old Karras sigmas (0.1 to 10)", "checkbox").info(
                    "A1111's compatibility option, for old seeds"
                ),
                "skip_early_cond": OptionInfo(
                    0.0,
                    "Ignore negative prompt during early sampling",
                    "slider",
                    _slider(0.0, 1.0, 0.01),
                    infotext="Skip Early CFG",
                ).info("the fraction of the steps that runs without the negative prompt; 0: none"),
            },
        ),
        options_section(
            ("optimizations", "Optimizations", "sd"),
            {
                "s_min_uncond": OptionInfo(
                    0.0, "Negative Guidance minimum sigma", "slider", _slider(0.0, 15.0, 0.01), infotext="NGMS"
                ).info("below this noise level every other step skips the negative prompt; faster, 0: off"),
                "s_min_uncond_all": OptionInfo(
                    False,
                    "Negative Guidance minimum sigma: every step, not every other one",
                    "checkbox",
                    infotext="NGMS all steps",
                ),
                "token_merging_ratio": OptionInfo(
                    0.0, "Token merging ratio", "slider", _slider(0.0, 0.9, 0.1), infotext="Token merging ratio"
                ).info("0: off; higher: faster, and the image changes more"),
                "token_merging_ratio_img2img": OptionInfo(
                    0.0, "Token merging ratio for img2img", "slider", _slider(0.0, 0.9, 0.1)
                ).info("only applies if non-zero and overrides above"),
                "token_merging_ratio_hr": OptionInfo(
                    0.0,
                    "Token merging ratio for high-res pass",
                    "slider",
                    _slider(0.0, 0.9, 0.1),
                    infotext="Token merging ratio hr",
                ).info("only applies if non-zero and overrides above"),
                "pad_cond_uncond": OptionInfo(
                    False, "Pad prompt and negative prompt to the same length", "checkbox", infotext="Pad conds"
                ).info("with empty-prompt chunks: one batched UNet call; changes the image"),
                "pad_cond_uncond_v0": OptionInfo(
                    False,
                    "Pad prompt and negative prompt to the same length (old way)",
                    "checkbox",
                    infotext="Pad conds v0",
                ).info("the negative prompt repeats its last vector or is cut to the prompt's length"),
                "persistent_cond_cache": OptionInfo(True, "Persistent cond cache", "checkbox").info(
                    "keep the prompts' encodings from job to job while the model, its text encoders' weights, the "
                    "embeddings and the prompt settings stay the same"
                ),
            },
        ),
        options_section(
            ("compatibility", "Compatibility", "sd"),
            {
                "use_old_scheduling": OptionInfo(
                    False, "Old prompt editing timelines", "checkbox", infotext="Old prompt editing timelines"
                ).info("every number below 1 is a fraction; hires fix counts its own steps"),
            },
        ),
        options_section(
            ("infotext", "Infotext", "ui"),
            {
                "add_model_hash_to_info": OptionInfo(True, "Write the model hash into the parameters", "checkbox"),
                "add_model_name_to_info": OptionInfo(True, "Write the model name into the parameters", "checkbox"),
                "infotext_styles": OptionInfo(
                    "Apply if any",
                    "Infer styles from prompts of pasted infotext",
                    "radio",
                    _choices("Ignore", "Apply", "Discard", "Apply if any"),
                ).info(
                    "Apply: the styles found are chosen and their text taken out of the prompts; Discard: only "
                    "taken out; Apply if any: Apply when some are found"
                ),
            },
        ),
        options_section(
            ("sd_vae", "VAE", "sd"),
            {
                "sd_vae": OptionInfo("Automatic", "SD VAE", "dropdown", infotext="VAE").info(
                    "Automatic: a VAE named after the checkpoint, else its own; None: the checkpoint's own; "
                    "or a file of models/VAE"
                ),
            },
        ),
        options_section(
            ("extra_networks", "Extra Networks", "sd"),
            {
                "textual_inversion_add_hashes_to_infotext": OptionInfo(
                    True, "Add textual inversion hashes to the parameters", "checkbox"
                ),
                "lora_add_hashes_to_infotext": OptionInfo(True, "Add Lora hashes to the parameters", "checkbox"),
                "extra_networks_default_multiplier": OptionInfo(
                    1.0,
                    "Default multiplier for extra networks",
                    "slider",
                    {"minimum": 0.0, "maximum": 2.0, "step": 0.01},
                ),
                "lora_preferred_name": OptionInfo(
                    "Alias from file",
                    "When adding to prompt, refer to Lora by",
                    "radio",
                    _choices("Alias from file", "Filename"),
                ),
            },
        ),
        options_section(
            ("ui", "User interface", "ui"),
            {
                "localization": OptionInfo("None", "Localization", "dropdown")
                .info("a localizations/*.json file of this program or of an extension; None: English")
                .needs_reload_ui(),
                "quicksettings_list": OptionInfo(
                    list(QUICK_SETTINGS_DEFAULT), "Quick settings list (shown in the top bar)", "dropdown"
                )
                .info("setting keys, e.g. sd_vae, CLIP_stop_at_last_layers; the checkpoint is always there")
                .needs_reload_ui(),
            },
        ),
        options_section(
            ("ui_gallery", "Gallery", "ui"),
            {
                "return_grid": OptionInfo(True, "Show the grid of a batch in the results", "checkbox"),
            },
        ),
        options_section(
            ("live-previews", "Live previews", "ui"),
            {
                "live_previews_enable": OptionInfo(True, "Show a live preview while an image is made", "checkbox"),
                "live_previews_image_format": OptionInfo(
                    "png", "Live preview file format", "radio", _choices(*PREVIEW_FORMATS)
                ),
                "show_progress_every_n_steps": OptionInfo(
                    10, "Live preview every N sampling steps", "slider", _slider(-1, 32, 1)
                ).info("-1: once each batch is done"),
                "show_progress_type": OptionInfo(
                    "Approx cheap", "Live preview display method", "radio", _choices(*PREVIEW_METHODS)
                ).info(
                    "Full: the VAE, slower than a sampling step on a CPU; Approx cheap: a fixed colour map, free; "
                    "TAESD: taesd_decoder.pth / taesdxl_decoder.pth (SDXL) in models/VAE-approx, else Approx cheap; "
                    "Approx NN: A1111's own network is not built in, TAESD stands in"
                ),
                "live_preview_content": OptionInfo(
                    "Prompt", "What the live preview shows", "radio", _choices(*PREVIEW_CONTENT)
                ),
                "live_preview_refresh_period": OptionInfo(
                    1000.0, "How often the page asks for progress (ms)", "number", {"minimum": 100, "maximum": 10000}
                ),
            },
        ),
        options_section(
            ("control_net", "ControlNet", None),
            {  # the sd-webui-controlnet extension's keys, so its clients and users find them
                "control_net_unit_count": OptionInfo(
                    3, "ControlNet units shown in a generation tab", "slider", _slider(1, 10, 1)
                ).needs_reload_ui(),
                "control_net_model_cache_size": OptionInfo(
                    2, "ControlNet models kept in memory", "slider", _slider(0, 10, 1)
                ).info("0: load the model for every job"),
            },
        ),
        {  # not shown in the Settings tab: state the program records
            "sd_checkpoint_hash": OptionInfo("", "SHA256 of the loaded checkpoint"),
        },
    ]


A1111_ONLY_SECTION = Section("a1111-only", "Kept for A1111 clients (no effect in this program)", "system")


def _a1111_only() -> dict[str, OptionInfo]:
    return {
        key: OptionInfo(default, key, section=A1111_ONLY_SECTION, inert=True, restrict_api=key in A1111_API_RESTRICTED)
        for key, default in A1111_ONLY_DEFAULTS.items()
    }


def builtin_registry() -> Registry:
    """A new registry of our settings, then A1111's inert keys; each caller gets its own entries (extensions add
    theirs to one of them)."""
    registry = Registry()
    for section in [*_sections(), _a1111_only()]:
        for key, info in section.items():
            registry.add(key, info)
    return registry
