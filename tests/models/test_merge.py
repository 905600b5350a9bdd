"""Checkpoint merging (A1111's Checkpoint Merger): every result is read back through the real loaders and compared
tensor by tensor with the formula computed here from the inputs; names, metadata, VAE baking, pruning, casting,
the inpainting conv_in rule and the refusals."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sdui.errors import CheckpointError, InvalidRequestError
from sdui.models.discovery import list_checkpoints
from sdui.models.loading import load_sd_model, read_state_dict
from sdui.models.merge import (
    ADD_DIFFERENCE,
    NO_INTERPOLATION,
    MergeRequest,
    add_difference,
    merge_checkpoints,
    weighted_sum,
)
from tests.fixtures.checkpoints import build_tiny_checkpoint, tiny_state_dict
from tests.helpers import CPU32

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
POSITION_IDS = "cond_stage_model.transformer.text_model.embeddings.position_ids"
VAE = "first_stage_model."


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """models/Stable-diffusion with three tiny SD1 models of different seeds, and an empty VAE folder."""
    root = tmp_path_factory.mktemp("merge")
    ckpt = root / "Stable-diffusion"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        build_tiny_checkpoint(ckpt / f"{name}.safetensors", seed=seed)
    (root / "VAE").mkdir()
    return ckpt


def listed(folder):
    return list_checkpoints([folder])


def run(folder, vaes=None, out_dir=None, **fields):
    fields.setdefault("primary", "a.safetensors")
    fields.setdefault("secondary", "b.safetensors")
    return merge_checkpoints(MergeRequest(**fields), listed(folder), vaes or {}, out_dir or folder)


def sd(path):
    return read_state_dict(path)  # the loader's own reading (safe_open / torch.load(weights_only=True))


@pytest.fixture
def out(tmp_path, folder):
    """A fresh output folder per test, so results do not meet each other's names (inputs stay in `folder`)."""
    return tmp_path / "out"


def test_weighted_sum_is_the_formula_tensor_by_tensor_and_loads_as_a_model(folder, out):
    result = run(folder, out_dir=out, multiplier=0.3)
    assert result.path == out.resolve() / "0.7(a) + 0.3(b).safetensors" and not result.renamed

    a, b, merged = sd(folder / "a.safetensors"), sd(folder / "b.safetensors"), sd(result.path)
    assert merged.keys() == a.keys()
    for key in a:
        if key == POSITION_IDS:  # integers are not interpolated
            assert torch.equal(merged[key], a[key]) and merged[key].dtype == torch.int64
        else:
            assert torch.equal(merged[key], 0.7 * a[key] + 0.3 * b[key]), key
    assert result.merged_keys == len(a) - 1

    model = load_sd_model(result.path, CPU32)
    assert model.variant == "base" and torch.equal(model.unet.conv_in.weight, merged[UNET_IN])


def test_add_difference_and_keys_missing_in_b_or_c_keep_a(folder, out, tmp_path):
    # B lacks one UNet key, C another: both stay A's
    b = tiny_state_dict(seed=2)
    c = tiny_state_dict(seed=3)
    missing_b, missing_c = "model.diffusion_model.out.2.bias", "first_stage_model.decoder.conv_out.bias"
    del b[missing_b], c[missing_c]
    save_file(b, str(folder / "b-partial.safetensors"))
    save_file(c, str(folder / "c-partial.safetensors"))
    try:
        result = run(
            folder,
            out_dir=out,
            secondary="b-partial.safetensors",
            tertiary="c-partial.safetensors",
            method=ADD_DIFFERENCE,
            multiplier=0.5,
        )
        assert result.path.name == "a + 0.5(b-partial - c-partial).safetensors"
        a, merged = sd(folder / "a.safetensors"), sd(result.path)
        for key in a:
            if key in (POSITION_IDS, missing_b, missing_c):
                assert torch.equal(merged[key], a[key]), key
            else:
                assert torch.equal(merged[key], a[key] + 0.5 * (b[key] - c[key])), key
    finally:
        (folder / "b-partial.safetensors").unlink()
        (folder / "c-partial.safetensors").unlink()


