"""Seeds and noise as A1111 makes them."""

from __future__ import annotations

import random

import pytest
import torch

from sdui.core import rng
from sdui.errors import InvalidRequestError

SHAPE = (4, 8, 12)  # (C, H, W) latent cells: a 96x64 image


def randn(seed, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_noise_for_a_seed_is_torch_cpu_randn():
    noise = rng.create_noise(SHAPE, [1234], source="CPU")
    assert noise.shape == (1, *SHAPE) and noise.dtype == torch.float32
    assert torch.equal(noise[0], randn(1234))


def test_batch_is_independent_draws_per_seed():
    noise = rng.create_noise(SHAPE, [7, 8, 9])
    for i, seed in enumerate((7, 8, 9)):
        assert torch.equal(noise[i], randn(seed))
    # an image does not depend on its neighbours
    assert torch.equal(rng.create_noise(SHAPE, [9])[0], noise[2])


def test_gpu_source_on_this_device_uses_a_device_generator():
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    noise = rng.create_noise(SHAPE, [5], source="GPU", device=device)
    want = torch.randn(SHAPE, generator=torch.Generator(device).manual_seed(5), device=device)
    assert noise.device.type == device.type and torch.equal(noise[0], want)


def test_cpu_source_moves_to_the_requested_device():
    noise = rng.create_noise(SHAPE, [5], source="CPU", device=torch.device("cpu"))
    assert torch.equal(noise[0], randn(5))


def test_unknown_source_is_refused():
    with pytest.raises(InvalidRequestError, match="Unknown random number source 'TPU'. Use one of: CPU, GPU, NV"):
        rng.create_noise(SHAPE, [1], source="TPU")


def test_variation_strength_zero_and_one():
    plain = rng.create_noise(SHAPE, [10, 11])
    assert torch.equal(rng.create_noise(SHAPE, [10, 11], [500, 501], 0.0), plain)
    full = rng.create_noise(SHAPE, [10, 11], [500, 501], 1.0)
    torch.testing.assert_close(full[0], randn(500), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full[1], randn(501), rtol=1e-5, atol=1e-5)
    half = rng.create_noise(SHAPE, [10], [500], 0.5)
    assert not torch.allclose(half[0], plain[0]) and not torch.allclose(half[0], randn(500))


def test_slerp_halfway_keeps_the_norm_of_unit_rows():
    low, high = randn(1, (3, 64)), randn(2, (3, 64))
    low = low / low.norm(dim=1, keepdim=True)
    high = high / high.norm(dim=1, keepdim=True)
    mid = rng.slerp(0.5, low, high)
    # on the unit sphere, half way keeps norm 1 (a straight average would be shorter: cos(omega/2))
    torch.testing.assert_close(mid.norm(dim=1), torch.ones(3), rtol=1e-5, atol=1e-5)
    dot = (low * high).sum(1)
    torch.testing.assert_close((mid * low).sum(1), torch.cos(torch.acos(dot) / 2), rtol=1e-5, atol=1e-5)
    lerp = (low + high) / 2
    assert bool((lerp.norm(dim=1) < 0.99).all())


def test_slerp_falls_back_to_lerp_when_parallel():
    low = randn(3, (2, 16))
    high = low * 1.0000001
    out = rng.slerp(0.25, low, high)
    torch.testing.assert_close(out, low * 0.75 + high * 0.25)
    assert torch.isfinite(out).all()


def test_slerp_of_noise_one_latent_row_high_stays_finite():
    """Found by the API fuzzer: an 8-pixel-high image has (C, 1, W) noise; along dim 1 every vector is one number,
    so low and high are exactly parallel or opposite, and A1111's formula divides by sin(pi) = 0."""
    low, high = randn(5, (4, 1, 16)), randn(6, (4, 1, 16))
    out = rng.slerp(0.3, low, high)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, low * 0.7 + high * 0.3)
    rows = rng.slerp(0.3, randn(5, (4, 2, 16)), randn(6, (4, 2, 16)))  # two rows: the spherical formula as before
    assert torch.isfinite(rows).all()


