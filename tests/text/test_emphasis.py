"""parse_prompt_attention against results A1111 v1.10.1 gives for the same text."""

import pytest

from sdui.text.emphasis import parse_prompt_attention

A1111_RESULTS = [
    ("normal text", [["normal text", 1.0]]),
    ("", [["", 1.0]]),
    ("a (b:1.5) c", [["a ", 1.0], ["b", 1.5], [" c", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\)", [["(literal)", 1.0]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("[a] ((b))", [["a", 1 / 1.1], [" ", 1.0], ["b", 1.1 * 1.1]]),
    ("a BREAK b", [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ["a ", 1.0],
            ["house", 1.5730000000000004],
            [" ", 1.1],
            ["on", 1.0],
            [" a ", 1.1],
            ["hill", 0.55],
            [", sun, ", 1.1],
            ["sky", 1.4641000000000006],
            [".", 1.1],
        ],
    ),
    ("((x))", [["x", 1.2100000000000002]]),
    ("[[x]]", [["x", (1 / 1.1) * (1 / 1.1)]]),
    ("(x:0.5)", [["x", 0.5]]),
    ("(x: 1.25 )", [["x", 1.25]]),
    ("(x:-1)", [["x", -1.0]]),
    ("((x:2))", [["x", 2.2]]),
    ("(a (b:2) c)", [["a ", 1.1], ["b", 2.2], [" c", 1.1]]),
    ("x:1.5) y", [["x:1.5) y", 1.0]]),  # a weight with no open bracket is text
    ("a) b] c", [["a) b] c", 1.0]]),  # closing brackets with nothing open are text
    ("a:b", [["a:b", 1.0]]),
    ("\\\\ back", [["\\ back", 1.0]]),
    ("a\\b", [["ab", 1.0]]),  # a lone backslash disappears
    ("(\\(x\\))", [["(x)", 1.1]]),
    ("[a", [["a", 1 / 1.1]]),
    ("a BREAK", [["a", 1.0], ["BREAK", -1.0], ["", 1.0]]),
    ("BREAK b", [["", 1.0], ["BREAK", -1.0], ["b", 1.0]]),
    ("a BREAK BREAK b", [["a", 1.0], ["BREAK", -1.0], ["", 1.0], ["BREAK", -1.0], ["b", 1.0]]),
    ("a,BREAK,b", [["a,", 1.0], ["BREAK", -1.0], [",b", 1.0]]),
    ("aBREAK break BREAKS", [["aBREAK break BREAKS", 1.0]]),  # only the whole upper-case word
    ("a\nBREAK\nb", [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]),
    ("<lora:name:0.8> cat", [["<lora:name:0.8> cat", 1.0]]),
]


@pytest.mark.parametrize("text,expected", A1111_RESULTS)
def test_matches_a1111(text, expected):
    assert parse_prompt_attention(text) == expected


def test_break_inside_brackets_stays_a_break():
    # A1111 multiplies the marker's -1 and then tokenizes the word "break" with a negative weight; we keep the BREAK.
    assert parse_prompt_attention("(a BREAK b)") == [["a", 1.1], ["BREAK", -1.0], ["b", 1.1]]


def test_malformed_weight_is_literal_text():
    assert parse_prompt_attention("(a:1.2.3)") == [["a:1.2.3)", 1.1]]


def test_results_are_fresh_lists():
    first = parse_prompt_attention("x")
    first[0][0] = "changed"
    assert parse_prompt_attention("x") == [["x", 1.0]]
