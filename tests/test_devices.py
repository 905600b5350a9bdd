"""Device policy from A1111's flags, on this CPU-only machine."""

import logging

import torch

from sdui.devices import pick_dtypes, policy_from_flags


def test_cpu_runs_fp32_and_sdpa():
    policy = policy_from_flags(use_cpu=True)
    assert (policy.device.type, policy.dtype, policy.vae_dtype, policy.attention) == (
        "cpu",
        torch.float32,
        torch.float32,
        "sdpa",
    )


def test_xformers_refused_off_cuda_with_a_reason(caplog):
    with caplog.at_level(logging.WARNING):
        policy = policy_from_flags(use_cpu=True, xformers=True)
    assert policy.attention == "sdpa"
    assert "--xformers ignored: xformers needs a CUDA GPU" in caplog.text


def test_dtype_rules_per_device():
    half, full = torch.float16, torch.float32
    assert pick_dtypes("cuda") == (half, half)
    assert pick_dtypes("cuda", no_half_vae=True) == (half, full)
    assert pick_dtypes("cuda", no_half=True) == (full, full)
    assert pick_dtypes("mps", precision="full") == (full, full)
    assert pick_dtypes("cpu") == (full, full)
