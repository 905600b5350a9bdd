"""Device policy from A1111's flags: the dtypes per device, bfloat16 on CPUs with native bf16, and the reason the
start-up log gives."""

import logging
import sys
from pathlib import Path

import pytest
import torch

from sdui.devices import DevicePolicy, cpu_flags, detect_cpu_bf16, native_bf16, pick_precision, policy_from_flags
from tests.helpers import make_ctx

# /proc/cpuinfo and sysctl excerpts of real CPUs (the lines the detection reads, plus neighbours)
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ss ht syscall nx avx f16c avx2 avx512f avx512dq \
avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_fp16 \
amx_bf16 amx_tile amx_int8
bugs\t\t: spectre_v1 spectre_v2
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu vme de pse tsc msr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm avx f16c avx2 avx512f \
avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg
"""
SKYLAKE_SP = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu vme de pse tsc msr pae sse sse2 ht syscall nx avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop \
sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
"""
RASPBERRY_PI_4 = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
"""
APPLE_M2_SYSCTL = "hw.optional.arm.FEAT_FP16: 1\nhw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_I8MM: 1\n"
APPLE_M1_SYSCTL = "hw.optional.arm.FEAT_FP16: 1\nhw.optional.arm.FEAT_BF16: 0\nhw.optional.arm.FEAT_I8MM: 0\n"


@pytest.mark.parametrize(
    "description, feature",
    [
        (SAPPHIRE_RAPIDS, "AMX-BF16"),
        (ZEN4, "AVX512-BF16"),
        (SKYLAKE_SP, None),  # AVX-512 without bf16: oneDNN would emulate it, slower than float32
        (GRAVITON3, "Arm BF16"),
        (RASPBERRY_PI_4, None),
        (APPLE_M2_SYSCTL, "Arm BF16"),
        (APPLE_M1_SYSCTL, None),
        ("", None),
    ],
    ids=["sapphire-rapids", "zen4", "skylake", "graviton3", "rpi4", "apple-m2", "apple-m1", "empty"],
)
def test_native_bf16_from_the_cpus_description(description, feature):
    assert native_bf16(cpu_flags(description)) == feature


def test_torch_and_the_os_agree_on_this_cpu():
    """Detection reads torch's view of the CPU; on Linux the kernel's flags must say the same."""
    if not sys.platform.startswith("linux") or not torch.backends.mkldnn.is_available():
        pytest.skip("compares with /proc/cpuinfo, for a torch with oneDNN")
    assert detect_cpu_bf16() == native_bf16(cpu_flags(Path("/proc/cpuinfo").read_text()))


def test_precision_rules():
    f32, f16, bf16 = torch.float32, torch.float16, torch.bfloat16

    def dtypes(device, **kw):
        chosen = pick_precision(device, **kw)
        return chosen.dtype, chosen.vae_dtype

    # CUDA / MPS: float16 as A1111, with its flags
    assert dtypes("cuda") == (f16, f16)
    assert dtypes("cuda", no_half_vae=True) == (f16, f32)
    assert dtypes("cuda", no_half=True) == (f32, f32)
    assert dtypes("mps", precision="full") == (f32, f32)
    assert dtypes("cuda", cpu_bf16="AMX-BF16", cpu_precision="bf16") == (f16, f16)  # a CPU flag only
    # the CPU: bfloat16 only where it has native bf16
    assert dtypes("cpu") == (f32, f32)
    assert dtypes("cpu", cpu_bf16="AMX-BF16") == (bf16, bf16)
    assert dtypes("cpu", cpu_bf16="AVX512-BF16", no_half_vae=True) == (bf16, f32)
    assert dtypes("cpu", cpu_bf16="AMX-BF16", no_half=True) == (f32, f32)
    assert dtypes("cpu", cpu_bf16="AMX-BF16", precision="full") == (f32, f32)
    assert dtypes("cpu", cpu_bf16="AMX-BF16", cpu_precision="fp32") == (f32, f32)
    assert dtypes("cpu", cpu_precision="bf16") == (bf16, bf16)  # forced: runs, emulated
    assert dtypes("cpu", cpu_precision="bf16", no_half=True) == (f32, f32)  # A1111's flags win


def test_the_reason_says_why():
    assert pick_precision("cpu", cpu_bf16="AMX-BF16").reason == "bfloat16: the CPU has AMX-BF16"
    assert pick_precision("cpu").reason == "float32: no native bf16 on this CPU"
    assert pick_precision("cpu", no_half=True).reason == "float32: --no-half"
    assert pick_precision("cpu", cpu_bf16="AMX-BF16", no_half=True).reason == (
        "float32: --no-half; this CPU has AMX-BF16: drop --no-half for bfloat16, about twice as fast"
    )
    assert pick_precision("cpu", precision="full").reason == "float32: --precision full"
    assert pick_precision("cpu", cpu_bf16="Arm BF16", cpu_precision="fp32").reason == "float32: --cpu-precision fp32"
    assert pick_precision("cpu", cpu_precision="bf16").reason == (
        "bfloat16: --cpu-precision bf16 (no native bf16 on this CPU, so it is slow)"
    )
    assert pick_precision("cpu", cpu_bf16="AVX512-BF16", no_half_vae=True).reason == (
        "bfloat16: the CPU has AVX512-BF16; VAE float32: --no-half-vae"
    )
    assert pick_precision("cuda").reason == "float16: the CUDA default"
    policy = DevicePolicy(torch.device("cpu"), torch.bfloat16, torch.bfloat16, reason="bfloat16: the CPU has AMX-BF16")
    assert policy.describe() == (
        "device=cpu dtype=bfloat16 vae=bfloat16 attention=sdpa (bfloat16: the CPU has AMX-BF16)"
    )


def test_cpu_policy_follows_this_cpu_and_the_flags():
    feature = detect_cpu_bf16()
    policy = policy_from_flags(use_cpu=True)
    expected = torch.bfloat16 if feature else torch.float32
    assert (policy.device.type, policy.dtype, policy.vae_dtype, policy.attention) == ("cpu", expected, expected, "sdpa")
    assert policy.reason == (f"bfloat16: the CPU has {feature}" if feature else "float32: no native bf16 on this CPU")
    for flags in ({"no_half": True}, {"precision": "full"}, {"cpu_precision": "fp32"}):
        assert policy_from_flags(use_cpu=True, **flags).dtype == torch.float32, flags
    assert policy_from_flags(use_cpu=True, no_half_vae=True).vae_dtype == torch.float32


def test_start_up_log_says_which_path_runs_and_why(tmp_path, caplog):
    import webui

    feature = detect_cpu_bf16()
    ctx = make_ctx(tmp_path / "data", "--cpu-precision", "auto")
    with caplog.at_level(logging.INFO):
        webui.log_summary(ctx)
    why = f"(bfloat16: the CPU has {feature})" if feature else "(float32: no native bf16 on this CPU)"
    assert f"Device: {ctx.policy.describe()}" in caplog.text and why in caplog.text
    assert make_ctx(tmp_path / "d2", "--no-half").policy.reason.startswith("float32: --no-half")


def test_xformers_refused_off_cuda_with_a_reason(caplog):
    with caplog.at_level(logging.WARNING):
        policy = policy_from_flags(use_cpu=True, xformers=True)
    assert policy.attention == "sdpa"
    assert "--xformers ignored: xformers needs a CUDA GPU" in caplog.text
