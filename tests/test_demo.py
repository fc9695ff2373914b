"""The demo pipeline (``make demo``) end to end on a reduced real sample: every stage runs for real."""

import json

import pytest

from unimumer.demo import MARKER, main, run_demo
from unimumer.errors import InputError
from unimumer.paths import REPO_ROOT


@pytest.mark.slow
def test_demo_pipeline_runs_end_to_end_on_a_reduced_sample(tmp_path):
    out = tmp_path / "demo"
    lines = []
    summary = run_demo(out, n_train=6, n_test=4, folds=2, samples=1, max_tokens=8, train_steps=1,
                       fold_train_steps=1, official_years=(2014,), log=lines.append)
    text = "\n".join(str(x) for x in lines)
    assert "meaningless" in text
    # five task datasets from the bundled real training images, registered in the demo's dataset_info.json
    info = json.loads((out / "data" / "dataset_info.json").read_text())
    assert list(info) == ["crohme_train", "crohme_train_tree", "crohme_train_can", "crohme_train_error_find",
                          "crohme_train_error_fix"]
    assert summary["datasets"]["crohme_train"] == 6 and summary["datasets"]["crohme_train_tree"] == 6
    assert summary["datasets"]["crohme_train_error_fix"] == summary["error_corpus"]["written"] >= 1
    # every shipped config went through LLaMA-Factory's parser
    assert len(summary["configs"]) == len(list((REPO_ROOT / "train").glob("*.yaml"))) == 6
    # trained through the launcher, with a finite loss; predictions in the official layout + report
    assert summary["train"]["losses"] and all(v == v for v in summary["train"]["losses"])
    preds = json.loads((out / "data/CROHME/results_tiny/crohme_2014_pred.json").read_text())
    assert len(preds) == 4 and all(set(r) >= {"gt", "pred", "image_path", "img_id"} for r in preds)
    assert (out / "data/CROHME/results_tiny/crohme_2014_results.txt").read_text().startswith("\n=====")
    # the official CROHME 2014 predictions reproduce the official report byte for byte
    (row,) = summary["official"]
    assert row["identical_to_official_report"] and row["metrics"]["exact_match_rate"] == 82.0487
    assert row["exprate_cdm"] > row["metrics"]["exact_match_rate"]
    report = (out / "report.md").read_text()
    assert "crohme_2014" in report and (out / "exprate.png").stat().st_size > 1000
    # a second run in the same folder starts afresh (the folder is the demo's own)
    assert (out / MARKER).is_file()


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
