#!/usr/bin/env bash
#########################################################
# Your settings for webui.sh (this file is sourced by it).
# Uncomment and change what you need.
#########################################################

# Flags passed to the web UI, e.g. "--listen --api-auth me:secret --no-half"
#export COMMANDLINE_ARGS=""

# Python to build the virtual environment with (default: python3.11, else python3)
#python_cmd="python3.11"

# Folder of the virtual environment ("-" = use the Python above as it is, no venv)
#venv_dir="venv"

# How torch is installed (e.g. another CUDA or a ROCm build)
#export TORCH_COMMAND="pip install torch==2.14.1 torchvision==0.29.1"
# An extra pip index for the torch wheels (a CPU-only, other-CUDA or ROCm build), added to the default command
#export TORCH_INDEX_URL=""

# Requirements file
#export REQS_FILE="requirements.txt"

# Print the output of pip and other tools as they run
#export WEBUI_LAUNCH_LIVE_OUTPUT=1
