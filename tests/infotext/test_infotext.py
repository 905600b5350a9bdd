"""Infotext: A1111-format texts round-trip byte for byte; parsing gives A1111's dict; fields map to a request."""

import pytest

from sdui.core.infotext_fields import request_fields
from sdui.core.samplers import split_schedule_suffix
from sdui.infotext import build_infotext, generation_params, parse_infotext
from sdui.request import GenerationRequest

SECTION_2_6_EXAMPLE = (
    "masterpiece, a (red fox:1.2) in a [snowy|misty] forest, <lora:add_detail:0.6>\n"
    "Negative prompt: easynegative, blurry\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, "
    "Hires steps: 10, Hires upscaler: Latent, Lora hashes: \"add_detail: 7c6bad76eb54\", "
    "TI hashes: \"easynegative: c74b4e810b03\", Version: v1.10.1"
)

# (name, A1111 text, expected Prompt, expected Negative prompt, expected parameter pairs as parsed)
ROUND_TRIP = [
    (
        "section 2.6 example",
        SECTION_2_6_EXAMPLE,
        "masterpiece, a (red fox:1.2) in a [snowy|misty] forest, <lora:add_detail:0.6>",
        "easynegative, blurry",
        {
            "Steps": "20",
            "Sampler": "DPM++ 2M",
            "Schedule type": "Karras",
            "CFG scale": "7",
            "Seed": "1234567890",
            "Size-1": "512",
            "Size-2": "768",
            "Model hash": "6ce0161689",
            "Model": "v1-5-pruned-emaonly",
            "Denoising strength": "0.45",
            "Clip skip": "2",
            "Hires upscale": "2",
            "Hires steps": "10",
            "Hires upscaler": "Latent",
            "Lora hashes": "add_detail: 7c6bad76eb54",
            "TI hashes": "easynegative: c74b4e810b03",
            "Version": "v1.10.1",
        },
    ),
    (
        "multi-line prompt and negative",
        "first line\nsecond, line\nNegative prompt: bad\nworse\nSteps: 4, Sampler: Euler, CFG scale: 7.0",
        "first line\nsecond, line",
        "bad\nworse",
        {"Steps": "4", "Sampler": "Euler", "CFG scale": "7.0"},
    ),
    (
        "'Negative prompt' inside a prompt line",
        "a sign reading Negative prompt: none\nSteps: 4, Sampler: Euler, Seed: 3",
        "a sign reading Negative prompt: none",
        "",
        {"Steps": "4", "Sampler": "Euler", "Seed": "3"},
    ),
    (
        "no negative prompt",
        "a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 64x32",
        "a cat",
        "",
        {"Steps": "20", "Sampler": "Euler a", "Seed": "1", "Size-1": "64", "Size-2": "32"},
    ),
    (
        "empty prompt",
        "Steps: 20, Sampler: Euler a, CFG scale: 7",
        "",
        "",
        {"Steps": "20", "Sampler": "Euler a", "CFG scale": "7"},
    ),
    (
        "empty prompt with negative",
        "Negative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7",
        "",
        "ugly",
        {"Steps": "20", "Sampler": "Euler a", "CFG scale": "7"},
    ),
    ("fewer than 3 pairs: all prompt", "a cat\nStyle: ink, Mood: calm", "a cat\nStyle: ink, Mood: calm", "", {}),
    (
        "quoted values: comma, colon, newline, unicode, quotes",
        'x\nSteps: 1, Wildcard prompt: "a, b", Hires prompt: "line1\\nline2", Note: "café: ünï 😀", '
        'Quip: "he said \\"hi, there\\"", Title: say "hi", Seed: 9',
        "x",
        "",
        {
            "Steps": "1",
            "Wildcard prompt": "a, b",
            "Hires prompt": "line1\nline2",
            "Note": "café: ünï 😀",
            "Quip": 'he said "hi, there"',
            "Title": 'say "hi"',
            "Seed": "9",
        },
    ),
    (
        "WxH keys",
        "p\nSteps: 2, Size: 512x768, Seed resize from: 256x384, Hires resize: 1024x1536",
        "p",
        "",
        {
            "Steps": "2",
            "Size-1": "512",
            "Size-2": "768",
            "Seed resize from-1": "256",
            "Seed resize from-2": "384",
            "Hires resize-1": "1024",
            "Hires resize-2": "1536",
        },
    ),
    (
        "Lora hashes with several entries",
        'p\nSteps: 2, Seed: 5, Lora hashes: "a: 1, b: 2", TI hashes: "c: 3"',
        "p",
        "",
        {"Steps": "2", "Seed": "5", "Lora hashes": "a: 1, b: 2", "TI hashes": "c: 3"},
    ),
    (
        "keys with - and /",
        "p\nSteps: 2, X/Y/Z Type: Seed, Token-merge: 0.5",
        "p",
        "",
        {"Steps": "2", "X/Y/Z Type": "Seed", "Token-merge": "0.5"},
    ),
]


