"""Build the app and serve it: FastAPI with the /sdapi/v1 API, the Gradio UI mounted at "/", uvicorn.

Start-up order, so the port opens a few seconds after the imports whatever the size of the checkpoint:
  1. flags -> data folders -> settings (config.json) -> device policy
  2. model store: list the checkpoints (cheap; hashing happens when one is loaded)
  3. the app: API routes, middleware, UI
  4. uvicorn listens; once it does, the checkpoint loads in a background thread. A generation that arrives
     meanwhile waits for that load.

Run it through the launcher (`./webui.sh`, which prepares the venv) or directly:
    venv/bin/python webui.py --data-dir DIR --port N
"""
from __future__ import annotations

import os

# Offline by design: no library may reach the Hugging Face hub or phone home (set before they are imported).
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                     ("GRADIO_ANALYTICS_ENABLED", "False"), ("DO_NOT_TRACK", "1")):
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_DIR = Path(__file__).resolve().parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from sdui.app import flags as cmd_args  # noqa: E402
from sdui.app.context import AppContext, register_option_hooks, startup_checkpoint  # noqa: E402

log = logging.getLogger("webui")
_started_at = time.perf_counter()
MAX_TITLES_LOGGED = 20


def setup_logging(level: str | None = None) -> None:
    """Log to stderr with times (a no-op for the format when launch.py configured logging already)."""
    level_name = (level or os.environ.get("SD_WEBUI_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger().setLevel(getattr(logging, level_name, logging.INFO))
    # one line per progress poll is noise; --api-log gives a request log when wanted
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    parts = [f"python {platform.python_version()}"]
    for package in ("torch", "diffusers", "transformers", "gradio", "fastapi"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


def _load_sd_model(path, policy, depth_dir=None):
    # imported on first use: diffusers and the loaders are not needed to open the port
    from sdui.models.loading import load_sd_model
    return load_sd_model(path, policy, depth_dir=depth_dir)


# ------------------------------------------------------------------------------------------------- 1-2. context

def build_context(args: argparse.Namespace, repo_dir: Path = REPO_DIR) -> AppContext:
    """Everything the app needs, built once: folders, settings, device policy, model store, job queue."""
    from sdui.devices import policy_from_flags
    from sdui.app.jobs import JobQueue
    from sdui.models.hashes import HashCache
    from sdui.models.store import ModelStore
    from sdui.app.options import Options
    from sdui.app.paths import DataPaths

    paths = DataPaths.from_args(args, repo_dir)
    paths.ensure_dirs()
    options = Options(paths.config_file, frozen=bool(getattr(args, "freeze_settings", False)))
    policy = policy_from_flags(use_cpu=cmd_args.uses_cpu_for(args, "sd"), no_half=bool(args.no_half),
                               no_half_vae=bool(args.no_half_vae), precision=args.precision or "autocast",
                               xformers=bool(getattr(args, "xformers", False)))
    loader = functools.partial(_load_sd_model, depth_dir=paths.models_dir / "depth")
    store = ModelStore(paths, policy, loader, hash_cache=HashCache(paths.cache_dir), options=options,
                       no_hashing=bool(getattr(args, "no_hashing", False)))
    store.refresh()
    ctx = AppContext(args=args, paths=paths, options=options, policy=policy, store=store, jobs=JobQueue())
    register_option_hooks(ctx)
    return ctx


def log_summary(ctx: AppContext) -> None:
    log.info("Versions: %s", _versions())
    log.info("Device: %s", ctx.policy.describe())
    log.info("Data folder: %s", ctx.paths.data_dir)
    checkpoints = ctx.store.checkpoints
    if checkpoints:
        titles = [info.title for info in checkpoints]
        shown = ", ".join(titles[:MAX_TITLES_LOGGED]) + (", ..." if len(titles) > MAX_TITLES_LOGGED else "")
        log.info("Checkpoints found: %d (%s)", len(titles), shown)
    else:
        log.warning("No checkpoint found. Put a .safetensors or .ckpt file into %s, then press the refresh button "
                    "next to the checkpoint list (or POST /sdapi/v1/refresh-checkpoints).", ctx.paths.sd_models_dir)


# ------------------------------------------------------------------------------------------------------- 3. app

def create_app(ctx: AppContext):
    """The FastAPI app: /sdapi/v1 API, /internal/ping, middleware, and the UI at "/" unless --nowebui."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    from sdui.api.errors import install_exception_handlers
    from sdui.api.middleware import ApiLogMiddleware, OriginCheckMiddleware, split_origins
    from sdui.api.routes import create_api_router, create_internal_router

    args = ctx.args
    app = FastAPI(title="Stable Diffusion web UI API", docs_url="/docs", redoc_url="/redoc")
    install_exception_handlers(app)
    app.include_router(create_api_router(ctx))
    app.include_router(create_internal_router(ctx))

    origins = split_origins(getattr(args, "cors_allow_origins", None))
    origins_regex = getattr(args, "cors_allow_origins_regex", None)
    if origins or origins_regex:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=origins_regex,
                           allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
    app.add_middleware(OriginCheckMiddleware, allowed_origins=origins, allowed_regex=origins_regex)
    if getattr(args, "api_log", False):
        app.add_middleware(ApiLogMiddleware)

    if not getattr(args, "nowebui", False):
        mount_ui(app, ctx)
    return app


def mount_ui(app, ctx: AppContext) -> None:
    """Mount the Gradio UI at "/"."""
    from sdui.ui import app as ui_app
    import gradio as gr

    from sdui.api.routes import parse_credentials

    args = ctx.args
    demo = ui_app.create_ui(ctx)
    kwargs = dict(ui_app.mount_options()) if hasattr(ui_app, "mount_options") else {}
    credentials = _gradio_credentials(args, parse_credentials)
    if credentials:
        kwargs["auth"] = credentials
    allowed = [str(p) for p in getattr(args, "gradio_allowed_path", None) or []]
    allowed.append(str(ctx.paths.outputs_dir))
    gr.mount_gradio_app(app, demo, path="/", allowed_paths=allowed, root_path=getattr(args, "subpath", None),
                        server_name=cmd_args.server_host(args), server_port=cmd_args.server_port(args), **kwargs)


def _gradio_credentials(args: argparse.Namespace, parse) -> list[tuple[str, str]]:
    text = getattr(args, "gradio_auth", None) or ""
    path = getattr(args, "gradio_auth_path", None)
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            from sdui.errors import UserError
            raise UserError(f"--gradio-auth-path {path}: cannot read it ({e.strerror}).") from None
        text = ",".join([text, *lines]) if text else ",".join(lines)
    return list(parse(text).items())


# ----------------------------------------------------------------------------------------------------- 4. serve

def load_model_when_up(ctx: AppContext, server) -> threading.Thread | None:
    """Once the server listens, load the start-up checkpoint in the background (A1111 does the same)."""
    args = ctx.args
    if getattr(args, "skip_load_model_at_start", False) or getattr(args, "ui_debug_mode", False):
        log.info("Not loading a checkpoint at start (--skip-load-model-at-start): the first generation loads it.")
        return None
    info = startup_checkpoint(ctx)
    if info is None:
        return None

    def wait_then_load():
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        log.info("Loading %s in the background; generations wait for it.", info.title)
        ctx.store.load_in_background(info.title)

    thread = threading.Thread(target=wait_then_load, name="startup-model-load", daemon=True)
    thread.start()
    return thread


def _announce_when_up(server, url: str) -> None:
    def announce():
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        # the same line Gradio prints: wrappers that start A1111 wait for it
        print(f"Running on local URL:  {url}", flush=True)
        log.info("Startup time: %.1f s", time.perf_counter() - _started_at)
    threading.Thread(target=announce, name="announce", daemon=True).start()


def serve(ctx: AppContext, app) -> None:
    import uvicorn

    args = ctx.args
    host, port = cmd_args.server_host(args), cmd_args.server_port(args)
    tls = bool(getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_keep_alive=getattr(args, "timeout_keep_alive", 30) or 30,
                            timeout_graceful_shutdown=3,
                            ssl_keyfile=args.tls_keyfile if tls else None,
                            ssl_certfile=args.tls_certfile if tls else None,
                            root_path=getattr(args, "subpath", None) or "")
    server = uvicorn.Server(config)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{'https' if tls else 'http'}://{shown_host}:{port}"
    if host in ("0.0.0.0", "::"):
        log.info("Listening on all interfaces (%s): other machines can reach this server.", host)
    _announce_when_up(server, url)
    load_model_when_up(ctx, server)
    if getattr(args, "autolaunch", False):
        threading.Thread(target=_open_browser_when_up, args=(server, url), daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:    # Ctrl+C: uvicorn has shut down gracefully and re-raised the signal
        log.info("Stopped.")
    except SystemExit:
        if not server.started:   # uvicorn exits when it cannot bind
            log.error("The server could not start on %s:%d. Is the port in use? Choose another with --port.",
                      host, port)
        raise
    finally:
        ctx.jobs.interrupt()


def _open_browser_when_up(server, url: str) -> None:
    import webbrowser
    while not server.started and not server.should_exit:
        time.sleep(0.1)
    if server.started:
        webbrowser.open(url)


def start(args: argparse.Namespace) -> None:
    """Entry point used by launch.py (and by `python webui.py`)."""
    setup_logging(getattr(args, "loglevel", None))
    from sdui.errors import UserError
    try:
        ctx = build_context(args)
        log_summary(ctx)
        app = create_app(ctx)
    except UserError as e:   # e.g. malformed --api-auth: say what to fix, no traceback
        log.error("%s", e.message)
        sys.exit(2)
    serve(ctx, app)


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    start(cmd_args.parse_args(argv))


if __name__ == "__main__":
    main()
