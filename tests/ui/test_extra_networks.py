"""Extra networks cards: what each kind lists and what a click inserts (A1111's tags, preferred weight and
activation text from the user metadata, alias or file name), and in a real browser: clicking a card adds its text
to the prompt and a second click takes it out, search hides cards, a checkpoint card loads that checkpoint."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sdui.app.extra_network_cards import cards
from tests.helpers import install_checkpoint, make_ctx


def populate(data):
    lora = data / "models" / "Lora"
    lora.mkdir(parents=True, exist_ok=True)
    save_file({"x.alpha": torch.tensor(1.0)}, str(lora / "style.safetensors"), metadata={"ss_output_name": "orig"})
    (lora / "style.json").write_text(
        json.dumps({"preferred weight": 0.7, "activation text": "sks person", "description": "a test style"})
    )
    Image.new("RGB", (64, 48), (200, 30, 30)).save(lora / "style.preview.png")
    save_file({"x.alpha": torch.tensor(1.0)}, str(lora / "plain.safetensors"))
    (lora / "deep").mkdir()
    save_file({"x.alpha": torch.tensor(1.0)}, str(lora / "deep" / "inner.safetensors"))
    os.utime(lora / "plain.safetensors", (2_000_000_000, 2_000_000_000))  # the newest
    torch.save({"string_to_param": {"*": torch.zeros(1, 8)}}, data / "embeddings" / "fluffy.pt")
    hyper = data / "models" / "hypernetworks"
    hyper.mkdir(parents=True, exist_ok=True)
    torch.save({"layer_structure": [1, 1]}, hyper / "anime.pt")


def test_cards_of_each_kind(tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    ctx = make_ctx(data)
    try:
        populate(data)
        lora = {c.name: c for c in cards(ctx, "lora")}
        assert (
            lora["style"].prompt == "<lora:orig:0.7> sks person" and lora["style"].preview.name == "style.preview.png"
        )
        assert lora["style"].description == "a test style" and lora["plain"].prompt == "<lora:plain:1>"
        assert (lora["inner"].folder, lora["plain"].folder) == ("deep", "")
        ctx.options.set("lora_preferred_name", "Filename")
        assert {c.name: c for c in cards(ctx, "lora")}["style"].prompt.startswith("<lora:style:0.7>")
        assert [c.prompt for c in cards(ctx, "textual_inversion")] == ["fluffy"]
        assert [c.prompt for c in cards(ctx, "hypernetworks")] == ["<hypernet:anime:1>"]
        assert [c.name for c in cards(ctx, "checkpoints")] == ctx.store.titles()

        # the metadata editor writes <name>.json (other keys kept) and the cards follow
        from sdui.ui.app import create_ui
        from tests.helpers import handler

        demo = create_ui(ctx)
        load = handler(demo, "txt2img_lora_meta_name", "input")
        assert load.fn("style") == ("a test style", "sks person", 0.7, "")
        save = handler(demo, "txt2img_lora_meta_save", "click")
        listing, message = save.fn("plain", "plainly", "pln", 1.25, "mine")
        assert "Saved plain.json" in message and 'data-prompt="&lt;lora:plain:1.25&gt; pln"' in listing
        saved = json.loads((data / "models" / "Lora" / "plain.json").read_text())
        assert saved == {"description": "plainly", "activation text": "pln", "notes": "mine", "preferred weight": 1.25}
        _, message = save.fn("../../etc/passwd", "x", "", 1.0, "")
        assert "No Lora named" in message and not (data / "etc").exists()
    finally:
        ctx.jobs.shutdown()


@pytest.mark.slow
@pytest.mark.browser
def test_cards_in_the_browser(page, tmp_path, tiny_sd1_checkpoint):
    from tests.fixtures.live_server import LiveServer, free_port

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    ctx = make_ctx(data)
    populate(data)
    with LiveServer(ctx, free_port()) as server:
        page.goto(server.url + "/")
        prompt = page.locator("#txt2img_prompt textarea")
        prompt.fill("a cat")
        page.locator("#txt2img_extra_networks").get_by_text("Extra networks").click()
        page.locator("#txt2img_extra_networks").get_by_role("tab", name="Lora").click()
        card = page.locator("#txt2img_lora_cards .extra-network-card[data-name='style']")
        assert card.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
        card.click()
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value.includes('sks')")
        assert prompt.input_value() == "a cat <lora:orig:0.7> sks person"
        card.click()
        page.wait_for_function("!document.querySelector('#txt2img_prompt textarea').value.includes('sks')")
        assert prompt.input_value() == "a cat"

        search = page.locator("#txt2img_lora_cards input.extra-network-search")
        search.fill("plain")
        assert not card.is_visible() and page.locator("#txt2img_lora_cards [data-name='plain']").is_visible()
        search.fill("")
        names = page.locator("#txt2img_lora_cards .extra-network-card")
        folder = page.locator("#txt2img_lora_cards button.extra-network-folder", has_text="deep")
        folder.click()
        assert [
            n for n in names.evaluate_all("cs => cs.filter(c => c.style.display !== 'none').map(c => c.dataset.name)")
        ] == ["inner"]
        folder.click()
        page.locator("#txt2img_lora_cards select.extra-network-sort").select_option("mtime")
        assert names.first.get_attribute("data-name") == "plain"
        page.locator("#txt2img_lora_cards select.extra-network-sort").select_option("name")
        assert names.evaluate_all("cs => cs.map(c => c.dataset.name)") == ["inner", "plain", "style"]

        page.locator("#txt2img_extra_networks").get_by_role("tab", name="Textual Inversion").click()
        page.locator("#txt2img_textual_inversion_cards [data-name='fluffy']").click()
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value.endsWith('fluffy')")

        page.locator("#txt2img_extra_networks").get_by_role("tab", name="Checkpoints").click()
        page.locator("#txt2img_checkpoints_cards .extra-network-card").first.click()
        for _ in range(100):
            if ctx.store.current is not None:
                break
            page.wait_for_timeout(200)
        assert ctx.store.current is not None and ctx.store.current_info.filename.endswith("tiny.safetensors")
    assert page.outside_requests == [] and page.console_errors == []
