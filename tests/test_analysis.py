"""Error analysis (scripts/analyze_errors.py, unimumer/evaluation/analysis/) on the official Uni-MuMER prediction files.

Independent references used here: ``editdistance`` (the official calculator's library) for token distances, the
official Tree-CoT outputs for depths, and McNemar p-values computed from the raw files with ``math`` only.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import editdistance
import pytest
from PIL import Image

from unimumer.commands.analyze import main
from unimumer.errors import InputError
from unimumer.evaluation.analysis.features import FAMILIES, load_prediction_file, token_operations, tree_depth
from unimumer.evaluation.analysis.statistics import analyze_records, confusion_score, mcnemar
from unimumer.evaluation.metrics.calculator import evaluate

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "reference"
SCRIPT = ROOT / "scripts" / "analyze_errors.py"
PAPER = [FIX / "paper_final" / f"crohme_{y}.json" for y in (2014, 2016, 2019)]
RELEASED = [FIX / "predictions" / f"crohme_{y}_pred.json" for y in (2014, 2016, 2019)] + [
    FIX / "predictions" / "crohme2023_test_pred.json"]


def _load(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def analyses() -> dict[Path, tuple[list, dict]]:
    return {p: (recs := _load(p), analyze_records(recs)) for p in PAPER + RELEASED}


# --------------------------------------------------------------------------------------------------- buckets
@pytest.mark.parametrize("path", PAPER + RELEASED, ids=lambda p: p.name)
def test_buckets_partition_and_recombine_to_the_calculator(analyses, path):
    records, an = analyses[path]
    official = evaluate(records)
    n = len(records)
    stats = official["error_threshold_stats"]
    assert an["records"] == n
    assert an["metrics"]["exact_match_rate"] == official["exact_match_rate"]
    for fam in ("gt_length", "depth", "repetition"):  # partitions
        rows = an["buckets"][fam]
        assert sum(r["n"] for r in rows) == n, fam
        assert sum(r["exact"] for r in rows) == stats["errors_le_0"]["count"], fam
        assert sum(r["le1"] for r in rows) == stats["errors_le_1"]["count"], fam
        assert sum(r["le2"] for r in rows) == stats["errors_le_2"]["count"], fam
        recombined = sum(r["n"] * r["exprate"] for r in rows if r["n"]) / n
        assert recombined == pytest.approx(official["exact_match_rate"], abs=1e-3), fam
        recombined_le2 = sum(r["n"] * r["error_le_2_rate"] for r in rows if r["n"]) / n
        assert recombined_le2 == pytest.approx(official["error_le_2_rate"], abs=1e-3), fam
    # structure kinds overlap; each equals an independent token test, "none of these" is the complement
    toks = [set(r["gt"].split()) for r in records]
    kinds = {r["bucket"]: r for r in an["buckets"]["structure"]}
    assert kinds["fraction"]["n"] == sum(1 for t in toks if t & {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac"})
    assert kinds["root"]["n"] == sum(1 for t in toks if "\\sqrt" in t)
    assert kinds["scripts"]["n"] == sum(1 for t in toks if "^" in t or "_" in t)
    assert kinds["matrix"]["n"] == sum(1 for t in toks if "\\begin" in t)
    assert kinds["big operator"]["n"] == sum(1 for t in toks if t & {"\\sum", "\\int", "\\lim", "\\prod",
                                                                       "\\iint", "\\oint", "\\coprod"})
    plain = [i for i, r in enumerate(records) if not (toks[i] & {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac", "\\sqrt",
             "^", "_", "\\begin", "\\sum", "\\int", "\\lim", "\\prod", "\\iint", "\\oint", "\\coprod"})]
    assert kinds["none of these"]["n"] == len(plain)
    assert kinds["none of these"]["exact"] == sum(1 for i in plain
                                                  if records[i]["gt"].split() == records[i]["pred"].split())


def test_length_and_repetition_buckets_match_direct_counts(analyses):
    records, an = analyses[PAPER[0]]
    lengths = [len(r["gt"].split()) for r in records]
    rows = {r["bucket"]: r for r in an["buckets"]["gt_length"]}
    assert rows["≤5"]["n"] == sum(1 for x in lengths if x <= 5)
    assert rows["21–30"]["n"] == sum(1 for x in lengths if 21 <= x <= 30)
    assert rows[">50"]["n"] == sum(1 for x in lengths if x > 50)

    def max_rep(gt: str) -> int:
        c = Counter(t for t in gt.split() if t not in "{}")
        return max(c.values(), default=0)

    reps = [max_rep(r["gt"]) for r in records]
    rows = {r["bucket"]: r for r in an["buckets"]["repetition"]}
    assert [rows[k]["n"] for k in ("1", "2–4", "≥5")] == [
        sum(1 for m in reps if m == 1), sum(1 for m in reps if 2 <= m <= 4), sum(1 for m in reps if m >= 5)]
    five = [i for i, m in enumerate(reps) if m >= 5]
    exact = sum(1 for i in five if records[i]["gt"].split() == records[i]["pred"].split())
    assert rows["≥5"]["exact"] == exact and rows["≥5"]["exprate"] == round(exact / len(five) * 100, 4)


def test_depth_is_the_official_tree_cot_depth(analyses):
    """Depth = deepest tab level of the official Tree-CoT output, for every CROHME 2014 gt."""
    tree = _load(FIX / "tree_cot" / "crohme_2014_tree.json")
    official: dict[str, int] = {}
    for rec in tree:
        lines = rec["messages"][1]["value"].split("\n")[:-1]  # tree lines, then the LaTeX
        latex = rec["messages"][1]["value"].split("\n")[-1]
        depth = max(len(ln) - len(ln.lstrip("\t")) for ln in lines)
        assert tree_depth(latex.split()) == depth, latex
        official[Path(rec["images"][0]).stem] = depth
    records, an = analyses[PAPER[0]]
    expected = Counter(min(official[r["img_id"]], 4) for r in records)
    rows = {r["bucket"]: r["n"] for r in an["buckets"]["depth"]}
    assert rows == {"0": expected[0], "1": expected[1], "2": expected[2], "3": expected[3], "≥4": expected[4]}
    assert tree_depth("a + b".split()) == 0
    assert tree_depth("\\frac { a ^ { 2 } } { b }".split()) == 2
    assert tree_depth("x ^ 2".split()) is None  # a script without "{" is the official parser's error


# --------------------------------------------------------------------------------------------------- confusions
@pytest.mark.parametrize("path", PAPER + RELEASED, ids=lambda p: p.name)
def test_alignment_errors_add_up_to_the_token_distance(analyses, path):
    records, an = analyses[path]
    total = sum(editdistance.eval(r["gt"].split(), r["pred"].split()) for r in records)
    et = an["edit_totals"]
    assert et["distance"] == total
    assert et["substitutions"] + et["insertions"] + et["deletions"] == total
    assert sum(c["count"] for c in an["confusions"]) == et["substitutions"]
    assert sum(c["count"] for c in an["insertions"]) == et["insertions"]
    assert sum(c["count"] for c in an["deletions"]) == et["deletions"]
    counts = [c["count"] for c in an["confusions"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1
    assert all(c["gt"] != c["pred"] for c in an["confusions"])


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.name)
def test_one_position_errors_give_exactly_that_substitution(analyses, path):
    """Every real record whose pred differs from its gt in exactly one token position contributes exactly
    (gt token → pred token): alone, and inside the file's counts."""
    records, an = analyses[path]
    singles = []
    for r in records:
        g, p = r["gt"].split(), r["pred"].split()
        if len(g) == len(p):
            diff = [i for i in range(len(g)) if g[i] != p[i]]
            if len(diff) == 1:
                singles.append((r, g[diff[0]], p[diff[0]]))
    assert len(singles) >= 50
    expected: Counter = Counter()
    for r, g_tok, p_tok in singles:
        one = analyze_records([r])
        assert one["confusions"] == [{"gt": g_tok, "pred": p_tok, "count": 1}], r["img_id"]
        assert one["insertions"] == [] and one["deletions"] == []
        expected[(g_tok, p_tok)] += 1
    file_counts = {(c["gt"], c["pred"]): c["count"] for c in an["confusions"]}
    assert all(file_counts[k] >= v for k, v in expected.items())


