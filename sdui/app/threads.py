"""How many threads torch computes with on the CPU: the physical cores, not their hyper-threads (two threads on one
core share its vector units, so the second one mostly adds contention), unless the user says otherwise."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def choose_threads(requested: int | None, physical: int | None, logical: int | None, environ) -> tuple[int | None, str]:
    """(threads to set or None to leave torch's choice, why). `requested` is --threads (0 or None: automatic)."""
    if requested:
        return requested, f"--threads {requested}"
    for name in THREAD_VARIABLES:
        if environ.get(name):
            return None, f"{name}={environ[name]} (torch reads it itself)"
    if physical:
        detail = f", not the {logical} hyper-threads" if logical and logical > physical else ""
        return physical, f"the {physical} physical cores{detail}"
    return None, "torch's default (the core count is unknown)"


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op threads as chosen; returns the number in use."""
    import psutil
    import torch

    threads, why = choose_threads(
        requested, psutil.cpu_count(logical=False), psutil.cpu_count(logical=True), os.environ
    )
    if threads:
        torch.set_num_threads(threads)
    log.info("CPU threads: %d (%s)", torch.get_num_threads(), why)
    return torch.get_num_threads()
