@echo off
rem Your settings for webui.bat. Start the web UI by running this file.

rem Python to build the virtual environment with (default: python on PATH)
set PYTHON=
rem Folder of the virtual environment ("-" = no venv)
set VENV_DIR=
rem Flags passed to the web UI, e.g. --listen --api-auth me:secret --no-half
set COMMANDLINE_ARGS=
rem How torch is installed (default: pip install torch==2.14.1 torchvision==0.29.1)
rem set TORCH_COMMAND=pip install torch==2.14.1 torchvision==0.29.1

call webui.bat %*
