"""A1111's prompt language over time: prompt editing, alternation, hires step counting and AND, with the results
A1111 documents for its own parser."""

from __future__ import annotations

import time

import pytest

from sdui.text.prompt_schedule import prompt_schedules, split_and


def schedule(prompt: str, steps: int = 10, hires_steps: int | None = None, old: bool = False):
    (found,) = prompt_schedules([prompt], steps, hires_steps, old)
    return [list(entry) for entry in found]


@pytest.mark.parametrize(
    "prompt,expected",
    [
        ("test", [[10, "test"]]),
        ("a [b:3]", [[3, "a "], [10, "a b"]]),
        ("a [b: 3]", [[3, "a "], [10, "a b"]]),
        ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
        ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
        ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
        ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
        ("a [unbalanced", [[10, "a [unbalanced"]]),
        ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
        ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
        ("[a|(b:1.1)]", [[i, "a" if i % 2 else "(b:1.1)"] for i in range(1, 11)]),
        ("[fe|]male", [[i, "female" if i % 2 else "male"] for i in range(1, 11)]),
        ("[fe|||]male", [[i, "female" if i % 4 == 1 else "male"] for i in range(1, 11)]),
        (r"\[a:b:2\] stays text", [[10, r"\[a:b:2\] stays text"]]),
        ("(a [b:c:0.5] d:1.2)", [[5, "(a b d:1.2)"], [10, "(a c d:1.2)"]]),
    ],
)
def test_schedules_as_a1111_documents_them(prompt, expected):
    assert schedule(prompt) == expected


def test_the_long_example_from_a1111s_wiki():
    prompt = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
        "[ in background:0.25] [shoddy:masterful:0.5]"
    )
    assert schedule(prompt, 100) == [
        [25, "fantasy landscape with a mountain and an oak in foreground shoddy"],
        [50, "fantasy landscape with a lake and an oak in foreground in background shoddy"],
        [60, "fantasy landscape with a lake and an oak in foreground in background masterful"],
        [75, "fantasy landscape with a lake and an oak in background masterful"],
        [100, "fantasy landscape with a lake and a christmas tree in background masterful"],
    ]


def test_editing_and_alternation_together():
    assert schedule("a [cat:dog:0.5] on a [red|blue] mat", 4) == [
        [1, "a cat on a red mat"],
        [2, "a cat on a blue mat"],
        [3, "a dog on a red mat"],
        [4, "a dog on a blue mat"],
    ]


def test_hires_pass_counts_on_from_the_first_pass():
    # 10 first-pass steps, 10 hires steps: a fraction < 1 or a step <= 10 is over before the hires pass
    assert schedule("a [b:.5] c", 10, 10) == [[10, "a b c"]]
    assert schedule("a [b:1.5] c", 10, 10) == [[5, "a  c"], [10, "a b c"]]
    assert schedule("a [b:c:25] [d:e:1.5] [f:g:5]", 20, 10) == [[5, "a b d g"], [10, "a c e g"]]


def test_old_scheduling_reads_every_number_below_one_as_a_fraction():
    assert schedule("a [b:c:0.5]", 10, old=True) == schedule("a [b:c:5]", 10)
    assert schedule("a [b:c:2.0]", 10, old=True) == [[2, "a b"], [10, "a c"]]
    assert schedule("a [b:c:2.0]", 10) == [[10, "a b"]]  # new scheduling: 2.0 is 200% of the steps


def test_each_distinct_prompt_is_parsed_once_and_kept_in_order():
    found = prompt_schedules(["[a|b]", "x", "[a|b]"], 2)
    assert found == [[(1, "a"), (2, "b")], [(2, "x")], [(1, "a"), (2, "b")]]
    assert found[0] is found[2]


def test_long_prompts_parse_quickly():
    prompt = ", ".join(f"(masterpiece:1.{i % 9}) [detail {i}:ultra {i}:0.{i % 9 + 1}] [a|b] [word]" for i in range(40))
    start = time.perf_counter()
    (found,) = prompt_schedules([prompt], 30)
    assert len(found) == 30 and time.perf_counter() - start < 5  # Earley's worst cases took minutes here


@pytest.mark.parametrize(
    "prompt,parts",
    [
        ("a cat", [("a cat", 1.0)]),
        ("a cat AND a dog :0.5", [("a cat", 1.0), (" a dog", 0.5)]),
        ("a cat:1.5", [("a cat", 1.5)]),  # A1111 reads a trailing weight even without AND
        ("a (cat:1.2)", [("a (cat:1.2)", 1.0)]),
        ("ANDROID AND x", [("ANDROID", 1.0), (" x", 1.0)]),
        ("a AND b : -0.5 AND c", [("a", 1.0), (" b", -0.5), (" c", 1.0)]),
    ],
)
def test_split_and(prompt, parts):
    assert split_and(prompt) == parts
