"""The style picker of the generation tabs: its choices are styles.csv's, 📋 writes the chosen styles into the
prompts, and Generate applies the chosen ones (the infotext shows the styled prompt)."""

from __future__ import annotations

from sdui.ui.app import create_ui
from tests.helpers import call, components_by_id, handler, install_checkpoint, make_ctx, outputs_by_id

CSV = 'name,prompt,negative_prompt\nCinematic,"{prompt}, film grain",blurry\nNight,by night,\n'
HIRES_OFF = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]


def test_style_picker(tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    (data / "styles.csv").write_text(CSV)
    ctx = make_ctx(data)
    try:
        demo = create_ui(ctx)
        blocks = components_by_id(demo)
        for tab in ("txt2img", "img2img", "inpaint", "outpaint", "depth2img"):
            assert [c[0] for c in blocks[f"{tab}_styles"].choices] == ["Cinematic", "Night"]
        apply = handler(demo, "txt2img_style_apply", "click")
        assert apply.fn("a cat", "fog", ["Cinematic", "Night"]) == ("a cat, film grain, by night", "fog, blurry", [])

        fn = handler(demo, "txt2img_generate", "click")
        base = [*HIRES_OFF, "a cat", "fog", "Euler", "Automatic", 2, 64, 64, 1, 1, 5, 1234, -1, 0, 0, 0]
        rest = [getattr(b, "value", None) for b in fn.inputs[len(base) :]]
        rest[-1] = ["Cinematic"]
        final = outputs_by_id(fn, list(call(fn, *base, *rest))[-1])
        assert final["generation_info_txt2img"].startswith("a cat, film grain\nNegative prompt: fog, blurry\n")
    finally:
        ctx.jobs.shutdown()


def test_pasting_a_styled_prompt_chooses_the_styles(tmp_path):
    from sdui.text.styles import Style, extract_styles

    styles = [Style("Cinematic", "{prompt}, film grain", "blurry"), Style("Night", "by night")]
    assert extract_styles("a cat, film grain, by night", "fog, blurry", styles) == (
        ["Cinematic", "Night"],
        "a cat",
        "fog",
    )
    assert extract_styles("a dog", "fog", styles) == ([], "a dog", "fog")

    data = tmp_path / "data"
    data.mkdir()
    (data / "styles.csv").write_text(CSV)
    ctx = make_ctx(data)
    try:
        fn = handler(create_ui(ctx), "txt2img_paste", "click")
        text = "a cat, film grain, by night\nNegative prompt: fog, blurry\nSteps: 3, Seed: 1, CFG scale: 5"
        pasted = outputs_by_id(fn, call(fn, text, ""))
        assert pasted["txt2img_prompt"] == "a cat" and pasted["txt2img_neg_prompt"] == "fog"
        assert pasted["txt2img_styles"] == ["Cinematic", "Night"]
        ctx.options.set("infotext_styles", "Ignore")
        pasted = outputs_by_id(fn, call(fn, text, ""))
        assert pasted["txt2img_prompt"] == "a cat, film grain, by night"
    finally:
        ctx.jobs.shutdown()


def test_the_style_editor_saves_and_deletes_in_place(tmp_path):
    from sdui.text.styles import read_styles

    data = tmp_path / "data"
    data.mkdir()
    (data / "styles.csv").write_text('name,prompt,negative_prompt,notes\nNight,by night,,kept\n')
    ctx = make_ctx(data)
    try:
        demo = create_ui(ctx)
        save = handler(demo, "txt2img_edit_style_save", "click")
        picker, _, message = save.fn("Cinematic", "{prompt}, film grain", "blurry")
        assert [c[0] for c in picker.choices] == ["Night", "Cinematic"] and "Saved into" in message
        save.fn("Night", "at night", "day")
        styles = {s.name: s for s in read_styles((data / "styles.csv",))}
        assert styles["Night"].prompt == "at night" and styles["Cinematic"].negative_prompt == "blurry"
        assert "kept" in (data / "styles.csv").read_text()  # other columns survive
        delete = handler(demo, "txt2img_edit_style_delete", "click")
        picker, *_ = delete.fn("Night")
        assert [c[0] for c in picker.choices] == ["Cinematic"]
        *_, message = delete.fn("Nope")
        assert "no style named &#x27;Nope&#x27;" in message
        assert "no name" not in save.fn("", "x", "")[2] and "needs a name" in save.fn("", "x", "")[2]
    finally:
        ctx.jobs.shutdown()
