"""The extra networks cards under each generation tab's prompt (A1111's): Textual Inversion, Hypernetworks,
Checkpoints and Lora, each with a search box, a refresh button and a card per file (preview, name, description).
Clicking a card adds its text to the prompt, or takes it out again when it is there; a checkpoint card loads that
checkpoint. Previews are small inline images: the page never asks the server for a file by path.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from pathlib import Path

import gradio as gr

from sdui.app.extra_network_cards import KINDS, TITLES, Card, cards
from sdui.ui import common

SCRIPT = Path(__file__).with_name("extra_networks.js")
THUMB_SIZE = 192


@functools.lru_cache(maxsize=2048)
def _thumbnail(path: str, mtime_ns: int) -> str:
    """A preview as a small JPEG data URI (cached per file version)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _card_html(tab: str, card: Card) -> str:
    preview = ""
    if card.preview is not None:
        try:
            preview = f'<img src="{_thumbnail(str(card.preview), card.preview.stat().st_mtime_ns)}" alt="">'
        except OSError:
            preview = ""
    q = html.escape
    return (
        f'<div class="extra-network-card" data-kind="{q(card.kind)}" data-name="{q(card.name)}" '
        f'data-folder="{q(card.folder)}" data-mtime="{card.mtime:.0f}" '
        f'data-prompt="{q(card.prompt)}" title="{q(card.description or card.name)}" '
        f"onclick=\"sduiCardClicked('{tab}', this)\">{preview}"
        f'<span class="name">{q(card.name)}</span>'
        f'<span class="description">{q(card.description)}</span></div>'
    )


def cards_html(ctx, tab: str, kind: str) -> str:
    found = cards(ctx, kind)
    body = "".join(_card_html(tab, c) for c in found) or (
        f'<p class="extra-network-empty">Nothing here yet: put files into the {TITLES[kind]} folder and press 🔄.</p>'
    )
    folders = sorted({c.folder for c in found if c.folder})
    buttons = "".join(
        f'<button class="extra-network-folder" data-folder="{html.escape(f)}" '
        f'onclick="sduiFolderClicked(this)">{html.escape(f)}</button>'
        for f in folders
    )
    folder_row = f'<div class="extra-network-folders">{buttons}</div>' if buttons else ""
    return (
        f'<div class="extra-network-panel" id="{tab}_{kind}_panel" data-folder="">'
        '<div class="extra-network-controls">'
        '<input class="extra-network-search" type="search" placeholder="Search..." '
        'oninput="sduiFilterCards(this)">'
        '<select class="extra-network-sort" onchange="sduiSortCards(this)">'
        '<option value="name">Name</option><option value="mtime">Date modified</option></select>'
        f"</div>{folder_row}"
        f'<div class="extra-network-cards">{body}</div></div>'
    )


def create_extra_networks(ctx, tab: str) -> None:
    """The accordion of cards for generation tab `tab` (its prompt box is `#<tab>_prompt`)."""
    with gr.Accordion("Extra networks", open=False, elem_id=f"{tab}_extra_networks"):
        with gr.Tabs(elem_id=f"{tab}_extra_networks_tabs"):
            for kind in KINDS:
                with gr.Tab(TITLES[kind], elem_id=f"{tab}_{kind}_tab"):
                    listing = gr.HTML(cards_html(ctx, tab, kind), elem_id=f"{tab}_{kind}_cards")
                    refresh = common.tool_button(common.REFRESH_SYMBOL, elem_id=f"{tab}_{kind}_refresh")
                    create_metadata_editor(ctx, tab, kind, listing)
                refresh.click(
                    functools.partial(_refreshed, ctx, tab, kind),
                    inputs=[],
                    outputs=[listing],
                    api_visibility="private",
                )
        # a checkpoint card writes its title here and presses the hidden button
        chosen = gr.Textbox(visible="hidden", elem_id=f"{tab}_extra_networks_checkpoint")
        select = gr.Button(visible="hidden", elem_id=f"{tab}_extra_networks_select")
        message = gr.HTML("", elem_id=f"{tab}_extra_networks_message")
    select.click(
        lambda title: common.error_html(common.select_checkpoint(ctx, title)),
        inputs=[chosen],
        outputs=[message],
        api_visibility="private",
    )


def _refreshed(ctx, tab: str, kind: str) -> str:
    if kind == "checkpoints":
        ctx.store.refresh()
    return cards_html(ctx, tab, kind)


def create_metadata_editor(ctx, tab: str, kind: str, listing: gr.HTML) -> None:
    """A1111's user metadata editor: description, activation text, preferred weight and notes of one card, saved
    into `<name>.json` beside its file; the cards show the change at once."""
    from sdui.app.extra_network_cards import save_user_metadata
    from sdui.errors import UserError

    prefix = f"{tab}_{kind}_meta"
    with gr.Accordion("Edit metadata", open=False, elem_id=prefix):
        name = gr.Dropdown(choices=[c.name for c in cards(ctx, kind)], label="Name", elem_id=f"{prefix}_name")
        description = gr.Textbox(label="Description", lines=2, elem_id=f"{prefix}_description")
        activation = gr.Textbox(label="Activation text", elem_id=f"{prefix}_activation_text")
        weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Preferred weight", elem_id=f"{prefix}_weight")
        notes = gr.Textbox(label="Notes", lines=2, elem_id=f"{prefix}_notes")
        save = gr.Button("Save", variant="primary", elem_id=f"{prefix}_save")
        message = gr.HTML("", elem_id=f"{prefix}_message")

    def load(chosen):
        card = next((c for c in cards(ctx, kind) if c.name == chosen), None)
        meta = card.metadata if card is not None else {}
        return (
            meta.get("description", ""),
            meta.get("activation text", ""),
            float(meta.get("preferred weight") or 1.0),
            meta.get("notes", ""),
        )

    def on_save(chosen, text, activation_text, preferred, note):
        changes = {"description": text or "", "activation text": activation_text or "", "notes": note or ""}
        if kind in ("lora", "hypernetworks"):
            changes["preferred weight"] = float(preferred)
        try:
            path = save_user_metadata(ctx, kind, chosen or "", changes)
        except (UserError, OSError) as e:
            return gr.skip(), common.error_html(getattr(e, "message", str(e)))
        return cards_html(ctx, tab, kind), common.note_html(f"Saved {path.name}.")

    private = {"api_visibility": "private", "queue": False}
    name.input(load, inputs=[name], outputs=[description, activation, weight, notes], **private)
    save.click(on_save, inputs=[name, description, activation, weight, notes], outputs=[listing, message], **private)
