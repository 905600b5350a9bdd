@echo off
rem Windows launcher: builds the virtual environment on the first run, then runs launch.py inside it,
rem again for as long as a restart was requested (tmp\restart exists). Settings: webui-user.bat.

cd /d "%~dp0"
if not defined PYTHON (set PYTHON=python)
if not defined VENV_DIR (set "VENV_DIR=%~dp0venv")
set SD_WEBUI_RESTART=tmp/restart

%PYTHON% -c "" >nul 2>&1
if %ERRORLEVEL% neq 0 goto :no_python

if ["%VENV_DIR%"] == ["-"] goto :skip_venv
if ["%SKIP_VENV%"] == ["1"] goto :skip_venv
if exist "%VENV_DIR%\Scripts\python.exe" goto :activate_venv
echo Creating a virtual environment in %VENV_DIR%
%PYTHON% -m venv "%VENV_DIR%"
if %ERRORLEVEL% neq 0 goto :no_venv

:activate_venv
set PYTHON="%VENV_DIR%\Scripts\python.exe"
echo venv %PYTHON%

:skip_venv
:launch
%PYTHON% launch.py %*
set EXIT_CODE=%ERRORLEVEL%
if exist tmp\restart (
    echo Restarting...
    goto :launch
)
pause
exit /b %EXIT_CODE%

:no_python
echo ERROR: Python was not found. Install Python 3.11 and tick "Add python.exe to PATH", or set PYTHON in webui-user.bat.
pause
exit /b 1

:no_venv
echo ERROR: could not create the virtual environment in %VENV_DIR%.
pause
exit /b 1
