"""Tree-CoT and symbol counting: byte-identical to the official outputs, iterative, robust on any token stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unimumer.latex.counting import build_count_target, parse_counts, symbol_counts
from unimumer.latex.reference import reference_tree
from unimumer.latex.tree import TreeParseError, build_tree_target, latex_to_tree, tree_lines
from unimumer.tasks import TASKS

REF = Path(__file__).parent / "fixtures" / "reference" / "tree_cot"


def _targets(name: str) -> list[str]:
    return [r["messages"][1]["value"] for r in json.loads((REF / name).read_text(encoding="utf-8"))]


def _convert(latexes, builder):
    out, skipped = [], 0
    for latex in latexes:
        try:
            out.append(builder(latex))
        except TreeParseError:
            skipped += 1
    return out, skipped


@pytest.mark.parametrize("stem", ["sample", "crohme_2014"])
def test_tree_and_counting_targets_match_the_official_outputs(stem):
    latexes = _targets(f"{stem}_input.json")
    trees, skipped = _convert(latexes, build_tree_target)
    assert skipped == 0
    assert trees == _targets(f"{stem}_tree.json")
    assert [build_count_target(x) for x in latexes] == _targets(f"{stem}_can.json")


def test_crohme2023_malformed_records_are_skipped_like_the_official_tool():
    latexes = _targets("crohme2023_test_input.json")
    trees, skipped = _convert(latexes, build_tree_target)
    assert (len(latexes), len(trees), skipped) == (2300, 2141, 159)
    assert trees == _targets("crohme2023_test_tree.json")


def test_registry_points_to_these_builders():
    assert TASKS["tree"].builder() is build_tree_target
    assert TASKS["can"].builder() is build_count_target


def test_spec_example_and_environment_layout():
    assert latex_to_tree("\\frac { a ^ { 2 } + 1 } { b }") == (
        "\\frac\n\ta (above)\n\t\t2 (sup)\n\t+ (right)\n\t1 (right)\n\tb (below)"
    )
    tree = latex_to_tree("\\begin {matrix} a \\\\ b \\end {matrix} c")
    assert tree.splitlines() == [
        "\\begin",
        "\ta (begin_matrix)",
        "\t\tb (nextline)",
        "\t\\end (end_matrix)",
        "c (right)",
    ]
    assert latex_to_tree("") == "" and build_tree_target("") == "\n"


def test_official_quirks_superscript_first_and_unclosed_group():
    # ^ {…} _ {…}: only the superscript attaches; `_ { i }` continue as ordinary siblings (braces included).
    assert latex_to_tree("x ^ { 2 } _ { i }").splitlines() == [
        "x", "\t2 (sup)", "_ (right)", "{ (right)", "i (right)", "} (right)"
    ]
    # Unclosed group: tokens [1:-1] of the rest become the group and nothing is consumed (content duplicated).
    assert latex_to_tree("x ^ { a b").splitlines() == ["x", "\ta (sup)", "{ (right)", "a (right)", "b (right)"]
    with pytest.raises(TreeParseError):
        latex_to_tree("x ^ 2")
    with pytest.raises(TreeParseError):
        latex_to_tree("\\frac { a } b")
    with pytest.raises(TreeParseError):
        latex_to_tree("\\begin {matrix} a")
    assert issubclass(TreeParseError, ValueError)


def test_long_and_deeply_nested_expressions_convert():
    flat = " ".join(["\\frac { a _ { i } } { b } +"] * 500)  # 5,500 tokens
    assert len(flat.split()) >= 5000
    lines = tree_lines(flat.split())
    assert len(lines) == 500 * 5 - 0
    deep = " ".join(["x ^ {"] * 2000) + " y " + " ".join(["}"] * 2000)  # nesting depth 2,000
    lines = latex_to_tree(deep).splitlines()
    assert len(lines) == 2001 and lines[-1] == "\t" * 2000 + "y (sup)"
    with pytest.raises(RecursionError):  # what the recursive (official-style) implementation does
        reference_tree(deep)


def test_unmatched_groups_expanding_beyond_the_node_budget_raise_the_parse_error():
    bomb = (" ".join(["x ^ {"] * 10) + " " + " ".join(["a"] * 15)).split()  # 45 tokens, 10 unclosed groups
    assert len(tree_lines(bomb, max_nodes=None)) == 12286  # the official duplication, reproduced
    with pytest.raises(TreeParseError, match="exceeds"):
        tree_lines(bomb, max_nodes=10_000)


_TOKENS = st.sampled_from(
    ["a", "1", "+", "{", "}", "[", "]", "^", "_", "\\frac", "\\sqrt", "\\sum", "\\hat", "\\begin", "\\end",
     "{matrix}", "{cases}", "matrix", "\\\\", "&", "\\int"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=16))
def test_random_token_streams_agree_with_the_recursive_reference(tokens):
    latex = " ".join(tokens)
    try:
        got = latex_to_tree(latex, max_nodes=200_000)
    except TreeParseError:
        got = TreeParseError
    try:
        want = reference_tree(latex)
    except TreeParseError:
        want = TreeParseError
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_TOKENS, st.text(st.characters(blacklist_categories=["Z", "C"]), min_size=1,
                                             max_size=4)), max_size=40))
def test_only_the_documented_parse_error_is_raised_and_counts_resplit(tokens):
    latex = " ".join(tokens)
    try:
        build_tree_target(latex)
    except TreeParseError:
        pass
    target = build_count_target(latex)
    counts_line, _, tail = target.partition("\n")
    assert tail == latex
    counts = parse_counts(counts_line)
    assert counts == symbol_counts(latex)
    expanded = [tok for tok, n in counts.items() for _ in range(n)]
    assert sorted(expanded) == sorted(t for t in latex.split() if t not in ("{", "}"))