def test_insertions_and_deletions_follow_the_edl_alignment():
    gt = "\\frac { 1 } { 2 } + x ^ { 2 }".split()
    assert gt[7:9] == ["+", "x"]
    extra = gt[:8] + ["-"] + gt[8:]  # the model wrote a token too many
    missing = gt[:8] + gt[9:]        # the model dropped "x"
    swapped = gt[:7] + ["-"] + gt[8:]  # "+" read as "-"
    assert token_operations(gt, extra) == ([], ["-"], [])
    assert token_operations(gt, missing) == ([], [], ["x"])
    assert token_operations(gt, swapped) == ([("+", "-")], [], [])
    assert token_operations(gt, gt) == ([], [], [])


def test_letter_digit_confusion_score_definition():
    recs = [{"gt": "3 + z", "pred": "z + z"}, {"gt": "a 3", "pred": "a z"}, {"gt": "z", "pred": "3"},
            {"gt": "1 - n", "pred": "1 - 1"}, {"gt": "x", "pred": "X"}, {"gt": "\\alpha", "pred": "2"},
            {"gt": "y", "pred": "y"}, {"gt": "1 2", "pred": "l 2"}]
    an = analyze_records(recs)
    cs = an["confusion_score"]
    n = len(recs)
    assert [(p["pair"], p["count"]) for p in cs["pairs"]] == [("3↔z", 3), ("1↔l", 1), ("1↔n", 1)]
    assert cs["pairs"][0]["score"] == round(3 / n * 100, 4)
    assert cs["score"] == round(5 / n * 100, 4)  # top-5 sum (only 3 pairs exist)
    subs = Counter({(c["gt"], c["pred"]): c["count"] for c in an["confusions"]})
    assert confusion_score(subs, n, top_k=1)["score"] == round(3 / n * 100, 4)


