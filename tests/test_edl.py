"""Error-driven learning data (unimumer.edl.marking, preprocess/make_error_data.py).

Real data: the official Uni-MuMER predictions (``tests/fixtures/reference/predictions/``, unchanged copies of
the official release's prediction files). Hand-checked examples cover each edit kind, merged adjacent edits,
edits at both ends, empty and all-wrong predictions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unimumer.cli import run_main
from unimumer.commands.error_data import main
from unimumer.edl.marking import (
    DELETED,
    ERROR_END,
    ERROR_START,
    Edit,
    align_edits,
    apply_corrections,
    build_error_find,
    build_error_fix,
    make_edl_records,
    mark,
    split_fix_output,
    write_edl_datasets,
)
from unimumer.errors import InputError
from unimumer.files import sharegpt_fields
from unimumer.paths import REPO_ROOT
from unimumer.tasks import TASKS

PRED_DIR = Path(__file__).resolve().parent / "fixtures" / "reference" / "predictions"
PRED_FILES = sorted(PRED_DIR.glob("*_pred.json"))
FIND_PREFIX = TASKS["error_find"].instruction + "\nExpression: "
FIX_PREFIX = TASKS["error_fix"].instruction + "\nMarked Expression: "


def _fix(gt: str, pred: str) -> tuple[str, list[str]]:
    """(marked expression, error_fix target lines) of a pair."""
    find = build_error_find(gt, pred)
    fix = build_error_fix(gt, pred)
    assert find is not None and fix is not None
    assert fix[0] == FIX_PREFIX + find[1]
    return find[1], fix[1].split("\n")


# --------------------------------------------------------------------------------------------------- hand-checked
@pytest.mark.parametrize(
    "gt, pred, marked, lines",
    [
        # replace of one token
        ("x ^ { 2 }", "x ^ { 3 }", f"x ^ {{ {ERROR_START} 3 {ERROR_END} }}", ["REPLACE: 3 -> 2"]),
        # delete: an extra token in the prediction
        ("a + b", "a + + b", f"a + {ERROR_START} + {ERROR_END} b", ["DELETE: +"]),
        # insert: a missing token
        ("\\frac { 1 } { 2 }", "\\frac { 1 } 2 }", f"\\frac {{ 1 }} {DELETED} 2 }}", ["INSERT: {"]),
        # multi-token replace (c o s -> \cos, as in the official CROHME 2023 predictions)
        ("\\cos ( x )", "c o s ( x )", f"{ERROR_START} c o s {ERROR_END} ( x )", ["REPLACE: c o s -> \\cos"]),
        # adjacent insert + replace are merged into one edit
        ("a + b = c", "a - b = d e", f"a {ERROR_START} - {ERROR_END} b = {ERROR_START} d e {ERROR_END}",
         ["REPLACE: - -> +", "REPLACE: d e -> c"]),
        # edits at both ends
        ("a b c d", "x b c", f"{ERROR_START} x {ERROR_END} b c {DELETED}", ["REPLACE: x -> a", "INSERT: d"]),
        ("b c", "a b c d", f"{ERROR_START} a {ERROR_END} b c {ERROR_START} d {ERROR_END}", ["DELETE: a", "DELETE: d"]),
        # an empty prediction: everything is missing
        ("a + b", "", DELETED, ["INSERT: a + b"]),
        # an all-wrong prediction: one replace of the whole sequence
        ("\\alpha + 1", "y z", f"{ERROR_START} y z {ERROR_END}", ["REPLACE: y z -> \\alpha + 1"]),
        # the arrow token inside a replaced span stays unambiguous
        ("a \\rightarrow b", "a - > b", f"a {ERROR_START} - > {ERROR_END} b", ["REPLACE: - > -> \\rightarrow"]),
    ],
)
def test_hand_checked_examples(gt, pred, marked, lines):
    got_marked, got_lines = _fix(gt, pred)
    assert got_marked == marked
    assert got_lines == [*lines, gt]  # gt last
    assert apply_corrections(got_marked, got_lines[:-1]) == gt
    assert apply_corrections(got_marked, "\n".join(got_lines)) == gt  # the whole error_fix target works too
    assert build_error_find(gt, pred)[0] == FIND_PREFIX + " ".join(pred.split())


def test_edit_objects_and_marking():
    gt, pred = "a + b = c".split(), "a - b = d e".split()
    edits = align_edits(gt, pred)
    assert edits == [
        Edit("replace", 1, 2, 1, 2, ("-",), ("+",)),
        Edit("replace", 4, 6, 4, 5, ("d", "e"), ("c",)),
    ]
    assert mark(pred, edits) == f"a {ERROR_START} - {ERROR_END} b = {ERROR_START} d e {ERROR_END}"
    assert align_edits(gt, gt) == []
    with pytest.raises(InputError):
        mark(["q"] * 6, edits)


def test_correct_and_whitespace_equal_predictions_yield_nothing():
    assert build_error_find("a + b", "a + b") is None
    assert build_error_fix("a  +\tb ", "a + b") is None


def test_registry_points_to_the_builders():
    assert TASKS["error_find"].builder() is build_error_find
    assert TASKS["error_fix"].builder() is build_error_fix


def test_bad_pairs_raise_input_error():
    with pytest.raises(InputError, match="empty"):
        build_error_find("", "a")
    with pytest.raises(InputError, match="marker"):
        build_error_fix("a b", f"a {DELETED} b")


@pytest.mark.parametrize(
    "marked, log, message",
    [
        (f"a {ERROR_START} b {ERROR_END}", [], "1 marked place"),
        (f"a {ERROR_START} b {ERROR_END}", ["REPLACE: c -> d"], "REPLACE: b ->"),
        (f"a {ERROR_START} b {ERROR_END}", ["DELETE: c"], "DELETE does not name"),
        (f"a {ERROR_START} b {ERROR_END}", ["INSERT: c"], "REPLACE or DELETE"),
        (f"a {DELETED}", ["DELETE: a"], "INSERT"),
        (f"a {ERROR_START} b", ["DELETE: b"], "has no"),
        (f"a {ERROR_END}", ["DELETE: a"], "without"),
    ],
)
def test_apply_corrections_rejects_inconsistent_logs(marked, log, message):
    with pytest.raises(InputError, match=message):
        apply_corrections(marked, log)


def test_split_fix_output_reads_a_model_output():
    log, latex = split_fix_output("REPLACE: 1 -> n\n\nINSERT: +\n( n + 1 )\n")
    assert log == ["REPLACE: 1 -> n", "INSERT: +"]
    assert latex == "( n + 1 )"
    assert TASKS["error_fix"].extract_answer("REPLACE: 1 -> n\n( n )") == "( n )"


_tok = st.sampled_from(["a", "b", "x", "1", "+", "-", "{", "}", "^", "_", "\\frac", "->"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_tok, min_size=1, max_size=12), st.lists(_tok, max_size=12))
def test_inverse_property_on_random_pairs(gt_tokens, pred_tokens):
    gt, pred = " ".join(gt_tokens), " ".join(pred_tokens)
    fix = build_error_fix(gt, pred)
    if gt_tokens == pred_tokens:
        assert fix is None
        return
    marked = build_error_find(gt, pred)[1]
    log, last = split_fix_output(fix[1])
    assert last == gt
    assert apply_corrections(marked, log) == gt
    # the markup only wraps or points into the prediction: removing it gives the prediction back
    plain = [t for t in marked.split() if t not in (ERROR_START, ERROR_END, DELETED)]
    assert plain == pred_tokens
    # merged edits never touch each other
    edits = align_edits(gt_tokens, pred_tokens)
    for left, right in zip(edits, edits[1:], strict=False):
        assert left.pred_end < right.pred_start or left.gt_end < right.gt_start


# --------------------------------------------------------------------------------------------------- official data
@pytest.fixture(scope="module")
def official_records():
    assert len(PRED_FILES) == 5, f"expected the 5 official prediction files in {PRED_DIR}"
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in PRED_FILES}


def test_every_wrong_official_prediction_gives_one_record_and_inverts(official_records):
    total_wrong = 0
    for name, recs in official_records.items():
        wrong = {(r["image_path"], tuple(r["pred"].split())): r for r in recs if r["gt"].split() != r["pred"].split()}
        total_wrong += len(wrong)
        find, fix, stats = make_edl_records((f"{name} {i}", r) for i, r in enumerate(recs))
        assert stats.records_in == len(recs)
        assert stats.wrong == len(wrong) == stats.written == len(find) == len(fix) > 100
        assert stats.duplicates == 0 and stats.skipped == 0
        assert stats.correct == len(recs) - len(wrong)
        for f_rec, x_rec in zip(find, fix, strict=True):
            image, f_prompt, marked = sharegpt_fields(f_rec)
            image2, x_prompt, target = sharegpt_fields(x_rec)
            assert image == image2
            assert f_prompt.startswith(FIND_PREFIX) and x_prompt == FIX_PREFIX + marked
            pred_tokens = f_prompt[len(FIND_PREFIX):].split()
            src = wrong.pop((image, tuple(pred_tokens)))  # exactly one record per wrong prediction
            lines = target.split("\n")
            assert lines[-1] == src["gt"]
            assert apply_corrections(marked, lines[:-1]) == src["gt"]
            assert all(ln.startswith(("REPLACE: ", "DELETE: ", "INSERT: ")) for ln in lines[:-1])
        assert not wrong
    assert total_wrong == 2393


def test_cli_on_all_official_files(tmp_path, capsys):
    info = tmp_path / "data" / "dataset_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"crohme_train": {"file_name": "keep.json"}}))
    out = tmp_path / "data" / "edl"
    argv = ["--input", *map(str, PRED_FILES), "--output-dir", str(out), "--name", "crohme_test",
            "--dataset-info", str(info)]
    assert run_main(main, argv) == 0
    printed = capsys.readouterr().out
    # crohme2023_test and crohme2023_test_normalized share 448 (image, pred) pairs
    assert "records in 7284, correct 4891, wrong 2393, duplicates 448, skipped 0, written 1945" in printed
    find = json.loads((out / "crohme_test_error_find.json").read_text(encoding="utf-8"))
    fix = json.loads((out / "crohme_test_error_fix.json").read_text(encoding="utf-8"))
    assert len(find) == len(fix) == 1945
    keys = {(r["images"][0], sharegpt_fields(r)[1]) for r in find}
    assert len(keys) == 1945
    registered = json.loads(info.read_text())
    assert registered["crohme_train"] == {"file_name": "keep.json"}
    assert registered["crohme_test_error_find"]["file_name"] == "edl/crohme_test_error_find.json"
    assert registered["crohme_test_error_fix"] == {
        "file_name": "edl/crohme_test_error_fix.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"}}
    # released-file layout: ensure_ascii=False, indent 4
    assert (out / "crohme_test_error_fix.json").read_text(encoding="utf-8").startswith('[\n    {\n        "images"')


def test_official_name_exception(tmp_path):
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps([{"gt": "a", "pred": "b", "image_path": "i.png"}]))
    paths, stats = write_edl_datasets([pred], tmp_path, "hme100k_train", tmp_path / "dataset_info.json")
    assert paths["error_fix"].name == "hme100k_error_fix.json"
    assert set(json.loads((tmp_path / "dataset_info.json").read_text())) == {"hme100k_error_find", "hme100k_error_fix"}


def test_empty_and_all_wrong_predictions_in_a_file(tmp_path):
    recs = [
        {"gt": "a + b", "pred": "", "image_path": "x.png"},
        {"gt": "a + b", "pred": "q r s t", "image_path": "y.png"},
        {"gt": "a + b", "pred": "q r s t", "image_path": "y.png"},  # duplicate
        {"gt": "a + b", "pred": "q r s t", "image_path": "z.png"},  # same pred, other image: kept
        {"gt": "a + b", "pred": "a + b", "image_path": "w.png"},  # correct
        {"gt": "", "pred": "a", "image_path": "v.png"},  # empty gt: skipped
    ]
    find, fix, stats = make_edl_records((str(i), r) for i, r in enumerate(recs))
    assert (stats.records_in, stats.correct, stats.wrong, stats.duplicates, stats.skipped, stats.written) == (
        6, 1, 5, 1, 1, 3)
    span = f"{ERROR_START} q r s t {ERROR_END}"
    assert [sharegpt_fields(r)[2] for r in find] == [DELETED, span, span]
    assert [r["images"][0] for r in fix] == ["x.png", "y.png", "z.png"]
    assert sharegpt_fields(fix[0])[2] == "INSERT: a + b\na + b"
    assert sharegpt_fields(fix[1])[2] == "REPLACE: q r s t -> a + b\na + b"


def test_records_with_an_error_never_become_edl_examples():
    # inference writes pred "" and an "error" key when the image could not be read: not a real prediction
    recs = [
        {"gt": "a + b", "pred": "", "image_path": "x.png", "error": "image not found"},
        {"gt": "a + b", "pred": "a - b", "image_path": "y.png", "error": "engine error"},
        {"gt": "a + b", "pred": "a - b", "image_path": "z.png", "error": ""},  # empty error: a real prediction
    ]
    find, fix, stats = make_edl_records((str(i), r) for i, r in enumerate(recs))
    assert (stats.records_in, stats.failed, stats.wrong, stats.written) == (3, 2, 1, 1)
    assert [r["images"][0] for r in find] == ["z.png"] and [r["images"][0] for r in fix] == ["z.png"]
    assert "failed predictions (records with an error) 2" in stats.summary()


@pytest.mark.parametrize(
    "content, message",
    [
        ("[{\"gt\": \"a\", \"pred\": \"b\"}]", "missing key 'image_path'"),
        ("[{\"gt\": \"a\", \"pred\": 3, \"image_path\": \"i\"}]", "'pred' must be a string"),
        ("{\"gt\": 1}", "expected a JSON array"),
        ("[1]", "expected a JSON object"),
        ("[{", "not valid JSON"),
    ],
)
def test_cli_bad_input_exits_2_without_writing(tmp_path, capsys, content, message):
    bad = tmp_path / "bad_pred.json"
    bad.write_text(content)
    out = tmp_path / "out"
    code = run_main(main, ["--input", str(bad), "--output-dir", str(out), "--name", "n", "--no-register"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_script_help_and_error_exit():
    script = REPO_ROOT / "preprocess" / "make_error_data.py"
    help_out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True)
    for word in ("--input", "--output-dir", "--name", "--dataset-info", "REPLACE", "<deleted>", "exits 2"):
        assert word in help_out.stdout
    res = subprocess.run([sys.executable, str(script), "--input", str(Path("/nonexistent/p.json")),
                          "--output-dir", "/nonexistent/out", "--name", "n", "--no-register"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: /nonexistent/p.json: file not found"
