"""The official metrics calculator: byte-identical reports, NLTK/editdistance identity, edge cases, CLI errors.

Fixtures: tests/fixtures/reference/{predictions,paper_final}/ (official predictions and reports, see
tests/fixtures/README.md). Numbers checked by hand are derived in the comments.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import editdistance
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

from unimumer.commands.eval import main
from unimumer.errors import InputError
from unimumer.evaluation.metrics import (
    OFFICIAL_KEYS,
    corpus_bleu4,
    evaluate,
    format_report,
    load_predictions,
    token_distance,
)
from unimumer.evaluation.metrics.report import format_cdm_line
from unimumer.layout import stem_of

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "reference"
SCRIPT = ROOT / "scripts" / "eval_metrics_calculator.py"

PRED_FILES = sorted((FIX / "predictions").glob("*_pred.json")) + sorted((FIX / "paper_final").glob("*.json"))
CASES = [(p, p.parent / f"{stem_of(p)}_results.txt") for p in PRED_FILES]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, cwd=cwd, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


# --------------------------------------------------------------------------------------------------- reference
def test_fixture_set_is_complete():
    assert len(CASES) == 8
    assert all(txt.is_file() for _, txt in CASES)


@pytest.mark.parametrize("pred,txt", CASES, ids=[p.name for p, _ in CASES])
def test_report_is_byte_identical_to_official(pred, txt):
    assert format_report(evaluate(load_predictions(pred))).encode("utf-8") == txt.read_bytes()


# the official *_results.txt reports: records, ExpRate, <=1, <=2, BLEU-4, CER
REFERENCE = {
    "predictions/crohme_2014_pred.json": (986, 82.6572, 90.3651, 93.7120, 89.1164, 0.0396),
    "predictions/crohme_2016_pred.json": (1147, 78.9015, 88.7533, 93.1997, 94.1305, 0.0143),
    "predictions/crohme_2019_pred.json": (1199, 79.8165, 91.0759, 94.1618, 94.9684, 0.0123),
    "predictions/crohme2023_test_pred.json": (2300, 46.3478, 57.1304, 70.8696, 79.9772, 0.0514),
    "predictions/crohme2023_test_normalized_pred.json": (1652, 69.4915, 79.0557, 88.3777, 90.4988, 0.0267),
    "paper_final/crohme_2014.json": (986, 82.0487, 89.4523, 93.0020, 91.9221, 0.0273),
}


@pytest.mark.parametrize("rel", sorted(REFERENCE))
def test_json_metrics_match_spec_table(rel):
    r = evaluate(load_predictions(FIX / rel))
    assert tuple(r) == OFFICIAL_KEYS
    got = (r["total_samples"], r["exact_match_rate"], r["error_le_1_rate"], r["error_le_2_rate"],
           r["bleu4_score"], r["character_error_rate"])
    assert got == REFERENCE[rel]
    st_ = r["error_threshold_stats"]
    assert list(st_) == ["errors_le_0", "errors_le_1", "errors_le_2", "errors_le_3"]
    assert st_["errors_le_0"]["percentage"] == r["exact_match_rate"]


def test_paper_final_distance_field_equals_token_distance():
    # the released paper_final files carry the official per-record token distance
    for p in sorted((FIX / "paper_final").glob("*.json")):
        for rec in json.loads(p.read_text(encoding="utf-8")):
            assert token_distance(rec["gt"].split(), rec["pred"].split()) == rec["distance"]


@pytest.mark.parametrize("pred", PRED_FILES, ids=[p.name for p in PRED_FILES])
def test_bleu_and_distance_identical_to_official_libraries(pred):
    recs = json.loads(pred.read_text(encoding="utf-8"))
    g = [r["gt"].split() for r in recs]
    p = [r["pred"].split() for r in recs]
    official = corpus_bleu([[x] for x in g], p, weights=(0.25,) * 4, smoothing_function=SmoothingFunction().method4)
    assert corpus_bleu4(g, p) == official  # bit-identical float, not approx
    assert [token_distance(a, b) for a, b in zip(g, p, strict=True)] == [
        editdistance.eval(a, b) for a, b in zip(g, p, strict=True)
    ]


_tok = st.sampled_from(["x", "y", "^", "{", "}", "\\frac", "1", "2", "+", "解"])
_sent = st.lists(_tok, max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_sent, _sent), min_size=1, max_size=8))
def test_bleu_and_distance_identical_on_random_corpora(pairs):
    g = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    official = corpus_bleu([[x] for x in g], p, weights=(0.25,) * 4, smoothing_function=SmoothingFunction().method4)
    assert corpus_bleu4(g, p) == official
    for a, b in pairs:
        assert token_distance(a, b) == editdistance.eval(a, b)


# --------------------------------------------------------------------------------------------------- edge cases
def test_both_empty():
    r = evaluate([{"gt": "", "pred": ""}])
    # d = 0, both empty -> edit score 100; no gt characters -> CER 0.0; no hypothesis unigrams -> BLEU 0
    assert r["mean_edit_score"] == 100.0 and r["exact_match_rate"] == 100.0
    assert r["bleu4_score"] == 0 and r["character_error_rate"] == 0.0


def test_one_side_empty():
    r = evaluate([{"gt": "a b", "pred": ""}, {"gt": "", "pred": "x"}])
    # distances 2 and 1; edit scores 0 and 0; CER = (2 + 1) / (3 + 0) = 1.0; <=1: 1 of 2, <=2: 2 of 2
    assert r["mean_edit_score"] == 0.0 and r["exact_match_rate"] == 0.0
    assert r["error_le_1_rate"] == 50.0 and r["error_le_2_rate"] == 100.0
    assert r["character_error_rate"] == 1.0


def test_cjk_and_whitespace():
    recs = [
        {"gt": "解 方 程 x + 1 = 2", "pred": "解 方 程 x + 1 = 3"},
    ]
    r = evaluate(recs)
    # 8 tokens, 1 substitution: edit score (1 - 1/8) * 100 = 87.5; CER = 1 / 15 characters = 0.0667
    # BLEU: p1..p4 = 7/8, 6/7, 5/6, 4/5, BP = 1 -> (4/8) ** (1/4) = 0.840896... -> 84.0896
    assert r["mean_edit_score"] == 87.5
    assert r["character_error_rate"] == round(1 / 15, 4) == 0.0667
    assert r["bleu4_score"] == round(100 * 0.5 ** 0.25, 4) == 84.0896
    assert r["exact_match_rate"] == 0.0 and r["error_le_1_rate"] == 100.0
    # tokens are str.split(): tabs, newlines and repeated spaces do not matter, characters do (CER denominator)
    r2 = evaluate([{"gt": "a  b\t c\n", "pred": "a b c"}])
    assert r2["exact_match_rate"] == 100.0 and r2["character_error_rate"] == 0.0


def test_very_long_sequence():
    gt = " ".join(["a"] * 3000)
    pred = " ".join(["a"] * 2999)
    r = evaluate([{"gt": gt, "pred": pred}])
    # d = 1 -> edit score (1 - 1/3000) * 100 = 99.96667; all n-gram precisions are 1,
    # BP = exp(1 - 3000/2999) -> BLEU 100 * exp(-1/2999) = 99.96666...; CER = 1 / 5999 characters
    assert r["mean_edit_score"] == round((1 - 1 / 3000) * 100, 4) == 99.9667
    assert r["bleu4_score"] == round(100 * math.exp(1 - 3000 / 2999), 4) == 99.9667
    assert r["character_error_rate"] == round(1 / 5999, 4) == 0.0002
    assert r["error_le_1_rate"] == 100.0 and r["exact_match_rate"] == 0.0
    long_distinct = [f"t{i}" for i in range(20000)]
    assert token_distance(long_distinct, long_distinct[::-1]) == editdistance.eval(long_distinct, long_distinct[::-1])


def test_report_with_thousands_separator_and_cdm_line():
    recs = [{"gt": "x", "pred": "x"}] * 1234 + [{"gt": "x", "pred": "y"}]
    text = format_report(evaluate(recs))
    assert "  Total Samples: 1,235\n" in text
    assert "  Errors ≤ 0:  1,234 samples ( 99.92%)\n" in text
    assert text.startswith("\n" + "=" * 60 + "\n") and text.endswith("\n" + "=" * 60 + "\n")
    assert format_cdm_line(84.1234, 1640, 12) == "  ExpRate@CDM:            84.1234% (1,640 evaluated, 12 excluded)\n"


def test_custom_keys_and_api_errors():
    r = evaluate([{"label": "a b", "text": "a b"}], gt_key="label", pred_key="text")
    assert r["exact_match_rate"] == 100.0
    with pytest.raises(InputError, match="empty"):
        evaluate([])
    with pytest.raises(InputError, match="record 1 has no 'pred' key"):
        evaluate([{"gt": "a", "pred": "a"}, {"gt": "a"}])
    with pytest.raises(InputError, match="record 0: 'gt' must be a string, got null"):
        evaluate([{"gt": None, "pred": "a"}])


def test_metrics_do_not_import_torch():
    code = ("import sys; from unimumer.evaluation.metrics import evaluate; evaluate([{'gt': 'a', 'pred': 'b'}]); "
            "import unimumer.evaluation.metrics.summary, unimumer.evaluation.metrics.run; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'matplotlib', 'scipy', 'nltk')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------- CLI
def test_cli_stdout_output_and_directory_mode(tmp_path):
    pred, txt = CASES[0]
    proc = run_cli("--input", str(pred))
    assert proc.returncode == 0 and proc.stdout == txt.read_bytes()

    out = tmp_path / "r.txt"
    proc = run_cli("--input", str(pred), "--output", str(out))
    assert proc.returncode == 0 and out.read_bytes() == txt.read_bytes()

    # directory mode: every *_pred.json -> <stem>_results.txt beside it
    d = tmp_path / "results"
    d.mkdir()
    for p in (FIX / "predictions").glob("*_pred.json"):
        shutil.copy(p, d / p.name)
    proc = run_cli("--input", str(d))
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in d.glob("*_results.txt"))
    assert written == sorted(p.name for p in (FIX / "predictions").glob("*_results.txt"))
    for name in written:
        assert (d / name).read_bytes() == (FIX / "predictions" / name).read_bytes()
    assert proc.stdout.decode().count("ExpRate") == 5


def test_cli_output_dir_multi_input_and_json(tmp_path):
    papers = sorted((FIX / "paper_final").glob("*.json"))
    proc = run_cli("--input", *map(str, papers), "--output-dir", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data) == [str(p) for p in papers]
    assert data[str(papers[0])]["exact_match_rate"] == 82.0487
    for p in papers:  # paper_final naming: crohme_2014.json -> crohme_2014_results.txt
        name = f"{p.stem}_results.txt"
        assert (tmp_path / name).read_bytes() == (FIX / "paper_final" / name).read_bytes()

    # several inputs without files: each report on stdout under a header line
    proc = run_cli("--input", str(papers[0]), str(papers[1]))
    text = proc.stdout.decode()
    assert text.startswith(f"==> {papers[0]} <==\n") and f"==> {papers[1]} <==\n" in text
    assert (FIX / "paper_final" / "crohme_2016_results.txt").read_text(encoding="utf-8") in text

    # single --json: the official dict
    one = json.loads(run_cli("--input", str(papers[0]), "--json").stdout)
    assert tuple(one) == OFFICIAL_KEYS


def test_per_sample_in_process(tmp_path, capsys):
    pred = FIX / "paper_final" / "crohme_2014.json"
    out = tmp_path / "ps.jsonl"
    assert main(["--input", str(pred), "--per-sample", str(out), "--json"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    recs = json.loads(pred.read_text(encoding="utf-8"))
    assert len(rows) == 986
    assert [r["distance"] for r in rows] == [r["distance"] for r in recs]
    assert rows[0]["img_id"] == "514_em_341" and rows[0]["edit_score"] == 100.0
    assert json.loads(capsys.readouterr().out)["total_samples"] == 986


@pytest.mark.parametrize(
    "content,needles",
    [
        (None, ["file not found"]),
        ("{not json", ["not valid JSON"]),
        ('{"gt": "a", "pred": "a"}', ["expected a JSON array", "object"]),
        ("[]", ["empty"]),
        ('[{"gt": "a", "pred": "a"}, {"gt": "b"}]', ["record 1", "'pred'"]),
        ('[{"gt": "a", "pred": 3}]', ["record 0", "'pred' must be a string", "number"]),
        ('[["a", "b"]]', ["record 0 is not an object"]),
    ],
    ids=["missing", "not-json", "not-list", "empty", "missing-key", "non-string", "non-object"],
)
def test_cli_bad_input_one_line_exit_2_no_file(tmp_path, content, needles):
    src = tmp_path / "x_pred.json"
    if content is not None:
        src.write_text(content, encoding="utf-8")
    out = tmp_path / "x_results.txt"
    proc = run_cli("--input", str(src), "--output", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["x_pred.json"] if content is not None else [])


def test_cli_bad_file_in_directory_writes_nothing(tmp_path):
    shutil.copy(FIX / "predictions" / "crohme_2014_pred.json", tmp_path / "a_pred.json")
    (tmp_path / "b_pred.json").write_text('[{"gt": "a"}]', encoding="utf-8")
    proc = run_cli("--input", str(tmp_path))
    assert_one_line_error(proc, "b_pred.json", "record 0")
    assert not list(tmp_path.glob("*_results.txt"))


def test_cli_usage_errors(tmp_path):
    p = str(FIX / "paper_final" / "crohme_2014.json")
    assert_one_line_error(run_cli("--input", p, p, "--output", str(tmp_path / "o.txt")), "--output")
    assert_one_line_error(run_cli("--input", str(tmp_path)), "no *_pred.json")
    help_text = run_cli("--help").stdout.decode()
    for word in ("--input", "--output-dir", "--json", "--cdm", "directory mode", "exit code 2", "method4"):
        assert word in help_text


def test_cdm_reuses_an_up_to_date_cdm_json(tmp_path, capsys, monkeypatch):
    # --cdm in directory mode: an existing <stem>_cdm.json newer than the prediction file is reused (resume),
    # so this needs no renderer; the report is the official one plus one ExpRate@CDM line.
    src = FIX / "predictions" / "crohme_2014_pred.json"
    pred = tmp_path / src.name
    shutil.copy(src, pred)
    cdm = tmp_path / "crohme_2014_cdm.json"
    from unimumer.evaluation.cdm.render import (
        RENDER_VERSION,  # only a result of the current official-mode CDM is reused
    )

    toolkit = {"version": "2025-09", "commit": "5a2c80d9", "date": "2025-09-28"}  # ... of the same toolkit version
    settings = {"mode": "official", "render_version": RENDER_VERSION, "toolkit": toolkit}
    cdm.write_text(json.dumps({"exprate_cdm": 84.1234, "evaluated": 984, "excluded": ["a", "b"], "samples": [],
                               "settings": settings}), encoding="utf-8")
    st_pred = pred.stat()
    os.utime(cdm, (st_pred.st_atime + 10, st_pred.st_mtime + 10))
    assert main(["--input", str(tmp_path), "--cdm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exprate_cdm"] == 84.1234 and out["cdm_evaluated"] == 984 and out["cdm_excluded"] == 2
    assert out["cdm_f1"] is None  # no per-sample scores in this CDM file
    assert out["exact_match_rate"] == 82.6572
    report = (tmp_path / "crohme_2014_results.txt").read_text(encoding="utf-8")
    official = (FIX / "predictions" / "crohme_2014_results.txt").read_text(encoding="utf-8")
    assert report == official + "  ExpRate@CDM:            84.1234% (984 evaluated, 2 excluded; CDM toolkit 2025-09)\n"
    # another toolkit version is computed afresh, never taken from this file (here: no renderer -> error)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    monkeypatch.setenv("UNIMUMER_CDM_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(InputError, match="pdflatex"):
        main(["--input", str(tmp_path), "--cdm", "--cdm-toolkit", "2025-03", "--json"])
    assert main(["--input", str(tmp_path), "--cdm", "--cdm-toolkit", "2025-09", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exprate_cdm"] == 84.1234


def test_mean_cdm_f1_from_the_official_toolkits_per_sample_scores(tmp_path, capsys):
    # the official CDM toolkit's per-sample F1 on 40 CROHME 2014 pairs; a pred that did not render counts 0,
    # a gt that did not render is excluded; the calculator's JSON carries the mean (percent) beside ExpRate@CDM
    from statistics import fmean

    from unimumer.evaluation.cdm import render as cdm_render
    from unimumer.evaluation.metrics.report import cdm_f1_mean

    ref = json.loads((FIX / "cdm" / "official_crohme2014_40.json").read_text(encoding="utf-8"))["samples"]
    samples = [dict(s, status="ok") for s in ref]
    samples += [{"img_id": "p", "f1": 0.0, "status": "pred_error"}, {"img_id": "g", "f1": None, "status": "gt_error"}]
    expected = round(100 * fmean([s["f1"] for s in ref] + [0.0]), 4)
    assert cdm_f1_mean({"samples": samples}) == expected != round(100 * fmean(s["f1"] for s in ref), 4)
    assert cdm_f1_mean({"samples": []}) is None and cdm_f1_mean({}) is None

    records = [{"gt": s["gt"], "pred": s["pred"], "img_id": s["img_id"]} for s in ref]
    pred = tmp_path / "crohme_2014_pred.json"
    pred.write_text(json.dumps(records), encoding="utf-8")
    cdm = tmp_path / "crohme_2014_cdm.json"
    # a saved result of the current official-mode CDM is reused (the calculator does not render again)
    cdm.write_text(json.dumps({"exprate_cdm": 70.0, "evaluated": 41, "excluded": ["g"], "samples": samples,
                               "settings": {"mode": "official", "render_version": cdm_render.RENDER_VERSION,
                                            "toolkit": {"version": "2025-09", "commit": "5a2c80d9",
                                                        "date": "2025-09-28"}}}),
                   encoding="utf-8")
    st = pred.stat()
    os.utime(cdm, (st.st_atime + 10, st.st_mtime + 10))
    assert main(["--input", str(tmp_path), "--cdm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exprate_cdm"] == 70.0 and out["cdm_f1"] == expected
    report = (tmp_path / "crohme_2014_results.txt").read_text(encoding="utf-8")
    assert "F1" not in report.split("ExpRate@CDM")[-1]  # the text report is unchanged (no CDM F1 line)
