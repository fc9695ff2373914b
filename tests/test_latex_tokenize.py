"""Tokenization of raw LaTeX on pylatexenc's lexer; already tokenized data is a fixed point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unimumer.latex.tokenize import LatexTokenizeError, tokenize_latex

FIX = Path(__file__).parent / "fixtures" / "reference"


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("\\frac{a}{b}", "\\frac { a } { b }"),
        ("x_i", "x _ { i }"),
        ("x^12", "x ^ { 1 } 2"),
        ("x^{12}", "x ^ { 1 2 }"),
        ("f^\\prime(x)", "f ^ { \\prime } ( x )"),
        ("\\begin{matrix}a&b\\\\c&d\\end{matrix}", "\\begin {matrix} a & b \\\\ c & d \\end {matrix}"),
        ("\\begin{array}{cc}1&2\\end{array}", "\\begin {array} { c c } 1 & 2 \\end {array}"),
        ("\\sqrt[3]{x}+\\left(\\alpha\\right)", "\\sqrt [ 3 ] { x } + \\left ( \\alpha \\right )"),
        ("$x^\\prime$ % comment", "x ^ { \\prime }"),
        ("a--b \\{a\\}", "a - - b \\{ a \\}"),
        ("\\mathbb{R}^n\\,x", "\\mathbb { R } ^ { n } \\, x"),
    ],
)
def test_raw_latex_is_space_tokenized(raw, tokens):
    assert tokenize_latex(raw) == tokens
    assert tokenize_latex(tokens) == tokens  # fixed point


def test_official_tokenized_sets_are_fixed_points():
    n = 0
    for name in ("crohme2023_test_input.json", "crohme_2014_input.json"):
        for rec in json.loads((FIX / "tree_cot" / name).read_text(encoding="utf-8")):
            latex = rec["messages"][1]["value"]
            assert tokenize_latex(latex) == " ".join(latex.split())
            n += 1
    assert n == 3286


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="\\{}[]^_ab1&$%~ \n", max_size=40))
def test_any_string_tokenizes_or_raises_the_documented_error(text):
    try:
        out = tokenize_latex(text)
    except LatexTokenizeError:
        return
    assert tokenize_latex(out) == out
