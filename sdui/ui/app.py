"""The Gradio page: the checkpoint picker on top, then one tab per mode.

`create_ui(ctx)` builds the Blocks; webui.py mounts it at "/" with gr.mount_gradio_app(app, demo, path="/",
**mount_options()). Since Gradio 6 the css/theme belong to the mount call, not to gr.Blocks.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import gradio as gr

from sdui.ui import common, extra_networks, generation, localization
from sdui.ui.tabs import (
    depth2img,
    extensions,
    extras,
    img2img,
    inpaint,
    merger,
    outpaint,
    pnginfo,
    settings,
    txt2img,
)

log = logging.getLogger(__name__)
STYLE_CSS = Path(__file__).with_name("style.css")
A1111_SCRIPT = Path(__file__).with_name("a1111_script.js")
SHORTCUTS_SCRIPT = Path(__file__).with_name("shortcuts.js")
TITLE = "Stable Diffusion"


def mount_options(ctx=None) -> dict:
    """Keyword arguments for gr.mount_gradio_app that this UI needs: our stylesheet and A1111's page helpers,
    then the enabled extensions' style.css and javascript/*.js (*.mjs as modules), in the order they loaded."""
    css = [STYLE_CSS]
    own = (A1111_SCRIPT, extra_networks.SCRIPT, SHORTCUTS_SCRIPT)
    scripts = [_inline_script(path.read_text(encoding="utf-8")) for path in own]
    if ctx is not None and (ctx.flags.theme or "").lower() == "dark":  # --theme dark: Gradio's dark mode
        scripts.append(_inline_script('document.body.classList.add("dark");'))
    if ctx is not None and (translation := localization.page_script(ctx)):
        scripts.append(_inline_script(translation))
    runtime = getattr(ctx, "extensions", None)
    for ext in runtime.extensions if runtime is not None else []:
        if not ext.enabled:
            continue
        if (ext.path / "style.css").is_file():
            css.append(ext.path / "style.css")
        folder = ext.path / "javascript"
        for path in sorted(folder.glob("*.*js")) if folder.is_dir() else []:
            if path.suffix in (".js", ".mjs"):
                code = path.read_text(encoding="utf-8", errors="replace")
                scripts.append(_inline_script(code, module=path.suffix == ".mjs"))
    # Gradio's footer keeps its "Built with Gradio" link only: its own "Settings" panel (theme, language) would be
    # mistaken for ours, and its API page lists nothing (our events are private; the API is /docs)
    return {"css_paths": css, "head": "\n".join(scripts), "footer_links": ["gradio"]}


def _inline_script(code: str, module: bool = False) -> str:
    # "</script" inside the code would end the tag early; the escaped form means the same to JavaScript
    code = code.replace("</script", "<\\/script")
    kind = ' type="module"' if module else ""
    return f"<script{kind}>\n{code}\n</script>"


def extension_tabs(ctx) -> list:
    """What extensions' script_callbacks.on_ui_tabs callbacks return: (Blocks, title, elem_id) each. Called before
    the page's Blocks opens, as in A1111: a Blocks made inside another one would render itself into it."""
    if getattr(ctx, "extensions", None) is None:
        return []
    from sdui.extensions import registry
    from sdui.extensions.gradio3 import gradio3

    with gradio3():
        made = registry.call("ui_tabs")
    return [entry for tabs in made for entry in tabs or []]


def add_extension_tabs(entries: list) -> None:
    for entry in entries:
        try:
            blocks, title, elem_id = entry[0], entry[1], entry[2]
            with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                blocks.render()
        except Exception:  # noqa: BLE001 - one extension's tab must not break the page
            log.error("An extension's tab %r could not be added:\n%s", entry, traceback.format_exc())


def create_ui(ctx) -> gr.Blocks:
    if getattr(ctx, "extensions", None) is not None:
        from sdui.extensions import registry

        registry.call("before_ui")
    added_tabs = extension_tabs(ctx)
    # delete_cache: Gradio keeps a copy of every image (and live preview) it sends; files older than 6 h go
    # (the outputs themselves are saved under outputs/ by the processing core)
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True, delete_cache=(3600, 6 * 3600)) as demo:
        picker = common.create_checkpoint_picker(ctx)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                t2i = txt2img.create_tab(ctx)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                i2i = img2img.create_tab(ctx)
            with gr.Tab("Inpaint", id="inpaint", elem_id="tab_inpaint"):
                inp = inpaint.create_tab(ctx)
            with gr.Tab("Outpaint", id="outpaint", elem_id="tab_outpaint"):
                outp = outpaint.create_tab(ctx)
            with gr.Tab("depth2img", id="depth2img", elem_id="tab_depth2img"):
                depth = depth2img.create_tab(ctx)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extra = extras.create_tab(ctx)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                pnginfo.create_tab(ctx, {"txt2img": t2i, "img2img": i2i, "inpaint": inp, "extras": extra}, tabs)
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):
                merger.create_tab(ctx, picker.dropdown)
            generation.wire_send_to(
                [t2i, i2i, inp, outp, depth, extra], {"img2img": i2i, "inpaint": inp, "extras": extra}, tabs
            )
            add_extension_tabs(added_tabs)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings.create_tab(ctx)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                extensions.create_tab(ctx)
        if getattr(ctx, "extensions", None) is not None:
            from sdui.extensions.component_callbacks import run_component_callbacks

            run_component_callbacks(demo, ctx.extensions.scripts)
        demo.load(
            picker.on_page_load,
            inputs=[],
            outputs=[picker.dropdown, picker.message],
            queue=False,
            api_visibility="private",
        )
    return demo