def test_no_interpolation_as_float16_halves_the_file_and_never_overwrites_a(folder):
    before = hashlib.sha256((folder / "a.safetensors").read_bytes()).hexdigest()
    result = run(folder, method=NO_INTERPOLATION, secondary=None, save_as_half=True, save_metadata=False)
    try:
        # A1111 names it after A, which exists: ours gets a number instead of replacing A
        assert result.wanted == "a.safetensors" and result.path.name == "a-1.safetensors"
        assert result.taken_by == folder / "a.safetensors"
        assert hashlib.sha256((folder / "a.safetensors").read_bytes()).hexdigest() == before
        a, half = sd(folder / "a.safetensors"), sd(result.path)
        for key in a:
            if a[key].is_floating_point():
                assert half[key].dtype == torch.float16 and torch.equal(half[key], a[key].half()), key
            else:
                assert torch.equal(half[key], a[key])
        ratio = result.path.stat().st_size / (folder / "a.safetensors").stat().st_size
        assert 0.49 < ratio < 0.52
        assert load_sd_model(result.path, CPU32).variant == "base"
    finally:
        result.path.unlink()


def test_bake_in_vae_replaces_the_first_stage_weights(folder, out, tmp_path):
    vae = {k[len(VAE) :]: v for k, v in tiny_state_dict(seed=5).items() if k.startswith(VAE)}
    vae_file = tmp_path / "VAE" / "other.vae.safetensors"
    vae_file.parent.mkdir()
    save_file(vae, str(vae_file))  # the usual VAE file: names without the first_stage_model. prefix
    vaes = {"other.vae.safetensors": vae_file}
    result = run(folder, vaes, out_dir=out, method=NO_INTERPOLATION, bake_in_vae="other.vae.safetensors")
    a, baked = sd(folder / "a.safetensors"), sd(result.path)
    assert result.baked_vae_keys == len(vae)
    for key in a:
        expected = vae[key[len(VAE) :]] if key.startswith(VAE) else a[key]
        assert torch.equal(baked[key], expected), key

    with pytest.raises(InvalidRequestError, match=r"VAE 'nope' is not in the VAE list; choose None or one of: other"):
        run(folder, vaes, out_dir=out, method=NO_INTERPOLATION, bake_in_vae="nope")
    not_a_vae = tmp_path / "VAE" / "unet.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, str(not_a_vae))
    with pytest.raises(CheckpointError, match="not a VAE in the original"):
        run(
            folder,
            {"unet.safetensors": not_a_vae},
            out_dir=out,
            method=NO_INTERPOLATION,
            bake_in_vae="unet.safetensors",
        )


def test_discard_weights_with_matching_name(folder, out):
    result = run(folder, out_dir=out, method=NO_INTERPOLATION, discard_weights=r"^first_stage_model\.encoder\.")
    a, pruned = sd(folder / "a.safetensors"), sd(result.path)
    gone = {k for k in a if k.startswith("first_stage_model.encoder.")}
    assert gone and set(result.discarded_keys) == gone and pruned.keys() == a.keys() - gone

    with pytest.raises(InvalidRequestError, match=r"not a valid regular expression"):
        run(folder, out_dir=out, method=NO_INTERPOLATION, discard_weights="(")
    with pytest.raises(InvalidRequestError, match="matches every weight"):
        run(folder, out_dir=out, method=NO_INTERPOLATION, discard_weights=".")


def test_metadata_as_a1111_writes_it(folder, out):
    from sdui.models.hashes import calculate_sha256

    # B is itself a merge: its recipe and parents travel into the new file
    first = run(folder, out_dir=out, custom_name="ab", multiplier=0.5)
    parent = json.loads(_metadata(first.path)["sd_merge_models"])
    checkpoints = list_checkpoints([folder, out])  # "ab" is in out/
    request = MergeRequest(
        primary="c.safetensors",
        secondary="ab.safetensors",
        multiplier=0.25,
        metadata_json='{"modelspec.title": "my merge", "nested": {"x": 1}}',
        discard_weights="^nothing$",
    )
    result = merge_checkpoints(request, checkpoints, {}, out)
    meta = _metadata(result.path)
    assert meta["format"] == "pt" and meta["modelspec.title"] == "my merge" and json.loads(meta["nested"]) == {"x": 1}
    sha = {n: calculate_sha256(p) for n, p in (("c", folder / "c.safetensors"), ("ab", out / "ab.safetensors"))}
    recipe = json.loads(meta["sd_merge_recipe"])
    assert recipe == {
        "type": "webui",
        "primary_model_hash": sha["c"],
        "secondary_model_hash": sha["ab"],
        "tertiary_model_hash": None,
        "interp_method": "Weighted sum",
        "multiplier": 0.25,
        "save_as_half": False,
        "custom_name": "",
        "config_source": 0,
        "bake_in_vae": "None",
        "discard_weights": "^nothing$",
        "is_inpainting": False,
        "is_instruct_pix2pix": False,
    }
    models = json.loads(meta["sd_merge_models"])
    assert models[sha["c"]]["name"] == "c.safetensors" and models[sha["c"]]["sd_merge_recipe"] is None
    assert models[sha["ab"]]["name"] == "ab.safetensors"
    assert models[sha["ab"]]["sd_merge_recipe"]["multiplier"] == 0.5
    assert set(parent) <= set(models)  # a and b, through ab
    assert len(models) == 4

    # off: nothing but what safetensors needs; a .ckpt has no metadata at all
    bare = run(folder, out_dir=out, custom_name="bare", save_metadata=False)
    assert _metadata(bare.path) == {}
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        run(folder, out_dir=out, metadata_json="{oops")
    with pytest.raises(InvalidRequestError, match="must be an object"):
        run(folder, out_dir=out, metadata_json="[1]")


