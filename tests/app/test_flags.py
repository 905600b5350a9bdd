"""Flags (A1111 names), unknown-flag suggestions, COMMANDLINE_ARGS, derived host values and the data-dir layout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdui.app import flags as cmd_args
from sdui.app.flags import Flags, build_parser, compat_notices, parse_args, parse_flags
from sdui.app.paths import EXTENSIONS_PLACEHOLDER, SD_MODELS_PLACEHOLDER, DataPaths

REPO = Path(__file__).resolve().parents[2]
NO_ENV = {}


def parse(*argv, env=NO_ENV) -> Flags:
    return parse_flags(list(argv), environ=env)


def parse_fails(capsys, *argv, env=NO_ENV) -> str:
    with pytest.raises(SystemExit) as exc:
        parse(*argv, env=env)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_defaults_match_a1111():
    args = parse()
    assert args.port is None and args.server_port == 7860
    assert parse("--nowebui").server_port == 7861
    assert parse("--nowebui", "--port", "9000").server_port == 9000
    assert args.precision == "autocast"
    assert args.use_cpu == ()
    assert args.timeout_keep_alive == 30
    assert args.data_dir is None and args.ckpt is None and args.ckpt_dir is None
    assert not args.listen and not args.no_half and not args.raw["api"]
    assert args.server_host == "127.0.0.1"
    # every flag, extensions' included, is served as JSON by GET /sdapi/v1/cmd-flags
    assert json.loads(json.dumps(dict(args.raw)))["port"] is None


def test_typical_flags_parse():
    args = parse(
        "--listen",
        "--port",
        "7000",
        "--no-half",
        "--no-half-vae",
        "--precision",
        "full",
        "--use-cpu",
        "SD",
        "interrogate",
        "--ckpt-dir",
        "/x/y",
        "--api-auth",
        "u:p",
        "--upcast-sampling",
    )
    assert args.listen and args.port == 7000 and args.no_half and args.no_half_vae
    assert args.precision == "full"
    assert args.use_cpu == ("sd", "interrogate")  # lower-cased like A1111
    assert args.uses_cpu_for("sd") and args.uses_cpu_for("interrogate") and not args.uses_cpu_for("gfpgan")
    assert parse("--use-cpu", "all").uses_cpu_for("sd")
    assert args.ckpt_dir == "/x/y" and args.api_auth == "u:p" and args.raw["upcast_sampling"]


def test_old_a1111_launch_line_still_parses():
    line = (
        "--xformers --medvram --lowvram --opt-split-attention --opt-sub-quad-attention --no-download-sd-model --api "
        "--autolaunch --theme dark --gradio-queue --skip-torch-cuda-test --reinstall-torch --skip-install "
        "--skip-prepare-environment --exit --enable-insecure-extension-access --max-batch-count 16 --no-hashing "
        "--skip-load-model-at-start --subpath /sd --cors-allow-origins http://a,http://b "
        "--cors-allow-origins-regex .* --timeout-keep-alive 5 --api-log --gradio-auth a:b --gradio-auth-path f "
        "--opt-sdp-attention --opt-sdp-no-mem-attention --server-name 127.0.0.1 --run-tests --nowebui "
        "--lora-dir L --embeddings-dir E --vae-dir V --data-dir D --models-dir M --ckpt C --disable-nan-check"
    )
    args = parse(*line.split())
    assert args.xformers and args.raw["medvram"] and args.raw["max_batch_count"] == 16 and args.timeout_keep_alive == 5
    assert args.subpath == "/sd" and args.server_name == "127.0.0.1" and args.run_tests and args.exit


def test_unknown_flag_names_closest_matches(capsys):
    err = parse_fails(capsys, "--no-halff")
    assert "unknown flag --no-halff; did you mean --no-half, --no-half-vae?" in err


def test_unknown_flag_with_value_and_equals_form(capsys):
    err = parse_fails(capsys, "--port", "7000", "--lisen", "--ckpt_dir=/x")
    assert "unknown flag --lisen; did you mean --listen?" in err
    assert "unknown flag --ckpt_dir; did you mean --ckpt-dir" in err


def test_unknown_flag_without_any_close_match(capsys):
    err = parse_fails(capsys, "--qqqqzzzz")
    assert "unknown flag --qqqqzzzz; run with --help to list all flags" in err


def test_flags_are_not_abbreviated(capsys):
    # argparse would otherwise accept --no-hal as --no-half (ambiguous with --no-half-vae) silently or confusingly
    err = parse_fails(capsys, "--liste")
    assert "did you mean --listen?" in err


def test_bad_port_value(capsys):
    err = parse_fails(capsys, "--port", "99999")
    assert "--port needs a number between 1 and 65535" in err


def test_share_and_ngrok_are_refused_with_a_reason(capsys):
    err = parse_fails(capsys, "--share")
    assert "--share is not supported" in err and "--listen" in err
    err = parse_fails(capsys, "--ngrok", "TOKEN")
    assert "--ngrok is not supported" in err


def test_commandline_args_env_is_appended():
    args = parse("--port", "7000", env={"COMMANDLINE_ARGS": "--no-half --ckpt-dir '/data/my models' --port 7001"})
    assert args.no_half and args.ckpt_dir == "/data/my models"
    assert args.port == 7001  # appended after argv, so it wins, as in A1111


def test_commandline_args_env_unknown_flag_fails(capsys):
    err = parse_fails(capsys, env={"COMMANDLINE_ARGS": "--medvramm"})
    assert "unknown flag --medvramm; did you mean --medvram" in err


def test_commandline_args_through_a_real_process():
    code = "import sys; from sdui.app.flags import parse_args; a = parse_args([]); print(a.port, a.listen)"
    env = dict(os.environ, COMMANDLINE_ARGS="--listen --port 7123")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7123", "True"]
    env["COMMANDLINE_ARGS"] = "--no-halff"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown flag --no-halff; did you mean --no-half, --no-half-vae?" in out.stderr


def test_ignore_errors_env_and_allow_unknown(caplog):
    args = parse("--not-a-flag", "--listen", env={"IGNORE_CMD_ARGS_ERRORS": "1"})
    assert args.listen
    assert "unknown flag --not-a-flag" in caplog.text
    args = parse_args(["--ext-flag", "--listen"], environ={}, allow_unknown=True)
    assert args.listen


def test_extension_preload_can_add_and_redeclare_flags():
    parser = build_parser()
    parser.add_argument("--my-extension-flag", type=int, default=3)
    parser.add_argument("--lora-dir", type=str, default="from-extension")  # re-declared: must not crash
    args = parse_args(["--my-extension-flag", "5"], parser, environ={})
    assert args.my_extension_flag == 5 and args.lora_dir == "from-extension"


def test_compat_notices():
    assert compat_notices(parse_args([], environ={})) == []
    notes = compat_notices(parse_args(["--disable-safe-unpickle", "--medvram"], environ={}))
    assert any("weights-only" in n for n in notes) and any("--medvram" in n for n in notes)


@pytest.mark.parametrize(
    "argv, non_local",
    [
        ([], False),
        (["--listen"], True),
        (["--server-name", "127.0.0.1"], False),
        (["--server-name", "127.0.0.5"], False),
        (["--server-name", "localhost"], False),
        (["--server-name", "::1"], False),
        (["--server-name", "192.168.1.5"], True),
        (["--server-name", "myhost.lan"], True),
    ],
)
def test_webui_is_non_local(argv, non_local):
    args = parse(*argv)
    assert args.webui_is_non_local is non_local
    assert args.disable_extension_access is non_local


def test_insecure_extension_access_opt_in():
    assert parse("--listen").disable_extension_access
    assert not parse("--listen", "--enable-insecure-extension-access").disable_extension_access


def test_server_host():
    assert parse().server_host == "127.0.0.1"
    assert parse("--listen").server_host == "0.0.0.0"
    assert parse("--listen", "--server-name", "10.0.0.2").server_host == "10.0.0.2"


def test_help_mentions_no_op_flags(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    assert "--medvram" in out and "no effect yet" in out and "--run-tests" in out


# ---------------------------------------------------------------------------------------------------------------
# Data-dir layout
# ---------------------------------------------------------------------------------------------------------------
def test_paths_default_to_repo_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("SD_WEBUI_CACHE_DIR", raising=False)
    paths = DataPaths.from_flags(parse(), tmp_path)
    assert paths.data_dir == tmp_path and paths.repo_dir == tmp_path
    assert paths.sd_models_dir == tmp_path / "models" / "Stable-diffusion"
    assert paths.ckpt_dirs == (tmp_path / "models" / "Stable-diffusion",)
    assert paths.config_file == tmp_path / "config.json"
    assert paths.cache_dir == tmp_path / "cache"
    assert paths.outputs_dir == tmp_path / "outputs"
    assert paths.extensions_dir == tmp_path / "extensions"
    assert paths.configs_dir == tmp_path / "configs"
    assert paths.ckpt_file == tmp_path / "model.ckpt" and not paths.ckpt_from_flag
    assert paths.resolve("outputs/txt2img-images") == tmp_path / "outputs" / "txt2img-images"
    assert paths.resolve("/abs/x") == Path("/abs/x")


def test_paths_from_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("SD_WEBUI_CACHE_DIR", raising=False)
    repo, data, models, extra = tmp_path / "repo", tmp_path / "data", tmp_path / "models", tmp_path / "extra"
    args = parse(
        "--data-dir",
        str(data),
        "--models-dir",
        str(models),
        "--ckpt-dir",
        str(extra),
        "--ckpt",
        str(extra / "a.safetensors"),
    )
    paths = DataPaths.from_flags(args, repo)
    assert paths.data_dir == data and paths.models_dir == models
    assert paths.ckpt_dirs == (extra, models / "Stable-diffusion")  # --ckpt-dir is scanned first
    assert paths.config_file == data / "config.json" and paths.outputs_dir == data / "outputs"
    assert paths.configs_dir == repo / "configs"  # shipped files stay in the program folder
    assert paths.lora_dir == models / "Lora" and paths.vae_dir == models / "VAE"
    assert paths.embeddings_dir == data / "embeddings"
    assert paths.ckpt_file == extra / "a.safetensors" and paths.ckpt_from_flag
    monkeypatch.setenv("SD_WEBUI_CACHE_DIR", str(tmp_path / "c"))
    assert DataPaths.from_flags(args, repo).cache_dir == tmp_path / "c"


def test_ensure_dirs_creates_layout_with_placeholders(tmp_path):
    paths = DataPaths.from_flags(parse("--data-dir", str(tmp_path / "d")), tmp_path)
    paths.ensure_dirs()
    assert (paths.sd_models_dir / SD_MODELS_PLACEHOLDER).is_file()
    assert SD_MODELS_PLACEHOLDER == "Put Stable Diffusion checkpoints here.txt"
    assert (paths.extensions_dir / EXTENSIONS_PLACEHOLDER).is_file()
    assert paths.outputs_dir.is_dir() and paths.lora_dir.is_dir() and paths.vae_dir.is_dir()
    paths.ensure_dirs()  # idempotent
    assert cmd_args.DEFAULT_PORT == 7860