@pytest.mark.parametrize("old_hw", [(48, 64), (96, 128), (48, 128)])
def test_seed_resize_keeps_old_noise_in_the_centre(old_hw):
    old_h, old_w = old_hw  # pixels
    noise = rng.create_noise(SHAPE, [42], seed_resize_from_h=old_h, seed_resize_from_w=old_w)[0]
    old = randn(42, (4, old_h // 8, old_w // 8))
    H, W = SHAPE[1], SHAPE[2]
    h, w = old.shape[1], old.shape[2]
    # the overlap of both, centred on each
    oh, ow = min(h, H), min(w, W)
    ny, nx = (H - oh) // 2, (W - ow) // 2
    sy, sx = (h - oh) // 2, (w - ow) // 2
    assert torch.equal(noise[:, ny : ny + oh, nx : nx + ow], old[:, sy : sy + oh, sx : sx + ow])
    # outside the pasted region: the seed's own full-size noise
    full = randn(42)
    mask = torch.ones(SHAPE, dtype=torch.bool)
    mask[:, ny : ny + oh, nx : nx + ow] = False
    assert torch.equal(noise[mask], full[mask])


def test_seed_resize_with_variation_mixes_at_the_old_size():
    noise = rng.create_noise(SHAPE, [42], [7], 1.0, seed_resize_from_h=48, seed_resize_from_w=64)[0]
    torch.testing.assert_close(noise[:, 1:7, 2:10], randn(7, (4, 6, 8)), rtol=1e-5, atol=1e-5)


def test_generators_continue_the_image_stream():
    gens = rng.make_generators([3, 4], shape=SHAPE)
    for seed, g in zip((3, 4), gens, strict=False):
        stream = torch.Generator().manual_seed(seed)
        torch.randn(SHAPE, generator=stream)  # the initial noise
        assert torch.equal(torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=stream))


def test_generators_restart_for_eta_noise_seed_delta():
    gens = rng.make_generators([3 + 31337], skip_first=False)
    assert torch.equal(torch.randn(SHAPE, generator=gens[0]), randn(3 + 31337))
    with pytest.raises(ValueError, match="needs the latent shape"):
        rng.make_generators([3])


def test_diffusers_ancestral_noise_comes_from_the_image_generators():
    """What an ancestral step draws with generator=[...] is each image's next draw (per-image stream)."""
    from diffusers.utils.torch_utils import randn_tensor

    gens = rng.make_generators([3, 4], shape=SHAPE)
    drawn = randn_tensor((2, *SHAPE), generator=gens, dtype=torch.float32)
    for i, seed in enumerate((3, 4)):
        stream = torch.Generator().manual_seed(seed)
        torch.randn(SHAPE, generator=stream)
        assert torch.equal(drawn[i], torch.randn(SHAPE, generator=stream))


def test_fix_seed():
    random.seed(0)
    drawn = {rng.fix_seed(-1) for _ in range(200)} | {rng.fix_seed(None), rng.fix_seed(""), rng.fix_seed("x")}
    assert all(0 <= s < 4294967294 for s in drawn) and len(drawn) > 190
    assert max(drawn) > 2**31  # the whole range, not just 31 bits
    assert rng.fix_seed(5) == 5 and rng.fix_seed("17") == 17 and rng.fix_seed(2**40) == 2**40


def test_all_seeds_and_subseeds():
    assert rng.all_seeds(100, 0.0, 4) == [100, 101, 102, 103]
    assert rng.all_seeds(100, 0.3, 4) == [100, 100, 100, 100]  # variation: one seed, moving subseeds
    assert rng.all_subseeds(7, 3) == [7, 8, 9]
    assert rng.all_seeds([5, 9], 0.0, 2) == [5, 9] and rng.all_subseeds([1, 1], 2) == [1, 1]
