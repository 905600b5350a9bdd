"""CPU threads: the physical cores by default, --threads when given, the OpenMP/MKL variables when the user set
them; the choice says why."""

from __future__ import annotations

import pytest
import torch

from sdui.app.flags import parse_flags
from sdui.app.threads import apply_threads, choose_threads


@pytest.mark.parametrize(
    "requested, physical, logical, environ, expected, why",
    [
        (None, 8, 16, {}, 8, "the 8 physical cores, not the 16 hyper-threads"),
        (None, 4, 4, {}, 4, "the 4 physical cores"),
        (3, 8, 16, {}, 3, "--threads 3"),
        (3, 8, 16, {"OMP_NUM_THREADS": "2"}, 3, "--threads 3"),
        (None, 8, 16, {"OMP_NUM_THREADS": "2"}, None, "OMP_NUM_THREADS=2"),
        (None, None, None, {}, None, "torch's default"),
    ],
)
def test_choice(requested, physical, logical, environ, expected, why):
    threads, reason = choose_threads(requested, physical, logical, environ)
    assert threads == expected and reason.startswith(why)


def test_the_flag_is_checked_and_applied():
    before = torch.get_num_threads()
    try:
        assert apply_threads(parse_flags(["--threads", "1"], environ={}).threads) == 1
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "many", "-2"):
        with pytest.raises(SystemExit):
            parse_flags(["--threads", bad], environ={})
