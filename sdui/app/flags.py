"""Command-line flags, with A1111's names and defaults so existing launch scripts keep working.

Flags fall in three kinds: ones we implement, ones we refuse with a message (--share, --ngrok: this program never
opens a public tunnel), and A1111 flags kept only so an old `COMMANDLINE_ARGS` line does not break (their help says
"no effect"). Extensions' `preload.py` may add flags to the parser before parsing (`conflict_handler="resolve"`,
so an extension re-declaring one of ours replaces it instead of crashing the start).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import logging
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860  # UI + API
DEFAULT_API_ONLY_PORT = 7861  # --nowebui, as A1111

NO_EFFECT = "(accepted for compatibility with A1111 launch scripts; no effect here)"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port needs a number between 1 and 65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port needs a number between 1 and 65535, got {value}")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads needs a whole number of threads, got {text!r}") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"--threads needs a number between 1 and 1024, got {value}")
    return value


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py",
        description="Local Stable Diffusion web UI (A1111-compatible flags).",
        allow_abbrev=False,  # an abbreviation silently picking a flag is worse than a suggestion
        conflict_handler="resolve",  # extensions' preload.py may re-declare flags
    )

    g = parser.add_argument_group("server")
    g.add_argument(
        "--listen",
        action="store_true",
        help="bind 0.0.0.0 so other machines can connect; disables extension installs unless "
        "--enable-insecure-extension-access",
    )
    g.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"server port (default {DEFAULT_PORT}; {DEFAULT_API_ONLY_PORT} with --nowebui)",
    )
    g.add_argument("--server-name", type=str, default=None, help="bind this host name or address (overrides --listen)")
    g.add_argument("--share", action="store_true", help="not supported: this program never opens a public tunnel")
    g.add_argument("--ngrok", type=str, default=None, help="not supported: this program never opens a public tunnel")
    g.add_argument("--ngrok-region", type=str, default="", help=NO_EFFECT)
    g.add_argument("--ngrok-options", type=_json_dict, default={}, help=NO_EFFECT)
    g.add_argument("--api", action="store_true", help="accepted; the /sdapi/v1 API is always on")
    g.add_argument("--nowebui", action="store_true", help="serve only the API, no UI")
    g.add_argument(
        "--api-auth", type=str, default=None, help='HTTP Basic credentials for the API, "user:pass[,user2:pass2]"'
    )
    g.add_argument("--api-log", action="store_true", help="log every API request")
    g.add_argument(
        "--api-server-stop", action="store_true", help="add /sdapi/v1/server-kill, -restart and -stop routes"
    )
    g.add_argument("--gradio-auth", type=str, default=None, help='UI login credentials, "user:pass[,user2:pass2]"')
    g.add_argument(
        "--gradio-auth-path", type=str, default=None, help="file with UI credentials in the --gradio-auth format"
    )
    g.add_argument(
        "--enable-insecure-extension-access",
        action="store_true",
        help="allow installing extensions even when the server is reachable from other machines",
    )
    g.add_argument("--autolaunch", action="store_true", help="open the UI in the default browser at start")
    g.add_argument("--subpath", type=str, default=None, help="serve under this URL prefix (reverse proxies)")
    g.add_argument("--cors-allow-origins", type=str, default=None, help="comma-separated origins allowed by CORS")
    g.add_argument("--cors-allow-origins-regex", type=str, default=None, help="regex of origins allowed by CORS")
    g.add_argument(
        "--allowed-hosts",
        type=str,
        default=None,
        help="comma-separated host names this server answers to besides IP addresses and localhost (its name on your "
        "network, or behind a reverse proxy); '*' answers any (defeats the DNS-rebinding protection)",
    )
    g.add_argument("--timeout-keep-alive", type=int, default=30, help="HTTP keep-alive timeout in seconds")
    g.add_argument("--tls-keyfile", type=str, default=None, help="TLS key file (enables HTTPS with --tls-certfile)")
    g.add_argument("--tls-certfile", type=str, default=None, help="TLS certificate file")
    g.add_argument("--disable-tls-verify", action="store_true", help="accept a self-signed --tls-certfile")
    g.add_argument(
        "--gradio-allowed-path", action="append", default=[], help="extra folder the UI may serve files from"
    )
    g.add_argument("--theme", type=str, default=None, help="UI theme: light or dark")

    g = parser.add_argument_group("paths")
    g.add_argument(
        "--data-dir",
        type=str,
        default=None,
        help="base folder for user data: config.json, models/, outputs/, extensions/, cache/ "
        "(default: the program folder)",
    )
    g.add_argument("--models-dir", type=str, default=None, help="base folder for models (default: <data-dir>/models)")
    g.add_argument(
        "--ckpt-dir", type=str, default=None, help="extra checkpoint folder, listed before models/Stable-diffusion"
    )
    g.add_argument(
        "--ckpt",
        type=str,
        default=None,
        help="checkpoint to list first and load at start (default: model.ckpt in the program folder if present)",
    )
    g.add_argument("--vae-dir", type=str, default=None, help="VAE folder (default: <models-dir>/VAE)")
    g.add_argument("--vae-path", type=str, default=None, help="always use this VAE file")
    g.add_argument("--lora-dir", type=str, default=None, help="LoRA folder (default: <models-dir>/Lora)")
    g.add_argument(
        "--embeddings-dir", type=str, default=None, help="textual inversion folder (default: <data-dir>/embeddings)"
    )
    g.add_argument(
        "--hypernetwork-dir", type=str, default=None, help="hypernetwork folder (default: <models-dir>/hypernetworks)"
    )
    for folder in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT"):
        g.add_argument(
            f"--{folder.lower()}-models-path",
            type=str,
            default=None,
            help=f"{folder} upscaler folder (default: <models-dir>/{folder})",
        )
    # the sd-webui-controlnet extension's flags, which users keep in their webui-user files
    g.add_argument(
        "--controlnet-dir",
        type=str,
        default=None,
        help="another folder of ControlNet models (besides <models-dir>/ControlNet)",
    )
    g.add_argument(
        "--controlnet-annotator-models-path",
        type=str,
        default=None,
        help="ControlNet preprocessor weights (default: <models-dir>/ControlNet-annotators)",
    )
    g.add_argument(
        "--localizations-dir", type=str, default=None, help="localization files (default: <program>/localizations)"
    )
    g.add_argument("--ui-settings-file", type=str, default=None, help="settings file (default: <data-dir>/config.json)")
    g.add_argument(
        "--ui-config-file", type=str, default=None, help="UI defaults file (default: <data-dir>/ui-config.json)"
    )
    g.add_argument(
        "--styles-file",
        action="append",
        default=[],
        help="styles csv file (repeatable; default: <data-dir>/styles.csv)",
    )
    g.add_argument(
        "--config",
        type=str,
        default=None,
        help=NO_EFFECT + " (model configs are detected from the weights; "
        "a same-name .yaml next to a checkpoint still wins)",
    )

    g = parser.add_argument_group("device and precision")
    g.add_argument("--no-half", action="store_true", help="keep model weights in float32")
    g.add_argument("--no-half-vae", action="store_true", help="keep the VAE in float32")
    g.add_argument(
        "--precision",
        type=str,
        choices=("full", "half", "autocast"),
        default="autocast",
        help="full = float32 everywhere; half/autocast = float16 on GPUs",
    )
    g.add_argument(
        "--cpu-precision",
        type=str.lower,
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="on the CPU: auto = bfloat16 where the CPU has native bf16 (AMX, AVX512-BF16, Arm BF16), else float32; "
        "fp32 = float32 always (A1111's pixels); --no-half and --precision full also mean float32",
    )
    g.add_argument("--upcast-sampling", action="store_true", help="compute attention in float32 with float16 weights")
    g.add_argument(
        "--use-cpu",
        type=str.lower,
        nargs="+",
        default=[],
        help='run these parts on the CPU: "all", "sd", "interrogate", ...',
    )
    g.add_argument("--device-id", type=str, default=None, help="CUDA device index")
    g.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="CPU threads torch computes with (default: the physical cores, or OMP_NUM_THREADS when set)",
    )
    g.add_argument("--xformers", action="store_true", help="prefer xformers attention when installed")
    g.add_argument("--force-enable-xformers", action="store_true", help="prefer xformers attention when installed")
    g.add_argument("--opt-sdp-attention", action="store_true", help="use torch scaled-dot-product attention")
    g.add_argument(
        "--opt-sdp-no-mem-attention",
        action="store_true",
        help="torch scaled-dot-product attention without the memory-efficient kernel (deterministic)",
    )
    g.add_argument("--medvram", action="store_true", help="reduce VRAM use (accepted; no effect yet)")
    g.add_argument("--medvram-sdxl", action="store_true", help="--medvram for SDXL only (accepted; no effect yet)")
    g.add_argument("--lowvram", action="store_true", help="reduce VRAM use further (accepted; no effect yet)")
    g.add_argument("--lowram", action="store_true", help=NO_EFFECT)
    g.add_argument("--disable-nan-check", action="store_true", help="do not fail on NaN latents or images")

    g = parser.add_argument_group("models")
    g.add_argument("--no-hashing", action="store_true", help="never compute the full sha256 of checkpoints")
    g.add_argument(
        "--skip-load-model-at-start", action="store_true", help="load the checkpoint on first use, not at start"
    )
    g.add_argument("--no-download-sd-model", action="store_true", help="accepted; nothing is ever downloaded")
    g.add_argument("--do-not-download-clip", action="store_true", help="accepted; nothing is ever downloaded")
    g.add_argument(
        "--disable-safe-unpickle",
        action="store_true",
        help="refused: .ckpt/.pt files are always loaded weights-only (no code runs from them)",
    )

    g = parser.add_argument_group("launcher")
    g.add_argument("--skip-torch-cuda-test", action="store_true", help="start even when CUDA is not available")
    g.add_argument("--skip-install", action="store_true", help="no pip installs and no extension install.py")
    g.add_argument("--skip-prepare-environment", action="store_true", help="skip all environment preparation")
    g.add_argument("--skip-python-version-check", action="store_true", help="do not check the Python version")
    g.add_argument("--skip-version-check", action="store_true", help="do not check library versions")
    g.add_argument("--reinstall-torch", action="store_true", help="reinstall torch (TORCH_COMMAND) before starting")
    g.add_argument("--reinstall-xformers", action="store_true", help="reinstall xformers before starting")
    g.add_argument("--update-check", action="store_true", help=NO_EFFECT)
    g.add_argument("--update-all-extensions", action="store_true", help="git pull every extension at start")
    g.add_argument("--disable-all-extensions", action="store_true", help="load no extensions")
    g.add_argument("--disable-extra-extensions", action="store_true", help="load only built-in extensions")
    g.add_argument("--exit", action="store_true", help="prepare the environment, then exit")
    g.add_argument("--run-tests", action="store_true", help="run the test suite and exit")
    g.add_argument("--loglevel", type=str, default=None, help="log level: DEBUG, INFO, WARNING, ...")
    g.add_argument("--log-startup", action="store_true", help="log the time each start step takes")
    g.add_argument("--allow-code", action="store_true", help="enable the Custom code script")
    g.add_argument("--freeze-settings", action="store_true", help="settings cannot be changed from the UI or API")
    g.add_argument(
        "--hide-ui-dir-config", action="store_true", help="folder settings and batch folders cannot be set in the UI"
    )
    g.add_argument("--filenames-max-length", type=int, default=128, help="longest file name part written")
    g.add_argument("--unix-filenames-sanitization", action="store_true", help="only replace / in file names")
    g.add_argument("--no-prompt-history", action="store_true", help="do not write params.txt")
    g.add_argument("--ui-debug-mode", action="store_true", help="start without loading a model")

    g = parser.add_argument_group("compatibility (no effect)")
    for flag in (
        "--test-server",
        "--dump-sysinfo",
        "--always-batch-cond-uncond",
        "--unload-gfpgan",
        "--deepdanbooru",
        "--show-negative-prompt",
        "--gradio-queue",
        "--no-gradio-queue",
        "--gradio-debug",
        "--add-stop-route",
        "--enable-console-prompts",
        "--opt-split-attention",
        "--opt-sub-quad-attention",
        "--opt-split-attention-invokeai",
        "--opt-split-attention-v1",
        "--disable-opt-split-attention",
        "--opt-channelslast",
        "--xformers-flash-attention",
        "--use-ipex",
        "--administrator",
        "--use-textbox-seed",
        "--disable-console-progressbars",
        "--no-progressbar-hiding",
        "--disable-model-loading-ram-optimization",
        "--freeze-settings-in-sections",
        "--lyco-dir-backcompat",
        "--no-half-controlnet",  # ControlNets run in the UNet's dtype, as the UNet's flags set it
    ):
        g.add_argument(flag, action="store_true", help=NO_EFFECT)
    for flag in (
        "--max-batch-count",
        "--controlnet-preprocessor-cache-size",
        "--sub-quad-q-chunk-size",
        "--sub-quad-kv-chunk-size",
        "--sub-quad-chunk-threshold",
    ):
        g.add_argument(flag, type=int, default=None, help=NO_EFFECT)
    for flag in (
        "--gradio-img2img-tool",
        "--gradio-inpaint-tool",
        "--freeze-specific-settings",
        "--textual-inversion-templates-dir",
        "--gfpgan-dir",
        "--gfpgan-model",
        "--codeformer-models-path",
        "--gfpgan-models-path",
        "--bsrgan-models-path",
        "--clip-models-path",
        "--ldsr-models-path",
        "--scunet-models-path",
    ):
        g.add_argument(flag, type=str, default=None, help=NO_EFFECT)

    return parser


def _all_option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def _unknown_message(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    flags = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
    if not flags:
        return f"unexpected argument {extras[0]!r}; flags start with --, run with --help to list them"
    known = _all_option_strings(parser)
    lines = []
    for flag in flags:
        close = difflib.get_close_matches(flag, known, n=3, cutoff=0.7)
        hint = f"did you mean {', '.join(close)}?" if close else "run with --help to list all flags"
        lines.append(f"unknown flag {flag}; {hint}")
    return "\n".join(lines)


_REFUSED = {
    "share": "--share is not supported: this web UI works offline and never opens a public link. "
    "To reach it from other machines on your network use --listen (with --gradio-auth / --api-auth).",
    "ngrok": "--ngrok is not supported: this web UI works offline and never opens a public tunnel. "
    "To reach it from other machines on your network use --listen (with --gradio-auth / --api-auth).",
}


def compat_notices(args: argparse.Namespace) -> list[str]:
    """Flags that parse but are ignored on purpose; the start-up log shows these lines."""
    notes = []
    if getattr(args, "disable_safe_unpickle", False):
        notes.append(
            "--disable-safe-unpickle is ignored: .ckpt/.pt files are always loaded weights-only, so no code "
            "hidden in a checkpoint can run. Convert old checkpoints to .safetensors if one fails to load."
        )
    for flag in ("medvram", "medvram_sdxl", "lowvram"):
        if getattr(args, flag, False):
            notes.append(f"--{flag.replace('_', '-')} has no effect yet; models stay fully on the GPU.")
    return notes


def parse_args(
    argv: list[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    *,
    environ: dict | None = None,
    allow_unknown: bool = False,
) -> argparse.Namespace:
    """Parse argv (default sys.argv[1:]) plus $COMMANDLINE_ARGS (appended, as A1111 does).

    An unknown flag exits with status 2 and names the closest known flags, unless allow_unknown (the early parse
    before extensions have added their flags) or $IGNORE_CMD_ARGS_ERRORS is set (then it is only logged).
    """
    environ = os.environ if environ is None else environ
    parser = parser or build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv += shlex.split(environ.get("COMMANDLINE_ARGS", "") or "")

    args, extras = parser.parse_known_args(argv)
    if extras:
        message = _unknown_message(parser, extras)
        if allow_unknown or environ.get("IGNORE_CMD_ARGS_ERRORS"):
            if not allow_unknown:
                log.warning("%s", message)
        else:
            parser.print_usage(sys.stderr)
            parser.exit(2, f"error: {message}\n")
    for key, message in _REFUSED.items():
        if getattr(args, key, None):
            parser.exit(2, f"error: {message}\n")
    if not allow_unknown:
        for note in compat_notices(args):
            log.warning("%s", note)
    return args


# ------------------------------------------------------------------------------------------------------------------
# The typed flags the program reads
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flags:
    """The parsed flags our code reads, typed; built once from the parser's namespace (`from_namespace`).

    `raw` keeps every flag by its argparse name, extensions' included: what /sdapi/v1/cmd-flags answers and what
    A1111's `shared.cmd_opts` offers extensions."""

    # server
    listen: bool = False
    port: int | None = None
    server_name: str | None = None
    nowebui: bool = False
    api_auth: str | None = None
    api_log: bool = False
    api_server_stop: bool = False
    gradio_auth: str | None = None
    gradio_auth_path: str | None = None
    enable_insecure_extension_access: bool = False
    hide_ui_dir_config: bool = False  # batch folders cannot be typed in the UI
    autolaunch: bool = False
    subpath: str | None = None
    cors_allow_origins: str | None = None
    cors_allow_origins_regex: str | None = None
    allowed_hosts: str | None = None
    timeout_keep_alive: int = 30
    tls_keyfile: str | None = None
    tls_certfile: str | None = None
    gradio_allowed_path: tuple[str, ...] = ()
    theme: str | None = None
    # paths
    data_dir: str | None = None
    models_dir: str | None = None
    ckpt_dir: str | None = None
    ckpt: str | None = None
    vae_dir: str | None = None
    lora_dir: str | None = None
    embeddings_dir: str | None = None
    localizations_dir: str | None = None
    hypernetwork_dir: str | None = None
    controlnet_dir: str | None = None
    controlnet_annotator_models_path: str | None = None
    ui_settings_file: str | None = None
    ui_config_file: str | None = None
    styles_file: tuple[str, ...] = ()
    # device and precision
    no_half: bool = False
    no_half_vae: bool = False
    precision: str = "autocast"
    cpu_precision: str = "auto"
    use_cpu: tuple[str, ...] = ()
    threads: int | None = None
    xformers: bool = False
    # models
    no_hashing: bool = False
    skip_load_model_at_start: bool = False
    # launcher and behaviour
    skip_torch_cuda_test: bool = False
    skip_install: bool = False
    disable_all_extensions: bool = False
    disable_extra_extensions: bool = False
    skip_prepare_environment: bool = False
    skip_python_version_check: bool = False
    reinstall_torch: bool = False
    reinstall_xformers: bool = False
    exit: bool = False
    run_tests: bool = False
    loglevel: str | None = None
    freeze_settings: bool = False
    ui_debug_mode: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> Flags:
        values = vars(namespace)
        typed = {}
        for f in fields(cls):
            if f.name != "raw" and f.name in values and values[f.name] is not None:
                value = values[f.name]
                typed[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**typed, raw=MappingProxyType(dict(values)))

    @property
    def server_host(self) -> str:
        if self.server_name:
            return self.server_name
        return "0.0.0.0" if self.listen else "127.0.0.1"

    @property
    def server_port(self) -> int:
        if self.port:
            return self.port
        return DEFAULT_API_ONLY_PORT if self.nowebui else DEFAULT_PORT

    @property
    def webui_is_non_local(self) -> bool:
        """True when other machines can reach the server (then extension installs need an explicit opt-in)."""
        return self.listen or (bool(self.server_name) and not _is_local_host(self.server_name))

    @property
    def disable_extension_access(self) -> bool:
        return self.webui_is_non_local and not self.enable_insecure_extension_access

    def uses_cpu_for(self, part: str) -> bool:
        """--use-cpu all|sd|interrogate|...: does `part` run on the CPU?"""
        return "all" in self.use_cpu or part.lower() in self.use_cpu


def parse_flags(
    argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None, *, environ: dict | None = None
) -> Flags:
    """parse_args, as the typed Flags the program uses."""
    return Flags.from_namespace(parse_args(argv, parser, environ=environ))


def _is_local_host(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
