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
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("GRADIO_ANALYTICS_ENABLED", "False"),
    ("DO_NOT_TRACK", "1"),
):
    os.environ.setdefault(_key, _value)

import functools  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_DIR = Path(__file__).resolve().parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from sdui.app.context import (  # noqa: E402
    AppContext,
    ServerControl,
    apply_ckpt_flag,
    configure_upscalers,
    register_option_hooks,
    remember_model,
    startup_checkpoint,
)
from sdui.app.flags import Flags  # noqa: E402

log = logging.getLogger("webui")
_started_at = time.perf_counter()
MAX_TITLES_LOGGED = 20


def setup_logging(level: str | None = None) -> None:
    """Log to stderr with times (a no-op for the format when launch.py configured logging already)."""
    level_name = (level or os.environ.get("SD_WEBUI_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s", datefmt="%H:%M:%S"
    )
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


def build_context(flags: Flags, repo_dir: Path = REPO_DIR) -> AppContext:
    """Everything the app needs, built once: folders, settings, device policy, model store, job queue."""
    from sdui.app.jobs import JobQueue
    from sdui.app.options import Options
    from sdui.app.paths import DataPaths
    from sdui.app.threads import apply_threads
    from sdui.atomic import remove_stale_temp_files
    from sdui.devices import policy_from_flags
    from sdui.models.hashes import HashCache
    from sdui.models.store import ModelStore

    apply_threads(flags.threads)
    paths = DataPaths.from_flags(flags, repo_dir)
    paths.ensure_dirs()
    for folder, recursive in ((paths.config_file.parent, False), (paths.cache_dir, False), (paths.outputs_dir, True)):
        remove_stale_temp_files(folder, recursive=recursive)
    options = Options(paths.config_file, frozen=flags.freeze_settings)
    policy = policy_from_flags(
        use_cpu=flags.uses_cpu_for("sd"),
        no_half=flags.no_half,
        no_half_vae=flags.no_half_vae,
        precision=flags.precision,
        cpu_precision=flags.cpu_precision,
        xformers=flags.xformers,
    )
    loader = functools.partial(_load_sd_model, depth_dir=paths.models_dir / "depth")
    store = ModelStore(
        paths,
        policy,
        loader,
        hash_cache=HashCache(paths.cache_dir),
        cache_size=options.sd_checkpoint_cache,
        no_hashing=flags.no_hashing,
        preferred=lambda: options.get("sd_model_checkpoint") or None,
    )
    store.refresh()
    from sdui.core.extra_networks import ExtraNetworks
    from sdui.core.styles_hook import PromptStyles
    from sdui.core.vae_choice import VaeChoice

    ctx = AppContext(
        flags=flags,
        paths=paths,
        options=options,
        policy=policy,
        store=store,
        jobs=JobQueue(),
        server=ServerControl(repo_dir / "tmp" / "restart"),
        # styles, the VAE setting, embeddings and <lora:...> in prompts, for every generation
        hooks=[
            PromptStyles(paths.styles_files),
            VaeChoice(paths.vae_dir, paths.ckpt_dirs, store.hash_cache),
            ExtraNetworks(paths.lora_dir, paths.embeddings_dir, store.hash_cache, paths.hypernetwork_dir),
        ],
    )
    ctx.controlnet = controlnet_script(ctx)
    ctx.hooks.append(ctx.controlnet)
    apply_ckpt_flag(ctx)
    register_option_hooks(ctx)
    configure_upscalers(ctx)
    return ctx


def controlnet_script(ctx: AppContext):
    """The built-in ControlNet: models from models/ControlNet and the ControlNet extensions' own models folders,
    annotator weights from models/ControlNet-annotators, the extension's settings."""
    from sdui.controlnet.job_hook import ControlNetScript

    paths, options = ctx.paths, ctx.options
    flags = ctx.flags
    model_dir = paths.models_dir / "ControlNet"
    model_dir.mkdir(parents=True, exist_ok=True)
    extra = [Path(flags.controlnet_dir).expanduser().absolute()] if flags.controlnet_dir else []
    extension_dirs = sorted(p for p in paths.extensions_dir.glob("*/models") if "controlnet" in p.parent.name.lower())
    annotators = flags.controlnet_annotator_models_path
    return ControlNetScript(
        [model_dir, *extra, *extension_dirs],
        Path(annotators).expanduser().absolute() if annotators else paths.models_dir / "ControlNet-annotators",
        unit_count=lambda: int(options.control_net_unit_count),
        cache_size=lambda: int(options.control_net_model_cache_size),
        max_pixels=lambda: int(options.max_image_pixels),
    )


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
        log.warning(
            "No checkpoint found. Put a .safetensors or .ckpt file into %s, then press the refresh button "
            "next to the checkpoint list (or POST /sdapi/v1/refresh-checkpoints).",
            ctx.paths.sd_models_dir,
        )


# ------------------------------------------------------------------------------------------------------- 3. app


def create_app(ctx: AppContext):
    """The FastAPI app: /sdapi/v1 API, /internal/ping, middleware, and the UI at "/" unless --nowebui."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    from sdui.api.controlnet import create_controlnet_router
    from sdui.api.docs import add_docs_routes
    from sdui.api.errors import install_exception_handlers
    from sdui.api.middleware import (
        ApiLogMiddleware,
        AuthThrottleMiddleware,
        HostCheckMiddleware,
        OriginCheckMiddleware,
        split_origins,
    )
    from sdui.api.routes import basic_auth_dependency, create_api_router, create_internal_router
    from sdui.app.auth import Credentials

    flags = ctx.flags
    app = FastAPI(title="Stable Diffusion web UI API", docs_url=None, redoc_url=None, openapi_url=None)
    install_exception_handlers(app)
    add_docs_routes(app, Credentials.from_flags(flags).api)
    app.include_router(create_api_router(ctx))
    app.include_router(create_controlnet_router(ctx, basic_auth_dependency))
    app.include_router(create_internal_router(ctx))

    origins = split_origins(flags.cors_allow_origins)
    origins_regex = flags.cors_allow_origins_regex
    if origins or origins_regex:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_origin_regex=origins_regex,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
        )
    app.add_middleware(OriginCheckMiddleware, allowed_origins=origins, allowed_regex=origins_regex)
    if flags.api_log:
        app.add_middleware(ApiLogMiddleware)

    demo = None if flags.nowebui else mount_ui(app, ctx)
    if ctx.extensions is not None:  # extensions add their routes now, guarded by --api-auth like ours
        from fastapi import Depends

        from sdui.api.routes import basic_auth_dependency
        from sdui.extensions.app_routes import run_app_started

        api_credentials = Credentials.from_flags(flags).api
        run_app_started(demo, app, [Depends(basic_auth_dependency(api_credentials))] if api_credentials else [])
    # outermost: a request for a host name that is not this server's is refused before anything else sees it
    allowed_hosts = {h.strip() for h in (flags.allowed_hosts or "").split(",") if h.strip()}
    app.add_middleware(AuthThrottleMiddleware)
    app.add_middleware(HostCheckMiddleware, allowed_hosts=allowed_hosts | {flags.server_name or "localhost"})
    return app


def mount_ui(app, ctx: AppContext):
    """Mount the Gradio UI at "/"; returns its Blocks."""
    import gradio as gr

    from sdui.app.auth import Credentials
    from sdui.ui import app as ui_app

    flags = ctx.flags
    demo = ui_app.create_ui(ctx)
    kwargs = ui_app.mount_options(ctx)
    credentials = Credentials.from_flags(flags).ui
    if credentials:
        kwargs["auth"] = list(credentials.items())
    allowed = [str(p) for p in flags.gradio_allowed_path]
    allowed.append(str(ctx.paths.outputs_dir))
    allowed.append(str(ctx.paths.resolve(ctx.options.outdir_save)))  # what "Save"/"Zip" offer for download
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        allowed_paths=allowed,
        root_path=flags.subpath,
        server_name=flags.server_host,
        server_port=flags.server_port,
        **kwargs,
    )
    # Gradio opens any path a client names in an event: allow only its own uploads and the allowed folders
    from gradio.utils import get_upload_folder

    from sdui.ui.file_guard import GradioFileGuard

    app.add_middleware(GradioFileGuard, allowed_dirs=[Path(get_upload_folder()), *map(Path, allowed)])
    return demo


# ----------------------------------------------------------------------------------------------------- 4. serve


def load_model_when_up(ctx: AppContext) -> threading.Thread | None:
    """Once the app is up, load the start-up checkpoint in the background (A1111 does the same)."""
    flags = ctx.flags
    if flags.skip_load_model_at_start or flags.ui_debug_mode:
        log.info("Not loading a checkpoint at start (--skip-load-model-at-start): the first generation loads it.")
        return None
    info = startup_checkpoint(ctx)
    if info is None:
        return None
    log.info("Loading %s in the background; generations wait for it.", info.title)
    return ctx.store.load_in_background(info.title, then=lambda model: remember_model(ctx, model))


def _open_browser(url: str) -> None:
    import webbrowser

    webbrowser.open(url)


def serve(flags: Flags, build) -> int:
    """Listen at once, with the start-up gate in front (sdui/api/startup_gate.py), and build the app meanwhile:
    `build()` returns (ctx, app) or raises. Returns the exit status (2 when the app could not be built)."""
    import uvicorn

    from sdui.api.startup_gate import StartupGate
    from sdui.errors import UserError

    host, port = flags.server_host, flags.server_port
    tls = bool(flags.tls_keyfile and flags.tls_certfile)
    gate = StartupGate()
    config = uvicorn.Config(
        gate,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=flags.timeout_keep_alive or 30,
        timeout_graceful_shutdown=3,
        ssl_keyfile=flags.tls_keyfile if tls else None,
        ssl_certfile=flags.tls_certfile if tls else None,
        root_path=flags.subpath or "",
    )
    server = uvicorn.Server(config)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{'https' if tls else 'http'}://{shown_host}:{port}"
    status = {"code": 0, "ctx": None}

    def build_then_open():
        while not server.started:  # first the port: a client meets "starting", not "connection refused"
            if server.should_exit:
                return
            time.sleep(0.01)
        log.info("Listening after %.1f s; building the app.", time.perf_counter() - _started_at)
        try:
            ctx, app = build()
        except UserError as e:  # e.g. malformed --api-auth: say what to fix, no traceback
            log.error("%s", e.message)
            status["code"] = 2
        except Exception:
            log.exception("The app could not be built.")
            status["code"] = 1
        if status["code"]:
            gate.fail()
            server.should_exit = True
            return
        status["ctx"] = ctx
        ctx.server.attach(lambda: setattr(server, "should_exit", True))
        # the libraries and the app are built and stay: the garbage collector need not walk them again (each full
        # collection, and the last one at exit, took seconds over torch's and Gradio's millions of objects)
        gc.freeze()
        gate.open(app)
        # the same line Gradio prints: wrappers that start A1111 wait for it
        print(f"Running on local URL:  {url}", flush=True)
        log.info("Startup time: %.1f s", time.perf_counter() - _started_at)
        load_model_when_up(ctx)
        if flags.autolaunch:
            _open_browser(url)

    if host in ("0.0.0.0", "::"):
        log.info("Listening on all interfaces (%s): other machines can reach this server.", host)
    threading.Thread(target=build_then_open, name="build-app", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl+C: uvicorn has shut down gracefully and re-raised the signal
        log.info("Stopped.")
    except SystemExit:
        if not server.started:  # uvicorn exits when it cannot bind
            log.error(
                "The server could not start on %s:%d. Is the port in use? Choose another with --port.", host, port
            )
        raise
    finally:
        if status["ctx"] is not None:
            status["ctx"].jobs.interrupt()
    return status["code"]


def start(flags: Flags, extension_problems: list | None = None) -> None:
    """Entry point used by launch.py (and by `python webui.py`). `extension_problems`: what went wrong while
    extensions' preload.py added their flags (they are reported with the others)."""
    setup_logging(flags.loglevel)

    def build():
        from sdui.extensions.startup import start_extensions

        ctx = build_context(flags)
        log_summary(ctx)
        ctx.extensions = start_extensions(ctx, preload_problems=extension_problems or [])
        return ctx, create_app(ctx)

    code = serve(flags, build)
    if code:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    from sdui.extensions.startup import flags_with_extensions

    setup_logging()
    start(*flags_with_extensions(argv))


if __name__ == "__main__":
    main()