def _metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


@pytest.mark.parametrize(
    "name, said",
    [
        ("../escape", "contains '/'"),
        ("sub/model", "contains '/'"),
        ("..\\escape", "contains '\\\\\\\\'"),
        ("/abs/path", "contains '/'"),
        (".hidden", "starts with '.'"),
        ("..", "starts with '.'"),
        ("a:b", "contains ':'"),
        ("bad\nname", "contains '\\\\n'"),
        ("CON", "reserved device name"),
        ("x" * 201, "too long"),
    ],
)
def test_custom_names_that_leave_the_folder_are_refused(folder, tmp_path, name, said):
    out = tmp_path / "deep" / "out"
    with pytest.raises(InvalidRequestError, match=said):
        run(folder, out_dir=out, custom_name=name)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written, in the folder or beside it


def test_custom_name_ckpt_format_and_a_ckpt_input(folder, out, tmp_path):
    # A as .ckpt (read with torch.load(weights_only=True)), the result as .ckpt: our loader reads it back
    ckpt_folder = tmp_path / "ckpts"
    build_tiny_checkpoint(ckpt_folder / "old.ckpt", fmt="ckpt", seed=1)
    (ckpt_folder / "b.safetensors").write_bytes((folder / "b.safetensors").read_bytes())
    result = run(
        ckpt_folder,
        out_dir=out,
        primary="old.ckpt",
        custom_name="  my model.safetensors ",
        checkpoint_format="ckpt",
        multiplier=0.6,
    )
    assert result.path.name == "my model.ckpt"
    a, b, merged = sd(folder / "a.safetensors"), sd(folder / "b.safetensors"), sd(result.path)
    assert torch.equal(merged[UNET_IN], 0.4 * a[UNET_IN] + 0.6 * b[UNET_IN])
    again = run(ckpt_folder, out_dir=out, primary="old.ckpt", custom_name="my model", checkpoint_format="ckpt")
    assert again.path.name == "my model-1.ckpt" and result.path.is_file()


def test_the_inpainting_conv_in_merges_its_first_four_channels(tmp_path, folder):
    ckpt = tmp_path / "ckpts"
    build_tiny_checkpoint(ckpt / "inpaint.safetensors", variant="inpaint", seed=1)
    (ckpt / "b.safetensors").write_bytes((folder / "b.safetensors").read_bytes())
    result = run(ckpt, primary="inpaint.safetensors", multiplier=0.5)
    assert result.path.name == "0.5(inpaint) + 0.5(b).inpainting.safetensors"
    a, b, merged = sd(ckpt / "inpaint.safetensors"), sd(ckpt / "b.safetensors"), sd(result.path)
    assert a[UNET_IN].shape[1] == 9 and merged[UNET_IN].shape == a[UNET_IN].shape
    assert torch.equal(merged[UNET_IN][:, :4], 0.5 * a[UNET_IN][:, :4] + 0.5 * b[UNET_IN])
    assert torch.equal(merged[UNET_IN][:, 4:], a[UNET_IN][:, 4:])
    assert json.loads(_metadata(result.path)["sd_merge_recipe"])["is_inpainting"] is True
    assert load_sd_model(result.path, CPU32).variant == "inpaint"

    with pytest.raises(CheckpointError, match=r"A must be the inpainting model \(" + re.escape(UNET_IN)):
        run(ckpt, primary="b.safetensors", secondary="inpaint.safetensors")


