"""The demo pipeline (``make demo``) end to end with its shipped defaults on the whole bundled sample."""

import json
import os
import subprocess
import sys

import pytest

from unimumer.apps.demo import MARKER, DemoContext, run_demo, stage_data, stage_infer, stage_official
from unimumer.commands.demo import main
from unimumer.errors import InputError
from unimumer.paths import REPO_ROOT


@pytest.mark.slow
def test_demo_with_the_shipped_defaults_on_the_whole_bundled_sample(tmp_path):
    """``make demo`` as a new user runs it: ``scripts/demo.py`` with its defaults (48 + 48 images, K = 2 folds,
    N = 2 candidates) from a clean environment (only PATH and HOME; the CPU defaults come from the venv's hook).
    Without the CPU scheduler settings this failed in the sampling of fold 0 ('CPU Generator does not use offset')."""
    out = tmp_path / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run([sys.executable, "scripts/demo.py", "--output-dir", str(out)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "meaningless" in proc.stdout and "unimumer demo: done in" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    # five task datasets from the 48 bundled real training images, registered in the demo's dataset_info.json
    info = json.loads((out / "data" / "dataset_info.json").read_text())
    assert list(info) == ["crohme_train", "crohme_train_tree", "crohme_train_can", "crohme_train_error_find",
                          "crohme_train_error_fix"]
    assert summary["datasets"]["crohme_train"] == 48 and summary["datasets"]["crohme_train_tree"] == 48
    corpus = summary["error_corpus"]
    assert corpus["records"] == 48 and corpus["folds"] == 2 and corpus["samples_per_image"] == 2
    assert corpus["candidates_sampled"] == 96 and corpus["failed"] == 0
    assert summary["datasets"]["crohme_train_error_fix"] == corpus["written"] >= 1
    # every shipped config went through LLaMA-Factory's parser
    assert len(summary["configs"]) == len(list((REPO_ROOT / "train").glob("*.yaml"))) == 6
    # trained through the launcher, with a finite loss; predictions in the official layout + report
    assert len(summary["train"]["losses"]) == 4 and all(v == v for v in summary["train"]["losses"])
    preds = json.loads((out / "data/CROHME/results_tiny/crohme_2014_pred.json").read_text())
    assert len(preds) == 48 and all(set(r) >= {"gt", "pred", "image_path", "img_id"} for r in preds)
    assert (out / "data/CROHME/results_tiny/crohme_2014_results.txt").read_text().startswith("\n=====")
    # the official CROHME 2014 / 2016 / 2019 predictions reproduce the official reports byte for byte
    assert [r["year"] for r in summary["official"]] == [2014, 2016, 2019]
    assert all(r["identical_to_official_report"] for r in summary["official"])
    assert summary["official"][0]["metrics"]["exact_match_rate"] == 82.0487
    assert all(r["exprate_cdm"] >= r["metrics"]["exact_match_rate"] for r in summary["official"])
    # ExpRate@CDM with the CDM toolkit version the paper used: its CROHME average (82.86) within one sample
    assert all(r["cdm_toolkit"] == "2025-03" for r in summary["official"])
    assert abs(sum(r["exprate_cdm"] for r in summary["official"]) / 3 - 82.86) < 0.1
    assert "ExpRate@CDM CROHME average 82.86 (CDM toolkit 2025-03; paper 82.86)" in proc.stdout
    report = (out / "report.md").read_text()
    assert "crohme_2014" in report and (out / "exprate.png").stat().st_size > 1000
    assert list(summary["stage_seconds"]) == ["model", "data", "edl", "configs", "train", "infer", "official",
                                              "summary"]
    assert (out / MARKER).is_file()


def test_official_stage_alone_reproduces_the_official_report(tmp_path):
    """A stage is a function a test can call: stage 7 on CROHME 2014 without the rest of the pipeline."""
    ctx = DemoContext(tmp_path, log=lambda m: None)
    (row,) = stage_official(ctx, years=(2014,), cdm=False)
    assert row["identical_to_official_report"] and row["metrics"]["exact_match_rate"] == 82.0487
    assert (tmp_path / "official" / "crohme_2014_results.txt").read_text() == (
        REPO_ROOT / "data/sample/official_predictions/crohme_2014_results.txt").read_text()


@pytest.mark.slow
def test_infer_stage_runs_vllm_infer_with_the_chosen_preprocessing(tmp_path, tiny_qwen2_5_vl):
    """``scripts/demo.py --preprocessing training`` reaches vllm_infer.py: its run record says so (the shipped
    default, official, is what the whole-sample test above runs)."""
    ctx = DemoContext(tmp_path, log=lambda m: None)
    _, _, prompts = stage_data(ctx, n_train=2, n_test=3)
    res = stage_infer(ctx, tiny_qwen2_5_vl, prompts, max_tokens=4, preprocessing="training")
    pred = tmp_path / "data/CROHME/results_tiny/crohme_2014_pred.json"
    assert res["metrics"]["total_samples"] == 3 and pred.is_file()
    run = json.loads(pred.with_name(pred.stem + ".run.json").read_text())
    assert run["settings"]["preprocessing"] == "training" and run["settings"]["min_pixels"] == 1024


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("user data")
    with pytest.raises(InputError, match="not made by the demo"):
        run_demo(mine)
    assert (mine / "notes.txt").read_text() == "user data"
    from unimumer.cli import run_main

    assert run_main(main, ["--output-dir", str(mine)]) == 2
    assert "not made by the demo" in capsys.readouterr().err