# --------------------------------------------------------------------------------------------------- comparison
def test_file_against_itself_cli(tmp_path):
    out = tmp_path / "self"
    res = _cli("--input", str(PAPER[0]), "--compare", str(PAPER[0]), "--output-dir", str(out))
    assert res.returncode == 0, res.stderr
    comp = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["comparison"]
    assert comp["fixed"] == [] and comp["broken"] == []
    assert comp["mcnemar"]["p_value"] == 1.0
    assert comp["paired_records"] == 986
    assert all(r["diff"] == 0 for r in comp["confusions"])
    assert all(r["exprate_diff"] in (0, None) for fam in FAMILIES for r in comp["buckets"][fam])
    assert comp["confusion_score"]["diff"] == 0
    assert "Fixed by B: **0**, broken by B: **0**" in (out / "report.md").read_text(encoding="utf-8")


def test_pairing_is_by_img_id_not_by_position(tmp_path):
    shuffled = tmp_path / "reversed_pred.json"
    shuffled.write_text(json.dumps(_load(PAPER[1])[::-1]), encoding="utf-8")
    out = tmp_path / "rev"
    assert main(["--input", str(PAPER[1]), "--compare", str(shuffled), "--output-dir", str(out)]) == 0
    comp = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["comparison"]
    assert comp["fixed"] == [] and comp["broken"] == [] and comp["mcnemar"]["p_value"] == 1.0


def _independent_mcnemar(a_path: Path, b_path: Path) -> tuple[set, set, float, float]:
    a = {r["img_id"]: r["gt"].split() == r["pred"].split() for r in _load(a_path)}
    b = {r["img_id"]: r["gt"].split() == r["pred"].split() for r in _load(b_path)}
    fixed = {k for k in a if b[k] and not a[k]}
    broken = {k for k in a if a[k] and not b[k]}
    nb, nc = len(broken), len(fixed)
    chi2 = (abs(nb - nc) - 1) ** 2 / (nb + nc)
    p_chi2 = math.erfc(math.sqrt(chi2 / 2))  # chi-square survival function, 1 degree of freedom
    k, n = min(nb, nc), nb + nc
    p_exact = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return fixed, broken, p_chi2, p_exact


@pytest.mark.parametrize("year", [2014, 2016, 2019])
def test_two_real_files_mcnemar_matches_an_independent_computation(tmp_path, year):
    a_path, b_path = FIX / "paper_final" / f"crohme_{year}.json", FIX / "predictions" / f"crohme_{year}_pred.json"
    fixed, broken, p_chi2, p_exact = _independent_mcnemar(a_path, b_path)
    assert fixed and broken and len(fixed) + len(broken) >= 25  # auto → chi-square
    out = tmp_path / "cmp"
    assert main(["--input", str(a_path), "--compare", str(b_path), "--output-dir", str(out)]) == 0
    comp = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["comparison"]
    assert {r["img_id"] for r in comp["fixed"]} == fixed
    assert {r["img_id"] for r in comp["broken"]} == broken
    assert comp["mcnemar"]["test"].startswith("chi-square")
    assert comp["mcnemar"]["p_value"] == pytest.approx(p_chi2, rel=1e-9)
    a = evaluate(_load(a_path))["exact_match_rate"]
    b = evaluate(_load(b_path))["exact_match_rate"]
    assert comp["metrics"]["exact_match_rate"]["diff"] == round(b - a, 4)
    for item in comp["fixed"]:
        assert item["gt"].split() == item["pred_b"].split() != item["pred_a"].split()
    if year == 2014:
        out2 = tmp_path / "exact"
        assert main(["--input", str(a_path), "--compare", str(b_path), "--output-dir", str(out2),
                     "--mcnemar", "exact"]) == 0
        comp2 = json.loads((out2 / "analysis.json").read_text(encoding="utf-8"))["comparison"]
        assert comp2["mcnemar"]["p_value"] == pytest.approx(p_exact, rel=1e-9)


