"""scripts/check_data.py (unimumer.data.check): official test sets present and complete, on constructed data roots."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.cli import run_main
from unimumer.commands.check_data import main
from unimumer.data.check import ALSO_PUBLISHED, EXPECTED, check_data, select_sets
from unimumer.data.registry import TEST_DATASETS
from unimumer.files import sharegpt_record
from unimumer.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
REPORTS = Path(__file__).parent / "fixtures" / "reference"
PROMPT = TASKS["vanilla"].prompt()


def make_set(root: Path, name: str, n: int, *, images: bool = True, drop_image: int | None = None) -> Path:
    """A data root ``root/data`` holding test set ``name`` with ``n`` records in the official layout (prompt file
    under ``data/<DATASET>/prompts/``, image paths ``./data/<DATASET>/test/images/<i>.png`` relative to ``root``)."""
    spec = TEST_DATASETS[name]
    data = root / "data"
    img_dir = data / spec.folder / "test" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        rel = f"./data/{spec.folder}/test/images/{name}_{i}.png"
        if images and i != drop_image:
            (root / rel).write_bytes(b"\x89PNG")
        records.append(sharegpt_record(rel, PROMPT, "x ^ { 2 }"))
    prompt_file = data / spec.file_name
    prompt_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(json.dumps(records), encoding="utf-8")
    return data


def test_expected_counts_cover_every_registered_test_set_and_match_the_official_reports():
    assert list(EXPECTED) == list(TEST_DATASETS)
    assert EXPECTED["crohme_2014"] == 986 and EXPECTED["hme100k_test"] == 24607 and EXPECTED["mne_n2"] == 304
    # the official calculator's reports bundled in the fixtures ("Total Samples")
    checked = 0
    for report in sorted(REPORTS.glob("*/*_results.txt")):
        stem = report.name.removesuffix("_results.txt")
        total = int(re.search(r"Total Samples: ([\d,]+)", report.read_text()).group(1).replace(",", ""))
        assert EXPECTED[stem] == total, report
        checked += 1
    assert checked >= 5


def test_complete_set_passes(tmp_path, capsys):
    data = make_set(tmp_path, "mne_n2", 304)
    [res] = check_data(data, ["mne_n2"])
    assert (res.status, res.found, res.images_missing, res.note) == ("complete", 304, 0, "")
    assert run_main(main, ["--data-dir", str(data), "--sets", "mne_n2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^mne_n2\s+304\s+304\s+0\s+complete$", out, re.M), out
    assert "1 of 1 requested test sets complete" in out


def test_short_by_one_record_is_incomplete(tmp_path, capsys):
    data = make_set(tmp_path, "mne_n2", 303)
    [res] = check_data(data, ["mne_n2"])
    assert (res.status, res.found, res.images_missing) == ("incomplete", 303, 0)
    assert res.note == "1 record short of the official count"
    assert run_main(main, ["--data-dir", str(data), "--sets", "mne_n2"]) == 1
    out = capsys.readouterr().out
    assert "incomplete (1 record short" in out and "not complete: mne_n2" in out


def test_one_record_too_many_is_incomplete(tmp_path):
    [res] = check_data(make_set(tmp_path, "mne_n2", 305), ["mne_n2"])
    assert res.status == "incomplete" and res.note == "1 record more than the official count"


def test_a_missing_image_makes_the_set_incomplete_unless_images_are_not_checked(tmp_path):
    data = make_set(tmp_path, "mne_n2", 304, drop_image=17)
    [res] = check_data(data, ["mne_n2"])
    assert (res.status, res.found, res.images_missing) == ("incomplete", 304, 1)
    assert "1 image not found under" in res.note
    [res] = check_data(data, ["mne_n2"], images=False)
    assert (res.status, res.images_missing) == ("complete", None)


def test_images_resolve_against_the_parent_of_the_data_dir_or_image_root(tmp_path, monkeypatch):
    data = make_set(tmp_path, "mne_n2", 304)
    monkeypatch.chdir(tmp_path / "data")  # not the current directory: ./data/… is relative to data's parent
    assert check_data(data, ["mne_n2"])[0].status == "complete"
    [res] = check_data(data, ["mne_n2"], image_root=tmp_path / "data")  # ./data/data/… does not exist
    assert (res.status, res.images_missing) == ("incomplete", 304)
    prompt = data / TEST_DATASETS["mne_n2"].file_name  # absolute paths are used as they are
    records = json.loads(prompt.read_text())
    for r in records:
        r["images"] = [str((tmp_path / r["images"][0]).resolve())]
    prompt.write_text(json.dumps(records))
    assert check_data(data, ["mne_n2"], image_root=tmp_path / "nowhere")[0].status == "complete"


def test_missing_and_unreadable_sets(tmp_path, capsys):
    data = make_set(tmp_path, "mne_n2", 304)
    bad = data / TEST_DATASETS["mne_n3"].file_name
    bad.write_text("[{not json", encoding="utf-8")
    results = {r.name: r for r in check_data(data, select_sets("MNE"))}
    assert [results[n].status for n in ("mne_n1", "mne_n2", "mne_n3")] == ["missing", "complete", "unreadable"]
    assert results["mne_n1"].note == "no MNE/prompts/N1.json" and results["mne_n1"].found is None
    assert run_main(main, ["--data-dir", str(data), "--sets", "mne"]) == 1
    captured = capsys.readouterr()
    assert "1 of 3 requested test sets complete; not complete: mne_n1, mne_n3" in captured.out
    assert "Traceback" not in captured.err


def test_the_readme_count_of_a_set_is_accepted_and_said(tmp_path):
    assert ALSO_PUBLISHED == {"im2latexv2_test": 10118, "mathwriting_test": 7643}
    data = make_set(tmp_path, "im2latexv2_test", 10118, images=False)
    [res] = check_data(data, ["im2latexv2_test"], images=False)
    assert res.status == "complete" and res.note == "10,118 = the official README's count"
    data = make_set(tmp_path / "b", "im2latexv2_test_normalized", 10118, images=False)
    [res] = check_data(data, ["im2latexv2_test_normalized"], images=False)
    assert res.status == "incomplete"  # the README count is for the raw split only


def test_set_selection_and_bad_input(tmp_path, capsys):
    assert select_sets(None) == select_sets("all") == list(EXPECTED)
    assert select_sets("crohme") == ["crohme_2014", "crohme_2016", "crohme_2019"]
    assert select_sets("mne_n3, CROHME2023") == ["crohme2023_test", "crohme2023_test_normalized", "mne_n3"]
    assert run_main(main, ["--data-dir", str(tmp_path), "--sets", "crohme_2015"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown test set 'crohme_2015'")
    assert run_main(main, ["--data-dir", str(tmp_path / "none")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_cli_script(tmp_path):
    data = make_set(tmp_path, "mne_n2", 304)
    run = [sys.executable, str(REPO / "scripts" / "check_data.py"), "--data-dir", str(data)]
    res = subprocess.run([*run, "--sets", "mne_n2"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "complete" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(run, capture_output=True, text=True, timeout=120)  # all 14 requested, 13 missing
    assert res.returncode == 1 and "1 of 14 requested test sets complete" in res.stdout
    assert res.stdout.count("missing (no ") == 13 and res.stderr == ""


@pytest.mark.parametrize("name", ["crohme_2014", "hme100k_test_normalized"])
def test_official_count_is_complete_and_one_less_is_not(tmp_path, name):
    n = EXPECTED[name]
    data = make_set(tmp_path / "ok", name, n, images=False)
    assert check_data(data, [name], images=False)[0].status == "complete"
    data = make_set(tmp_path / "short", name, n - 1, images=False)
    assert check_data(data, [name], images=False)[0].status == "incomplete"
