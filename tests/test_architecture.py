"""The structure the code promises (docs/ARCHITECTURE.md), checked on the code itself: our package never imports
A1111's `modules`, `modules/` holds only A1111's module names, layers import only downwards, and ruff is clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_DIR

PACKAGE = REPO_DIR / "sdui"

# bottom to top: a module may import its own package and the layers below its own
LAYERS = [
    {"errors", "atomic"},
    {"devices", "request", "settings"},
    {"imaging", "text"},
    {"infotext", "models", "upscalers"},
    {"modes"},
    {"core"},
    {"controlnet"},
    {"app"},
    {"extensions"},
    {"api", "ui"},
]

# module names of AUTOMATIC1111's web UI 1.10 that extensions import; the only names modules/ may hold
A1111_MODULES = {
    "__init__",
    "api",
    "cache",
    "call_queue",
    "cmd_args",
    "codeformer_model",
    "config_states",
    "deepbooru",
    "devices",
    "errors",
    "esrgan_model",
    "extensions",
    "extra_networks",
    "extra_networks_hypernet",
    "extras",
    "face_restoration",
    "fifo_lock",
    "generation_parameters_copypaste",
    "gfpgan_model",
    "gitpython_hack",
    "gradio_extensons",
    "hashes",
    "hypernetworks",
    "images",
    "img2img",
    "import_hook",
    "infotext_utils",
    "infotext_versions",
    "initialize",
    "initialize_util",
    "interrogate",
    "launch_utils",
    "localization",
    "logging_config",
    "lowvram",
    "mac_specific",
    "masking",
    "memmon",
    "modelloader",
    "models",
    "ngrok",
    "npu_specific",
    "options",
    "patches",
    "paths",
    "paths_internal",
    "postprocessing",
    "processing",
    "processing_scripts",
    "profiling",
    "progress",
    "prompt_parser",
    "realesrgan_model",
    "restart",
    "rng",
    "rng_philox",
    "safe",
    "script_callbacks",
    "script_loading",
    "scripts",
    "scripts_auto_postprocessing",
    "scripts_postprocessing",
    "sd_disable_initialization",
    "sd_emphasis",
    "sd_hijack",
    "sd_hijack_checkpoint",
    "sd_hijack_clip",
    "sd_hijack_open_clip",
    "sd_hijack_optimizations",
    "sd_hijack_unet",
    "sd_hijack_utils",
    "sd_models",
    "sd_models_config",
    "sd_models_types",
    "sd_models_xl",
    "sd_samplers",
    "sd_samplers_cfg_denoiser",
    "sd_samplers_common",
    "sd_samplers_compvis",
    "sd_samplers_extra",
    "sd_samplers_kdiffusion",
    "sd_samplers_lcm",
    "sd_samplers_timesteps",
    "sd_samplers_timesteps_impl",
    "sd_schedulers",
    "sd_unet",
    "sd_vae",
    "sd_vae_approx",
    "sd_vae_taesd",
    "shared",
    "shared_cmd_options",
    "shared_gradio_themes",
    "shared_init",
    "shared_items",
    "shared_options",
    "shared_state",
    "shared_total_tqdm",
    "styles",
    "sub_quadratic_attention",
    "sysinfo",
    "textual_inversion",
    "timer",
    "torch_utils",
    "txt2img",
    "ui",
    "ui_checkpoint_merger",
    "ui_common",
    "ui_components",
    "ui_extensions",
    "ui_extra_networks",
    "ui_extra_networks_checkpoints",
    "ui_extra_networks_checkpoints_user_metadata",
    "ui_extra_networks_hypernets",
    "ui_extra_networks_textual_inversion",
    "ui_extra_networks_user_metadata",
    "ui_gradio_extensions",
    "ui_loadsave",
    "ui_postprocessing",
    "ui_prompt_styles",
    "ui_settings",
    "ui_tempdir",
    "ui_toprow",
    "upscaler",
    "upscaler_utils",
    "util",
    "xlmr",
    "xlmr_m18",
    "xpu_specific",
}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def layer_of(top: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_our_package_never_imports_a1111s_modules():
    offenders = [
        f"{path.relative_to(REPO_DIR)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in imported_modules(path)
        if name == "modules" or name.startswith("modules.")
    ]
    assert offenders == []


def test_modules_folder_holds_only_a1111_module_names():
    names = {p.stem for p in (REPO_DIR / "modules").rglob("*.py")}
    assert names <= A1111_MODULES, sorted(names - A1111_MODULES)


def test_every_package_of_ours_has_a_layer():
    packages = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert packages == set().union(*LAYERS)


def test_layers_import_only_downwards():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        own = layer_of(parts[0])
        for name in imported_modules(path):
            if not name.startswith("sdui."):
                continue
            target = name.split(".")[1]
            if target != parts[0] and target in set().union(*LAYERS) and layer_of(target) >= own:
                upward.append(f"{path.relative_to(REPO_DIR)} imports {name}")
    assert sorted(set(upward)) == []


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
