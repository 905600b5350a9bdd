"""The "NV" random number source: the normal noise NVIDIA's cuRAND gives with torch's CUDA generator, computed
on the CPU, so that a seed from an A1111 user with "NV" selected reproduces their image on any machine.

Philox4x32 with 10 rounds (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") keyed by the
seed, one counter per element (the call number, 0, the element index, 0), and a Box-Muller transform of the first
two outputs, with cuRAND's constants; each call moves on to the next call number.
"""

from __future__ import annotations

import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # the round multipliers
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # the key schedule's Weyl increments
_INV_2_32 = np.float32(2.3283064e-10)  # 1 / 2^32, as cuRAND spells it in float32
_INV_2_32_2PI = np.float32(2.3283064e-10 * 6.2831855)


def _mul_hi_lo(a: np.ndarray, m: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """The high and low 32 bits of the 64-bit products a * m."""
    product = a.astype(np.uint64) * m
    return (product >> np.uint64(32)).astype(np.uint32), (product & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Philox4x32 of `counter` (4, n) uint32 with `key` (2, n) uint32; returns the (4, n) outputs."""
    c0, c1, c2, c3 = (row.copy() for row in counter)
    k0, k1 = key[0].copy(), key[1].copy()
    for r in range(rounds):
        if r:
            k0, k1 = k0 + _W0, k1 + _W1
        hi0, lo0 = _mul_hi_lo(c0, _M0)
        hi1, lo1 = _mul_hi_lo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3])


def _box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    u = x * _INV_2_32 + _INV_2_32 / 2
    v = y * _INV_2_32_2PI + _INV_2_32_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """A seeded stream of standard normal draws, call after call, as torch's CUDA generator gives them."""

    def __init__(self, seed: int):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.offset = 0

    def randn(self, shape) -> np.ndarray:
        n = int(np.prod(shape))
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint32)
        self.offset += 1
        key = np.array([[self.seed & 0xFFFFFFFF], [self.seed >> 32]], dtype=np.uint32).repeat(n, axis=1)
        out = philox4x32(counter, key)
        return _box_muller(out[0], out[1]).reshape(tuple(shape))