def _join_sizes(pairs: dict) -> dict:
    """Parsed pairs back into build order: `Key-1`/`Key-2` become one `Key: WxH`."""
    out = {}
    for key, value in pairs.items():
        if key.endswith("-1") and key[:-2] + "-2" in pairs:
            out[key[:-2]] = f"{value}x{pairs[key[:-2] + '-2']}"
        elif not (key.endswith("-2") and key[:-2] + "-1" in pairs):
            out[key] = value
    return out


@pytest.mark.parametrize("name,text,prompt,negative,pairs", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_round_trip_table(name, text, prompt, negative, pairs):
    parsed = parse_infotext(text, defaults=False)
    assert parsed.pop("Prompt") == prompt
    assert parsed.pop("Negative prompt") == negative
    assert parsed == pairs
    assert list(parsed) == list(pairs)  # order kept
    assert build_infotext(prompt, negative, _join_sizes(parsed)) == text  # byte-exact
    assert parse_infotext(build_infotext(prompt, negative, _join_sizes(pairs)), defaults=False) == {
        **pairs,
        "Prompt": prompt,
        "Negative prompt": negative,
    }


def test_build_quoting_rules():
    text = build_infotext(
        "p",
        "",
        {
            "A": "x,y",
            "B": "k: v",
            "C": "l1\nl2",
            "D": "ü",
            "E": 'q"q',
            "F": 7.0,
            "G": None,
            "Pad conds": "Pad conds",
            "H": True,
        },
    )
    assert text == 'p\nA: "x,y", B: "k: v", C: "l1\\nl2", D: ü, E: q"q, F: 7.0, Pad conds, H: True'
    assert build_infotext("  p  ", "", {"Steps": 1}) == "p  \nSteps: 1"  # A1111 strips the whole text


def test_parse_defaults_like_a1111():
    res = parse_infotext("a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    assert res["Clip skip"] == "1" and res["RNG"] == "GPU" and res["Schedule type"] == "Automatic"
    assert res["Hires resize-1"] == 0 and res["Hires resize-2"] == 0
    assert res["Hires sampler"] == "Use same sampler" and res["Hires schedule type"] == "Use same scheduler"
    assert res["Hires checkpoint"] == "Use same checkpoint" and res["Hires prompt"] == ""
    assert res["Masked area padding"] == 32 and res["Mask mode"] == "Inpaint masked"
    assert res["VAE Decoder"] == "Full" and res["FP8 weight"] == "Disable"
    assert res["Refiner switch by sampling steps"] is False
    assert "Emphasis" not in res and "Cache FP16 weight for LoRA" not in res
    assert parse_infotext("a (cat)\nSteps: 20, Sampler: Euler a, Seed: 1")["Emphasis"] == "Original"
    assert "Emphasis" not in parse_infotext("a (cat:1.0)\nSteps: 20, Sampler: Euler a, Seed: 1")
    assert parse_infotext("a cat\nSteps: 20, Clip skip: 2, RNG: CPU")["Clip skip"] == "2"


def test_hypernet_and_first_pass_size():
    res = parse_infotext("cat\nSteps: 2, Hypernet: anime, Hypernet strength: 0.5, Seed: 1")
    assert res["Prompt"] == "cat<hypernet:anime:0.5>"
    res = parse_infotext("cat\nSteps: 2, Size: 1024x768, First pass size: 0x0, Seed: 1")
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (640, 448, 1024, 768)


def test_version_backcompat():
    old = parse_infotext("a [b:c:5]\nSteps: 2, Sampler: DDIM, Version: v1.5.2")
    assert old["Old prompt editing timelines"] is True and old["Pad conds v0"] is True
    assert old["Downcast alphas_cumprod"] is True
    new = parse_infotext("a [b:c:5]\nSteps: 2, Sampler: DDIM, Version: v1.10.1")
    assert not {"Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod"} & set(new)
    assert parse_infotext("x\nSteps: 2, Sampler: Euler, Version: v1.7.0-224-gabc")["Downcast alphas_cumprod"] is True


def test_old_combined_sampler_split_when_pasted():
    raw = parse_infotext("cat\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 1")
    assert (raw["Sampler"], raw["Schedule type"]) == ("DPM++ 2M Karras", "Automatic")  # as A1111's png-info
    fields = request_fields(raw)
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ 2M", "Karras")
    fields = request_fields(parse_infotext("cat\nSteps: 20, Sampler: Euler SGM Uniform, Seed: 1"))
    assert (fields["sampler_name"], fields["scheduler"]) == ("Euler", "SGM Uniform")
    assert split_schedule_suffix("DDIM") == ("DDIM", None)
    assert split_schedule_suffix("DDIM CFG++") == ("DDIM CFG++", None)
    assert split_schedule_suffix("LMS karras") == ("LMS", "Karras")


def test_skip_fields():
    res = parse_infotext("cat\nSteps: 20, Sampler: Euler, Seed: 1", skip_fields=["Seed"])
    assert "Seed" not in res and res["Steps"] == "20"


def test_generation_params_reproduce_section_2_6_example():
    req = GenerationRequest(
        prompt="masterpiece, a (red fox:1.2) in a [snowy|misty] forest, <lora:add_detail:0.6>",
        negative_prompt="easynegative, blurry",
        steps=20,
        sampler_name="DPM++ 2M",
        scheduler="Automatic",
        cfg_scale=7,
        width=512,
        height=768,
        extra_generation_params={
            "Denoising strength": 0.45,
            "Hires upscale": 2,
            "Hires steps": 10,
            "Hires upscaler": "Latent",
        },
    )
    params = generation_params(
        req,
        seed=1234567890,
        model_name="v1-5-pruned-emaonly",
        model_hash="6ce0161689",
        schedule_label="Karras",
        clip_skip=2,
        rng="GPU",
        version="v1.10.1",
        extra={"Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "easynegative: c74b4e810b03"},
    )
    assert build_infotext(req.prompt, req.negative_prompt, params) == SECTION_2_6_EXAMPLE


def test_generation_params_optional_keys_and_order():
    req = GenerationRequest(
        prompt="p",
        steps=4,
        sampler_name="Euler a",
        cfg_scale=7.0,
        width=64,
        height=64,
        subseed=77,
        subseed_strength=0.25,
        seed_resize_from_w=32,
        seed_resize_from_h=48,
        tiling=True,
        extra_generation_params={"Schedule type": "Karras", "NGMS": 0.5},
    )
    params = generation_params(
        req, seed=5, ensd=31337, emphasis="No norm", extra={"Lora hashes": ["a: 1", "b: 2"]}, index=1, version="v0"
    )
    assert list(params) == [
        "Steps",
        "Sampler",
        "Schedule type",
        "CFG scale",
        "Seed",
        "Size",
        "Variation seed",
        "Variation seed strength",
        "Seed resize from",
        "ENSD",
        "RNG",
        "Tiling",
        "NGMS",
        "Lora hashes",
        "Emphasis",
        "Version",
    ]
    assert params["Schedule type"] == "Karras"  # a sampler's label lands in the fixed slot
    assert params["Variation seed"] == 77 and params["Seed resize from"] == "32x48"
    assert params["RNG"] == "CPU" and params["Tiling"] == "True" and params["Lora hashes"] == "b: 2"
    assert build_infotext("p", "", params).endswith(
        "CFG scale: 7.0, Seed: 5, Size: 64x64, Variation seed: 77, Variation seed strength: 0.25, "
        "Seed resize from: 32x48, ENSD: 31337, RNG: CPU, Tiling: True, NGMS: 0.5, Lora hashes: \"b: 2\", "
        "Emphasis: No norm, Version: v0"
    )
    plain = generation_params(GenerationRequest(), seed=1, schedule_label=None, emphasis="Original", ensd=0)
    assert list(plain) == ["Steps", "Sampler", "CFG scale", "Seed", "Size", "RNG"]


def test_request_fields_from_section_2_6_example():
    fields = request_fields(parse_infotext(SECTION_2_6_EXAMPLE))
    assert fields["prompt"].startswith("masterpiece, a (red fox:1.2)")
    assert fields["negative_prompt"] == "easynegative, blurry"
    assert (fields["steps"], fields["sampler_name"], fields["scheduler"]) == (20, "DPM++ 2M", "Karras")
    assert fields["cfg_scale"] == 7.0 and isinstance(fields["cfg_scale"], float)
    assert (fields["seed"], fields["width"], fields["height"]) == (1234567890, 512, 768)
    assert fields["denoising_strength"] == 0.45 and fields["enable_hr"] is True
    assert (fields["hr_scale"], fields["hr_second_pass_steps"], fields["hr_upscaler"]) == (2.0, 10, "Latent")
    assert fields["override_settings"]["CLIP_stop_at_last_layers"] == 2
    assert fields["override_settings"]["randn_source"] == "GPU"
    assert fields["override_settings"]["emphasis"] == "Original"
    current = {
        "CLIP_stop_at_last_layers": 2,
        "randn_source": "CPU",
        "emphasis": "Original",
        "sigma_min": 0.0,
        "sigma_max": 0.0,
        "rho": 0.0,
        "sd_vae_encode_method": "Full",
        "sd_vae_decode_method": "Full",
    }
    assert request_fields(parse_infotext(SECTION_2_6_EXAMPLE), current=current)["override_settings"] == {
        "randn_source": "GPU"
    }


def test_request_fields_conversions():
    text = (
        "p\nSteps: many, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 98765432109876543210, "
        "Variation seed: 12, Variation seed strength: 0.3, Seed resize from: 256x128, ENSD: 31337, "
        "Batch size: 2, Size: 64x32"
    )
    fields = request_fields(parse_infotext(text))
    assert "steps" not in fields  # unconvertible value left alone
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ 2M", "Karras")
    assert fields["seed"] == 98765432109876543210  # exact, not through float
    assert (fields["subseed"], fields["subseed_strength"]) == (12, 0.3)
    assert (fields["seed_resize_from_w"], fields["seed_resize_from_h"]) == (256, 128)
    assert fields["batch_size"] == 2 and fields["enable_hr"] is False
    assert fields["override_settings"]["eta_noise_seed_delta"] == 31337
    assert all(isinstance(fields[k], int) for k in ("seed", "subseed", "width", "height"))


def test_request_fields_img2img():
    text = (
        "p\nSteps: 9, Denoising strength: 0.6, Mask blur: 8, Mask mode: Inpaint not masked, "
        "Masked content: latent noise, Inpaint area: Only masked, Masked area padding: 16, Image CFG scale: 1.5"
    )
    fields = request_fields(parse_infotext(text), mode="img2img")
    assert fields["denoising_strength"] == 0.6 and fields["mask_blur_x"] == fields["mask_blur_y"] == 8
    assert (fields["inpainting_mask_invert"], fields["inpainting_fill"], fields["inpaint_full_res"]) == (1, 2, True)
    assert fields["inpaint_full_res_padding"] == 16 and fields["image_cfg_scale"] == 1.5
    assert "enable_hr" not in fields and "hr_scale" not in fields
