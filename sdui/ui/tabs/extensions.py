"""The Extensions tab: what is installed (enable, check for updates, update, remove, what failed to load), install
from a git URL, and the "Available" list read from an extension index (A1111's index.json format, from a URL or a
local file). Every change goes through sdui.extensions.manager, which refuses it when the server is reachable from
other machines unless --enable-insecure-extension-access; the tab says so instead of failing.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr

from sdui.errors import UserError
from sdui.extensions import manager
from sdui.extensions.loader import run_installers
from sdui.extensions.startup import INSTALLED_STATE, installed_extensions
from sdui.ui import common

log = logging.getLogger(__name__)
INDEX_TIMEOUT_S = 15
DEFAULT_INDEX = "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"


def _allowed(ctx) -> bool:
    return not ctx.flags.disable_extension_access


def installed_html(ctx, statuses: dict[str, str] | None = None) -> str:
    """The table of installed extensions, and what failed to load at start."""
    statuses = statuses or {}
    rows = []
    for ext in installed_extensions(ctx):
        date = datetime.fromtimestamp(ext.commit_date, timezone.utc).strftime("%Y-%m-%d") if ext.commit_date else ""
        remote = html.escape(ext.remote)
        rows.append(
            "<tr>"
            f"<td>{html.escape(ext.name)}{' (built in)' if ext.builtin else ''}</td>"
            f"<td>{'enabled' if ext.enabled else 'disabled'}</td>"
            f"<td>{remote}</td><td>{html.escape(ext.branch)}</td><td>{html.escape(ext.version)}</td><td>{date}</td>"
            f"<td>{html.escape(statuses.get(ext.name, ''))}</td>"
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="7">No extensions installed. Install one from a git URL.</td></tr>')
    table = (
        '<table id="extensions_installed"><thead><tr><th>Extension</th><th>State</th><th>URL</th><th>Branch</th>'
        f"<th>Version</th><th>Date</th><th>Update</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    runtime = getattr(ctx, "extensions", None)
    problems = list(runtime.problems) if runtime is not None else []
    if problems:
        items = "".join(
            f"<li><b>{html.escape(p.extension)}</b>: {html.escape(p.stage)} failed in {html.escape(p.file)}"
            f"<details><pre>{html.escape(p.error)}</pre></details></li>"
            for p in problems
        )
        table += f'<div class="error" id="extensions_problems"><p>Not loaded:</p><ul>{items}</ul></div>'
    if not _allowed(ctx):
        table += common.error_html(manager_message())
    return table


def manager_message() -> str:
    try:
        manager.check_access(False)
    except manager.ExtensionAccessError as e:
        return e.message
    return ""


def enabled_choices(ctx) -> tuple[list[str], list[str]]:
    found = installed_extensions(ctx)
    return [e.name for e in found], [e.name for e in found if e.enabled]


# ------------------------------------------------------------------------------------------------------ actions


def install_from_url(ctx, url: str, branch: str, folder: str) -> str:
    try:
        target = manager.install(
            ctx.paths.extensions_dir,
            ctx.paths.tmp_dir,
            url or "",
            branch=branch or None,
            folder_name=folder or None,
            installed=installed_extensions(ctx),
            access_allowed=_allowed(ctx),
        )
    except UserError as e:
        return common.error_html(e.message)
    notes = ""
    if not ctx.flags.skip_install:
        new = [e for e in installed_extensions(ctx) if e.path == target]
        problems = run_installers(new, ctx.paths.repo_dir, ctx.paths.cache_dir / INSTALLED_STATE)
        notes = "".join(common.error_html(p.summary()) for p in problems)
    return (
        f"<p>Installed into {html.escape(str(target))}. Use the Installed tab and “Apply and restart UI” to load "
        f"it.</p>{notes}"
    )


def apply_enabled(ctx, enabled: list[str]) -> str:
    """Save which extensions are enabled (A1111's disabled_extensions) and restart to load them."""
    names, _ = enabled_choices(ctx)
    disabled = [n for n in names if n not in set(enabled or [])]
    try:
        ctx.options.set("disabled_extensions", disabled)
        ctx.options.save()
    except (UserError, OSError) as e:
        return common.error_html(f"Could not save the settings: {e}")
    if ctx.server.can_restart:
        ctx.server.stop(restart=True)
        return "<p>Saved. Restarting: reload this page in a few seconds.</p>"
    return "<p>Saved. Restart the program to load the extensions as chosen.</p>"


def check_updates(ctx) -> tuple[str, dict[str, str]]:
    statuses = {}
    for ext in installed_extensions(ctx):
        if not ext.remote:
            continue
        try:
            statuses[ext.name] = "update available" if manager.check_for_updates(ext) else "latest"
        except UserError as e:
            statuses[ext.name] = e.message
    return installed_html(ctx, statuses), statuses


def update_all(ctx) -> str:
    messages = []
    for ext in installed_extensions(ctx):
        if not ext.remote:
            continue
        try:
            if manager.check_for_updates(ext):
                manager.update(ext, access_allowed=_allowed(ctx))
                messages.append(f"<p>{html.escape(ext.name)}: updated.</p>")
        except UserError as e:
            messages.append(common.error_html(f"{ext.name}: {e.message}"))
    return "".join(messages) or "<p>Nothing to update.</p>"


def remove_extension(ctx, name: str) -> str:
    found = next((e for e in installed_extensions(ctx) if e.name == name), None)
    if found is None:
        return common.error_html(f"No extension named {name!r} is installed.")
    try:
        manager.remove(found, access_allowed=_allowed(ctx))
    except (UserError, OSError) as e:
        return common.error_html(getattr(e, "message", str(e)))
    return f"<p>Removed {html.escape(name)}. Restart to unload it.</p>"


def read_index(source: str) -> list[dict]:
    """The extensions an index lists, from a URL or a local JSON file (A1111's index.json: {"extensions": [...]})."""
    source = (source or "").strip() or DEFAULT_INDEX
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=INDEX_TIMEOUT_S) as response:  # http(s) only, checked above
            text = response.read().decode("utf-8")
    else:
        text = Path(source).expanduser().read_text(encoding="utf-8")
    data = json.loads(text)
    entries = data.get("extensions", []) if isinstance(data, dict) else data
    return [e for e in entries if isinstance(e, dict) and e.get("url")]


