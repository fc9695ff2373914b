"""Canonical scoring (``unimumer.latex.canonical``, ``eval_metrics_calculator.py --canonicalize``).

Free-form answers built around real CROHME 2014 captions come back in the CROHME tokenisation; pairs that render
differently stay different; on the official CROHME predictions no record changes its verdict (the rules only
remove non-formula text and unify spellings the official predictions already share); without the option the
report is the official one (byte-identity is covered in tests/test_metrics.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.evaluation.metrics import evaluate, load_predictions
from unimumer.evaluation.metrics.run import canonical_results
from unimumer.latex.canonical import canonical_latex, extract_formula
from unimumer.latex.tokenize import tokenize_latex

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "data/sample/official_predictions"

# (free-form answer, CROHME tokenisation it must give)
ANSWERS = [
    ("The expression is $$\\dfrac{2AB}{A+B}$$.", "\\frac { 2 A B } { A + B }"),
    ("```latex\n\\frac{2AB}{A+B}\n```", "\\frac { 2 A B } { A + B }"),
    ("```\n\\tfrac{2AB}{A+B}\n```\nThis is a fraction.", "\\frac { 2 A B } { A + B }"),
    ("Sure! Here is the LaTeX: \\phi>0", "\\phi > 0"),
    ("\\(\\phi > 0\\)", "\\phi > 0"),
    ("\\[ x_{k}xx_k+y_kyx_k \\]", "x _ { k } x x _ { k } + y _ { k } y x _ { k }"),
    ("First $$a$$ then the final answer:\n$$\\sqrt{x^{2}+1}$$", "\\sqrt { x ^ { 2 } + 1 }"),
    ("where $x$ is real, the formula reads $\\sin x^2$", "\\sin x ^ { 2 }"),
    ("\\begin{equation}\\left( a+b \\right)^{2}\\end{equation}", "( a + b ) ^ { 2 }"),
    ("$$\\lbrace a \\rbrace \\ne \\emptyset$$", "\\{ a \\} \\neq \\emptyset"),
    ("$\\operatorname{log} x \\le 1$", "\\log x \\leq 1"),
    ("$\\displaystyle\\int_0^1 f(x)\\,dx$", "\\int _ { 0 } ^ { 1 } f ( x ) d x"),
    ("$x^{2}_{i}$", "x _ { i } ^ { 2 }"),
    ("$\\bigl| x \\bigr|$", "| x |"),
    ("$12$", "1 2"),
    ("\\frac { 2 A B } { A + B }", "\\frac { 2 A B } { A + B }"),  # already tokenised: unchanged
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_free_form_answers_give_the_crohme_tokenisation(answer, expected):
    assert canonical_latex(answer, extract=True) == expected
    assert canonical_latex(expected) == expected  # the gt side: a fixed point


# pairs that render differently: no rule may make them equal
DIFFERENT = [
    ("x^2", "x_2"),
    ("\\frac{a}{b}", "\\frac{b}{a}"),
    ("(a)", "[a]"),
    ("\\{a\\}", "{a}"),
    ("\\sin x", "s i n x"),
    ("\\sin x", "\\mathrm{sin} x"),
    ("\\frac{1}{2}", "1/2"),
    ("a \\leq b", "a < b"),
    ("\\ldots", "\\cdots"),
    ("x^{2}_{i}", "x_{2}^{i}"),
    ("\\sqrt{x}", "\\sqrt[3]{x}"),
    ("|x|", "x"),
    ("\\alpha", "a"),
    ("x'", "x"),
    ("\\cdot", "\\times"),
    ("\\langle a \\rangle", "< a >"),
    ("\\mathbf{x}", "x"),
    ("\\operatorname{foo} x", "\\foo x"),
    ("x_{12}", "x_{1}2"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_formulas_stay_different(a, b):
    assert canonical_latex(a, extract=True) != canonical_latex(b, extract=True)
    assert canonical_latex(f"${a}$", extract=True) != canonical_latex(f"${b}$", extract=True)


def test_extraction_keeps_plain_text_and_escaped_dollars():
    assert extract_formula("x ^ { 2 }") == "x ^ { 2 }"
    assert extract_formula("  a + b  \n") == "a + b"
    assert extract_formula("\\$ 5") == "\\$ 5"  # an escaped dollar is a symbol, not a delimiter
    assert extract_formula("f(x): x + 1") == "f(x): x + 1"  # one word before the colon is no prose label
    assert extract_formula("") == ""
    assert canonical_latex("{ x", extract=True) == "{ x"  # unlexable / unbalanced: kept, never raises


def test_official_predictions_keep_every_verdict():
    """On the released CROHME 2014 / 2016 / 2019 predictions (3,332 records, already in the gt's tokenisation)
    canonical scoring changes no record's exact-match verdict: the rules add no false positive here."""
    for year in (2014, 2016, 2019):
        records = load_predictions(OFFICIAL / f"crohme_{year}.json")
        for r in records:
            raw = r["gt"].split() == r["pred"].split()
            canon = canonical_latex(r["gt"]) == canonical_latex(r["pred"], extract=True)
            assert raw == canon, (year, r["gt"], r["pred"])
        assert canonical_results(records)["exact_match_rate"] == evaluate(records)["exact_match_rate"]


def test_crohme_captions_are_fixed_points(crohme_samples):
    for s in crohme_samples:
        assert canonical_latex(tokenize_latex(s.caption)) == canonical_latex(s.caption)
        assert canonical_latex(canonical_latex(s.caption)) == canonical_latex(s.caption)


def _calc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts/eval_metrics_calculator.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_reports_raw_and_canonical_side_by_side(tmp_path):
    recs = [
        {"gt": "\\frac { a } { b }", "pred": "The answer is $$\\dfrac{a}{b}$$"},
        {"gt": "x ^ { 2 }", "pred": "x ^ { 2 }"},
        {"gt": "x ^ { 2 }", "pred": "$x_2$"},
        {"gt": "( a )", "pred": "\\left( a \\right)"},
    ]
    path = tmp_path / "free_pred.json"
    path.write_text(json.dumps(recs), encoding="utf-8")
    plain = _calc("-i", str(path))
    canon = _calc("-i", str(path), "--canonicalize")
    assert plain.returncode == 0 and canon.returncode == 0, canon.stderr
    assert canon.stdout.startswith(plain.stdout)  # the official report, then one line
    extra = canon.stdout[len(plain.stdout):]
    assert extra == "  Canonical ExpRate:      75.0000% (raw 25.0000%; --canonicalize, docs/analysis.md)\n"
    js = json.loads(_calc("-i", str(path), "--canonicalize", "--json").stdout)
    assert js["exact_match_rate"] == 25.0 and js["exprate_canonical"] == 75.0
    assert js["canonical"]["total_samples"] == 4 and js["canonical"]["error_le_1_rate"] == 100.0
    assert "exprate_canonical" not in json.loads(_calc("-i", str(path), "--json").stdout)
    # report files: the canonical line is appended to the written report too
    out = tmp_path / "r.txt"
    assert _calc("-i", str(path), "--canonicalize", "-o", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8") == canon.stdout


def test_canonical_output_feeds_the_mcnemar_comparison(tmp_path):
    """The released CROHME 2014 predictions rewritten as a chatty VLM would answer score 0 raw and exactly the
    official ExpRate canonically; their canonical file compared with the official one's: nothing fixed or
    broken, McNemar p = 1."""
    official = load_predictions(OFFICIAL / "crohme_2014.json")
    chatty = [{**r, "pred": f"Sure! The formula in the image is:\n$$\n{r['pred']}\n$$"} for r in official]
    path = tmp_path / "chatty_pred.json"
    path.write_text(json.dumps(chatty), encoding="utf-8")
    js = json.loads(_calc("-i", str(path), "--canonicalize", "--json", "--canonical-output",
                          str(tmp_path / "b.json")).stdout)
    raw = evaluate(official)["exact_match_rate"]
    assert js["exact_match_rate"] == 0.0 and js["exprate_canonical"] == raw
    assert _calc("-i", str(OFFICIAL / "crohme_2014.json"), "--canonicalize", "--canonical-output",
                 str(tmp_path / "a.json")).returncode == 0
    b = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert b[0]["raw_pred"] == chatty[0]["pred"] and b[0]["img_id"] == official[0]["img_id"]
    res = subprocess.run([sys.executable, str(REPO / "scripts/analyze_errors.py"), "--input", str(tmp_path / "a.json"),
                          "--compare", str(tmp_path / "b.json"), "--output-dir", str(tmp_path / "cmp")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "fixed 0, broken 0, McNemar p = 1" in res.stdout


def test_canonical_output_needs_canonicalize(tmp_path):
    res = _calc("-i", str(OFFICIAL / "crohme_2014.json"), "--canonical-output", str(tmp_path / "c.json"))
    assert res.returncode == 2 and res.stderr.startswith("error: --canonical-output needs --canonicalize")
    assert not (tmp_path / "c.json").exists()