def test_other_shape_differences_and_architectures_are_refused(tmp_path, folder):
    ckpt = tmp_path / "ckpts"
    (ckpt).mkdir()
    (ckpt / "a.safetensors").write_bytes((folder / "a.safetensors").read_bytes())
    odd = tiny_state_dict(seed=2)
    key = "model.diffusion_model.out.2.weight"
    odd[key] = torch.zeros(4, 16, 3, 3)
    save_file(odd, str(ckpt / "odd.safetensors"))
    with pytest.raises(
        CheckpointError, match=rf"Cannot merge {re.escape(key)}: A has shape \(4, 32, 3, 3\), B \(4, 16"
    ):
        run(ckpt, secondary="odd.safetensors")
    build_tiny_checkpoint(ckpt / "sd2.safetensors", arch="sd2", seed=2)
    with pytest.raises(CheckpointError, match=r"different architectures: A \(a.safetensors\) is sd1, B \(sd2"):
        run(ckpt, secondary="sd2.safetensors")
    assert sorted(p.name for p in ckpt.iterdir()) == ["a.safetensors", "odd.safetensors", "sd2.safetensors"]


def test_old_sd1_text_encoder_names_merge_with_new_ones(tmp_path, folder):
    ckpt = tmp_path / "ckpts"
    ckpt.mkdir()
    (ckpt / "a.safetensors").write_bytes((folder / "a.safetensors").read_bytes())
    new = tiny_state_dict(seed=2)
    old = {
        k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
        for k, v in new.items()
    }
    save_file(old, str(ckpt / "old.safetensors"))
    merged = sd(run(ckpt, secondary="old.safetensors", multiplier=0.5).path)
    key = "cond_stage_model.transformer.text_model.final_layer_norm.weight"
    a = sd(ckpt / "a.safetensors")
    assert torch.equal(merged[key], 0.5 * a[key] + 0.5 * new[key])


def test_copy_config_from(tmp_path, folder):
    ckpt = tmp_path / "ckpts"
    ckpt.mkdir()
    for name in "ab":
        (ckpt / f"{name}.safetensors").write_bytes((folder / f"{name}.safetensors").read_bytes())
    (ckpt / "b.yaml").write_text("model: {}\n")
    result = run(ckpt, custom_name="with-config")  # "A, B or C": A has none, B has one
    assert result.config == (ckpt / "with-config.yaml").resolve() and result.config.read_text() == "model: {}\n"
    assert run(ckpt, custom_name="without", config_source=3).config is None
    assert not (ckpt / "without.yaml").exists()
    # a name whose .yaml exists is taken: the new checkpoint must not pick up a stranger's config
    (ckpt / "taken.yaml").write_text("x: 1\n")
    assert run(ckpt, custom_name="taken", config_source=3).path.name == "taken-1.safetensors"


def test_names_are_choices(folder, out):
    with pytest.raises(
        InvalidRequestError,
        match=r"Secondary model \(B\) 'nope' is not in the checkpoint list; "
        r"choose one of: a.safetensors, b.safetensors, c.safetensors",
    ):
        run(folder, out_dir=out, secondary="nope")
    with pytest.raises(InvalidRequestError, match=r"Choose the Tertiary model \(C\)"):
        run(folder, out_dir=out, method=ADD_DIFFERENCE)
    with pytest.raises(InvalidRequestError, match="between 0 and 1"):
        run(folder, out_dir=out, multiplier=1.5)
    with pytest.raises(InvalidRequestError, match="Unknown interpolation method"):
        run(folder, out_dir=out, method="Sigmoid")
    assert not out.exists()


@pytest.mark.parametrize(
    "dtypes",
    [
        (torch.float32,) * 3,
        (torch.float16,) * 3,
        (torch.float16, torch.float32, torch.float32),
        (torch.float32, torch.float16, torch.bfloat16),
    ],
)
def test_the_arithmetic_is_a1111s_rounding_for_rounding(dtypes):
    """In-place steps (fewer temporaries) give A1111's expressions bit for bit, promoted dtypes included."""
    g = torch.Generator().manual_seed(0)
    x, y, z = (torch.randn(64, 33, generator=g).to(dtype) for dtype in dtypes)
    for m in (0.0, 0.3, 0.55, 1.0):
        expected = (1 - m) * x + m * y
        got = weighted_sum(x, y, m)
        assert got.dtype == expected.dtype and torch.equal(got, expected)
        expected = x + m * (y - z)
        got = add_difference(x, y - z, m)
        assert got.dtype == expected.dtype and torch.equal(got, expected)