def available_html(ctx, source: str) -> str:
    try:
        entries = read_index(source)
    except (OSError, ValueError) as e:  # no network here, a wrong path, not JSON: a message, not an error page
        return common.error_html(f"Could not read the extension index {source or DEFAULT_INDEX!r}: {e}")
    installed = {manager.normalized_url(e.remote) for e in installed_extensions(ctx) if e.remote}
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(str(e.get('name', '')))}</td><td>{html.escape(str(e.get('description', '')))}</td>"
        f"<td><code>{html.escape(str(e['url']))}</code></td>"
        f"<td>{'installed' if manager.normalized_url(str(e['url'])) in installed else ''}</td>"
        "</tr>"
        for e in entries
    )
    return (
        '<table id="extensions_available"><thead><tr><th>Extension</th><th>Description</th><th>URL</th><th></th>'
        f"</tr></thead><tbody>{rows}</tbody></table><p>To install one, copy its URL into “Install from URL”.</p>"
    )


# ------------------------------------------------------------------------------------------------------- layout


def create_tab(ctx) -> None:
    private = {"queue": False, "api_visibility": "private"}
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", id="extensions_installed_tab"):
            names, enabled = enabled_choices(ctx)
            with gr.Row():
                apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply")
                check = gr.Button("Check for updates", elem_id="extensions_check")
                update = gr.Button("Update", elem_id="extensions_update")
            enabled_box = gr.CheckboxGroup(names, value=enabled, label="Enabled", elem_id="extensions_enabled")
            table = gr.HTML(installed_html(ctx), elem_id="extensions_table")
            with gr.Row():
                to_remove = gr.Dropdown(names, label="Extension to remove", elem_id="extensions_remove_name")
                remove = gr.Button("Remove", variant="stop", elem_id="extensions_remove")
            message = gr.HTML("", elem_id="extensions_message")

        def refreshed():
            names, enabled = enabled_choices(ctx)
            return installed_html(ctx), gr.update(choices=names, value=enabled), gr.update(choices=names, value=None)

        outputs = [table, enabled_box, to_remove]
        apply.click(lambda chosen: apply_enabled(ctx, chosen), inputs=[enabled_box], outputs=[message], **private)
        check.click(lambda: check_updates(ctx)[0], inputs=[], outputs=[table], **private)
        update.click(lambda: update_all(ctx), inputs=[], outputs=[message], **private).then(
            refreshed, inputs=[], outputs=outputs, **private
        )
        remove.click(lambda name: remove_extension(ctx, name), inputs=[to_remove], outputs=[message], **private).then(
            refreshed, inputs=[], outputs=outputs, **private
        )

        with gr.Tab("Install from URL", id="extensions_install_tab"):
            url = gr.Textbox(label="URL for extension's git repository", elem_id="extensions_install_url")
            branch = gr.Textbox(label="Specific branch name", placeholder="leave empty for default main branch")
            folder = gr.Textbox(label="Local directory name", placeholder="leave empty for auto")
            install = gr.Button("Install", variant="primary", elem_id="extensions_install")
            installed = gr.HTML("", elem_id="extensions_install_result")
        install.click(
            lambda u, b, f: install_from_url(ctx, u, b, f), inputs=[url, branch, folder], outputs=[installed], **private
        ).then(refreshed, inputs=[], outputs=outputs, **private)

        with gr.Tab("Available", id="extensions_available_tab"):
            source = gr.Textbox(
                DEFAULT_INDEX, label="Extension index URL or local JSON file", elem_id="extensions_index_source"
            )
            load = gr.Button("Load from:", elem_id="extensions_index_load")
            listing = gr.HTML("", elem_id="extensions_available_list")
        load.click(lambda s: available_html(ctx, s), inputs=[source], outputs=[listing], **private)