def test_mcnemar_small_counts_use_the_exact_test():
    r = mcnemar(0, 3)
    assert r["test"].startswith("exact") and r["p_value"] == pytest.approx(0.25)
    assert mcnemar(5, 5)["p_value"] == pytest.approx(1.0)
    assert mcnemar(0, 0)["p_value"] == 1.0


# --------------------------------------------------------------------------------------------------- CLI
def test_folder_input_plots_and_report(tmp_path):
    out = tmp_path / "pf"
    res = _cli("--input", str(FIX / "paper_final"), "--compare", str(FIX / "predictions"),
               "--output-dir", str(out), "--plot")
    assert res.returncode == 0, res.stderr
    for y in (2014, 2016, 2019):
        d = out / f"crohme_{y}"
        an = json.loads((d / "analysis.json").read_text(encoding="utf-8"))
        assert an["records"] == len(_load(FIX / "paper_final" / f"crohme_{y}.json"))
        assert an["comparison"]["against"].endswith(f"crohme_{y}_pred.json")
        for png in ("breakdowns.png", "confusions.png"):
            with Image.open(d / png) as im:
                assert im.format == "PNG" and im.size[0] > 400
        report = (d / "report.md").read_text(encoding="utf-8")
        assert "![breakdowns.png](breakdowns.png)" in report and "## Definitions" in report
        top = an["confusions"][0]
        assert f"| `{top['gt']}` | `{top['pred']}` | {top['count']} |" in report
    assert sorted(p.name for p in out.iterdir()) == ["crohme_2014", "crohme_2016", "crohme_2019"]


def test_report_states_the_definitions(tmp_path):
    # the definitions travel with every report (report.md); --help names the page that holds them
    res = _cli("--help")
    assert res.returncode == 0 and "docs/analysis.md" in res.stdout
    res = _cli("--input", str(PAPER[0]), "--output-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    definitions = " ".join(report.split("## Definitions", 1)[1].split())
    for phrase in ("Levenshtein.opcodes(pred, gt)", "per 100 records", "Tree-CoT", "symbol-counting",
                   "continuity correction", "fixed + broken < 25", "img_id", "insertions are extra pred tokens"):
        assert phrase in definitions, phrase
    assert (ROOT / "docs" / "analysis.md").is_file()


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    recs = _load(PAPER[0])
    (tmp / "notjson.json").write_text("{not json", encoding="utf-8")
    (tmp / "dict.json").write_text('{"gt": "x", "pred": "x"}', encoding="utf-8")
    (tmp / "nopred.json").write_text(json.dumps([{"gt": "x", "img_id": "a"}]), encoding="utf-8")
    (tmp / "fewer.json").write_text(json.dumps(recs[:-1]), encoding="utf-8")
    other_gt = [dict(r) for r in recs]
    other_gt[5]["gt"] = other_gt[5]["gt"] + " x"
    (tmp / "othergt.json").write_text(json.dumps(other_gt), encoding="utf-8")
    a = str(PAPER[0])
    return {
        "file not found": ["--input", str(tmp / "missing.json")],
        "not valid JSON": ["--input", str(tmp / "notjson.json")],
        "expected a JSON array": ["--input", str(tmp / "dict.json")],
        "has no 'pred' key": ["--input", str(tmp / "nopred.json")],
        "different img_ids": ["--input", a, "--compare", str(tmp / "fewer.json")],
        "the gt differs": ["--input", a, "--compare", str(tmp / "othergt.json")],
        "--length-edges": ["--input", a, "--length-edges", "10,5"],
        "--compare must be a file": ["--input", a, "--compare", str(FIX / "predictions")],
    }


def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
    for expected, args in _bad_inputs(tmp_path).items():
        out = tmp_path / "out"
        res = _cli(*args, "--output-dir", str(out))
        assert res.returncode == 2, (expected, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (expected, res.stderr)
        assert not out.exists(), expected


def test_load_prediction_file_keys_fall_back_to_the_image_stem(tmp_path):
    p = tmp_path / "x_pred.json"
    p.write_text(json.dumps([{"gt": "a", "pred": "a", "image_path": "./img/RIT_1.jpg"}]), encoding="utf-8")
    assert load_prediction_file(p).keys == ["RIT_1"]
    p.write_text(json.dumps([{"gt": "a", "pred": "a", "img_id": 3}]), encoding="utf-8")
    with pytest.raises(InputError, match="img_id"):
        load_prediction_file(p)
