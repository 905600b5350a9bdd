#!/usr/bin/env bash
# Linux / macOS launcher: builds venv/ on the first run, then runs launch.py inside it,
# again for as long as a restart was requested (tmp/restart exists).
# Settings go into webui-user.sh (COMMANDLINE_ARGS, python_cmd, venv_dir, TORCH_COMMAND).

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "${script_dir}" || exit 1

if [[ -f "${script_dir}/webui-user.sh" ]]; then
    # shellcheck source=webui-user.sh
    source "${script_dir}/webui-user.sh"
fi

# Python 3.11 is what we test with; any 3.10-3.12 works
if [[ -z "${python_cmd:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then
        python_cmd="python3.11"
    else
        python_cmd="python3"
    fi
fi
venv_dir="${venv_dir:-venv}"

if ! command -v "${python_cmd}" >/dev/null 2>&1; then
    echo "ERROR: ${python_cmd} not found. Install Python 3.11 (or set python_cmd in webui-user.sh)." >&2
    exit 1
fi
py_version="$("${python_cmd}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "${py_version}" in
    3.10|3.11|3.12) ;;
    *) echo "WARNING: Python ${py_version} is untested; use Python 3.10 to 3.12 (3.11 recommended)." >&2 ;;
esac

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    echo "Using the active virtual environment ${VIRTUAL_ENV}"
    python="${VIRTUAL_ENV}/bin/python"
elif [[ "${venv_dir}" == "-" ]]; then
    echo "Not using a virtual environment (venv_dir=-)"
    python="${python_cmd}"
else
    if [[ ! -x "${venv_dir}/bin/python" ]]; then
        venv_args=()
        # a venv folder without its python (half-deleted, or copied without links) cannot be repaired: start over
        if [[ -f "${venv_dir}/pyvenv.cfg" || -d "${venv_dir}/lib" ]] && [[ -d "${venv_dir}/bin" ]]; then
            echo "${venv_dir} is an incomplete virtual environment: rebuilding it"
            venv_args=(--clear)
        fi
        echo "Creating a virtual environment in ${venv_dir} with ${python_cmd} ${py_version}"
        if ! "${python_cmd}" -m venv "${venv_args[@]}" "${venv_dir}"; then
            echo "ERROR: could not create the virtual environment. On Debian/Ubuntu install python3-venv" \
                 "(e.g. apt install python3.11-venv), then run this script again." >&2
            exit 1
        fi
    fi
    python="${venv_dir}/bin/python"
fi

export SD_WEBUI_RESTART=tmp/restart
# Apple Silicon: let the few operators MPS lacks fall back to the CPU instead of failing (as A1111's mac env does)
if [[ "$(uname -s)" == "Darwin" ]]; then
    export PYTORCH_ENABLE_MPS_FALLBACK=1
fi

while true; do
    "${python}" -u launch.py "$@"
    status=$?
    if [[ ! -f tmp/restart ]]; then
        exit "${status}"
    fi
    echo "Restarting..."
done
