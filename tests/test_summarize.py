"""Cross-dataset summary: discovery in the data/<DATASET>/results*/ layout, paper numbers, CDM column, chart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from unimumer.commands.summary import main
from unimumer.errors import InputError
from unimumer.evaluation.metrics.paper import MODELS, SPLITS, paper_exprate, paper_rows, resolve_model
from unimumer.evaluation.metrics.summary import collect_rows, markdown_table

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "reference"
SCRIPT = ROOT / "scripts" / "summarize_results.py"


@pytest.fixture()
def data_root(tmp_path):
    """A data root laid out like eval/eval_all.sh output, built from the official prediction files."""
    root = tmp_path / "data"
    crohme = root / "CROHME" / "results"
    c23 = root / "CROHME2023" / "results"
    paper = root / "CROHME" / "results_paper"
    for d in (crohme, c23, paper):
        d.mkdir(parents=True)
    for y in (2014, 2016, 2019):
        shutil.copy(FIX / "predictions" / f"crohme_{y}_pred.json", crohme)
        shutil.copy(FIX / "paper_final" / f"crohme_{y}.json", paper / f"crohme_{y}_pred.json")
    for s in ("crohme2023_test", "crohme2023_test_normalized"):
        shutil.copy(FIX / "predictions" / f"{s}_pred.json", c23)
    # per-sample scores: the official CDM toolkit's on 40 CROHME 2014 pairs (mean F1 0.9061 -> CDM F1 90.61)
    samples = json.loads((FIX / "cdm" / "official_crohme2014_40.json").read_text(encoding="utf-8"))["samples"]
    samples = [dict(s, status="ok") for s in samples] + [
        {"img_id": "gt_did_not_render", "f1": None, "status": "gt_error"}]  # excluded: not in the mean
    (crohme / "crohme_2014_cdm.json").write_text(json.dumps(
        {"exprate_cdm": 84.1234, "evaluated": 986, "excluded": ["gt_did_not_render"], "samples": samples}),
        encoding="utf-8")
    return root


def _row(md: str, stem: str, run: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 3 and cells[1] == f"`{stem}`" and cells[2] == run:
            return cells
    raise AssertionError(f"no row for {stem} / {run}")


def test_cdm_column_names_the_toolkit_version(data_root, capsys):
    def write_cdm(path: Path, value: float, version: str) -> None:
        toolkit = {"version": version, "commit": {"2025-09": "5a2c80d9", "2025-03": "415d534"}[version]}
        path.write_text(json.dumps({"exprate_cdm": value, "evaluated": 986, "excluded": [], "samples": [],
                                    "settings": {"mode": "official", "toolkit": toolkit}}), encoding="utf-8")

    def table(*args: str) -> tuple[str, str]:
        assert main([str(data_root), *args]) == 0
        md = capsys.readouterr().out
        return next(line for line in md.splitlines() if line.startswith("| Dataset")), md

    results, paper = data_root / "CROHME" / "results", data_root / "CROHME" / "results_paper"
    write_cdm(results / "crohme_2014_cdm.json", 84.9899, "2025-09")
    head, md = table()
    assert "| ExpRate@CDM (2025-09) | CDM F1 (2025-09) |" in head and _row(md, "crohme_2014", "results")[9] == "84.99"
    write_cdm(paper / "crohme_2014_cdm.json", 85.1927, "2025-03")
    head, md = table()  # two versions in one table: each cell names its own
    assert "| ExpRate@CDM (toolkit) |" in head
    assert _row(md, "crohme_2014", "results")[9] == "84.99 (2025-09)"
    assert _row(md, "crohme_2014", "results_paper")[9] == "85.19 (2025-03)"
    head, md = table("--cdm-toolkit", "2025-03")  # only that version's files
    assert "| ExpRate@CDM (2025-03) |" in head
    assert _row(md, "crohme_2014", "results")[9] == "—" and _row(md, "crohme_2014", "results_paper")[9] == "85.19"


def test_paper_table_data():
    # the official README, released results
    assert paper_exprate("crohme_2014") == 82.25
    assert paper_exprate("crohme2023_test_normalized") == 69.52
    assert paper_exprate("hme100k_test_normalized", "Qwen3.5-2B") == 70.43
    assert paper_exprate("N3", "qwen3-vl-4b") == 54.44
    assert paper_exprate("mathwriting_test", "Qwen3.5-4B") == 54.32
    assert paper_exprate("something_else") is None
    assert resolve_model("Qwen2.5-VL-3B") == "3B"
    assert list(paper_rows("Qwen3-VL-2B").values())[:3] == [83.27, 78.55, 79.40]
    assert len(SPLITS) == 14 and len(MODELS) == 5
    assert SPLITS["hme100k_test"].protocol is False and SPLITS["hme100k_test_normalized"].protocol is True
    with pytest.raises(InputError, match="unknown paper model"):
        resolve_model("GPT-4o")


def test_summary_table_values_cdm_and_plot(data_root, tmp_path, capsys):
    out, png = tmp_path / "summary.md", tmp_path / "chart.png"
    assert main([str(data_root), "--output", str(out), "--plot", str(png)]) == 0
    md = capsys.readouterr().out
    assert md == out.read_text(encoding="utf-8")
    head = next(line for line in md.splitlines() if line.startswith("| Dataset"))
    assert "ExpRate@CDM | CDM F1" in head and "Paper 3B" in head

    # official reports: 986 records, ExpRate 82.6572, <=1 90.3651, <=2 93.7120, <=3 96.4503, BLEU-4 89.1164;
    # paper 82.25 -> difference +0.41; CDM from crohme_2014_cdm.json
    assert _row(md, "crohme_2014", "results") == [
        "CROHME", "`crohme_2014`", "results", "986", "82.66", "90.37", "93.71", "96.45", "89.12", "84.12",
        "90.61", "82.25", "+0.41", ""]
    # 79.8165 - 79.82 rounds to zero without a minus sign; no CDM file -> dash
    r19 = _row(md, "crohme_2019", "results")
    assert r19[9] == r19[10] == "—" and r19[12] == "+0.00"
    # raw CROHME 2023: the paper number is on the normalized split -> no difference, a note
    raw = _row(md, "crohme2023_test", "results")
    assert raw[3] == "2,300" and raw[4] == "46.35" and raw[11] == "69.52" and raw[12] == "—"
    assert "normalized" in raw[13]
    norm = _row(md, "crohme2023_test_normalized", "results")
    assert norm[4] == "69.49" and norm[12] == "-0.03"
    # released paper_final predictions (ExpRate 82.0487 on CROHME 2014)
    assert _row(md, "crohme_2014", "results_paper")[4:6] == ["82.05", "89.45"]

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300


def test_explicit_files_and_paper_model(tmp_path):
    files = [FIX / "paper_final" / "crohme_2014.json", FIX / "predictions" / "crohme_2016_pred.json"]
    rows = collect_rows(files, model="Qwen3.5-2B")
    assert [(r.stem, r.run) for r in rows] == [("crohme_2014", "paper_final"), ("crohme_2016", "predictions")]
    assert [r.paper for r in rows] == [83.98, 81.17]
    md = markdown_table(rows, "Qwen3.5-2B")
    assert "Paper Qwen3.5-2B" in md and "ExpRate@CDM" not in md  # no CDM file -> no column
    assert _row(md, "crohme_2014", "paper_final")[9:11] == ["83.98", "-1.93"]  # 82.0487 - 83.98


def test_unknown_split_has_no_paper_number(tmp_path):
    d = tmp_path / "Custom" / "results"
    d.mkdir(parents=True)
    (d / "my_split_pred.json").write_text('[{"gt": "a b", "pred": "a b"}, {"gt": "c", "pred": "d"}]',
                                          encoding="utf-8")
    rows = collect_rows([tmp_path])
    assert len(rows) == 1 and rows[0].dataset == "Custom" and rows[0].paper is None
    assert rows[0].metrics["exact_match_rate"] == 50.0 and rows[0].delta is None


def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_cli_errors(tmp_path, data_root):
    cases = [
        ([str(tmp_path / "missing")], "file not found"),
        ([str(data_root / "CROHME" / "results_paper" / "nothing")], "file not found"),
        ([str(data_root), "--paper-model", "GPT"], "unknown paper model"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append(([str(empty)], "no *_pred.json"))
    bad_cdm = data_root / "CROHME" / "results" / "crohme_2016_cdm.json"
    for args, needle in cases:
        proc = _cli(*args, "--output", str(tmp_path / "s.md"))
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and needle in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and not (tmp_path / "s.md").exists()
    bad_cdm.write_text('{"evaluated": 3}', encoding="utf-8")
    proc = _cli(str(data_root), "--output", str(tmp_path / "s.md"))
    assert proc.returncode == 2 and "crohme_2016_cdm.json" in proc.stderr and "exprate_cdm" in proc.stderr
    assert not (tmp_path / "s.md").exists()
    assert "--paper-model" in _cli("--help").stdout
