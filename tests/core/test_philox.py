"""The "NV" random source: Philox4x32-10 against Random123's known answers, and the normal draws of torch's CUDA
generator for seed 0 (what an A1111 user with an NVIDIA card and RNG "NV" gets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdui.core import rng
from sdui.core.philox import PhiloxGenerator, philox4x32


@pytest.mark.parametrize(
    "counter,key,expected",
    [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ],
)
def test_philox4x32_10_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, np.uint32)[:, None], np.array(key, np.uint32)[:, None])
    assert out[:, 0].tolist() == expected


def test_seed_0_gives_torch_cudas_first_normals():
    # torch.randn((3, 4), generator=torch.Generator("cuda").manual_seed(0), device="cuda")[0]
    first = PhiloxGenerator(0).randn((3, 4))
    np.testing.assert_allclose(first[0], [-0.92466259, -0.42534415, -2.6438457, 0.14518388], atol=1e-6)
    assert first.dtype == np.float32 and first.shape == (3, 4)


def test_each_call_continues_the_stream_and_seeds_differ():
    g = PhiloxGenerator(7)
    a, b = g.randn((16,)), g.randn((16,))
    assert not np.array_equal(a, b)
    assert np.array_equal(PhiloxGenerator(7).randn((16,)), a)
    assert not np.array_equal(PhiloxGenerator(8).randn((16,)), a)
    big = PhiloxGenerator(1).randn((4, 64, 64))
    assert abs(float(big.mean())) < 0.03 and abs(float(big.std()) - 1) < 0.03


def test_nv_source_in_initial_noise_and_sampler_noise():
    noise = rng.create_noise((4, 3, 3), [0, 5], source="NV")
    assert torch.equal(noise[0], torch.from_numpy(PhiloxGenerator(0).randn((4, 3, 3))))
    later = rng.ImageNoise([5], (4, 3, 3), source="NV")()
    g = PhiloxGenerator(5)
    g.randn((4, 3, 3))  # the initial noise
    assert torch.equal(later[0], torch.from_numpy(g.randn((4, 3, 3))))
