"""Released-data import: Hugging Face parquet (configs parquet_<name>, images inside) → ShareGPT JSON +
images + dataset_info.json under the official names. Offline: the parquet release is made in the test with
``datasets`` from the real CROHME five-task data of the ``crohme_train_data`` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.data.registry import TRAINING_DATASETS, dataset_info
from unimumer.data.released import RELEASED_NAME_MAP, discover_configs

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "prepare_released_data.py"


def _features(style: str):
    import datasets

    if style == "sharegpt":
        turn = {"from": datasets.Value("string"), "value": datasets.Value("string")}
    else:
        turn = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({"messages" if style == "sharegpt" else "conversations": [turn],
                              "images": datasets.Sequence(datasets.Image())})


def write_release_config(path: Path, records: list[dict], root: Path, style: str = "sharegpt") -> None:
    """Write ShareGPT records (image paths relative to ``root``) as a released parquet file: images embedded as
    ``datasets.Image`` structs ``{"bytes", "path"}``, the way ``datasets`` writes them."""
    import datasets

    col = "messages" if style == "sharegpt" else "conversations"
    role = {"human": "user", "gpt": "assistant"}
    rows = {col: [], "images": []}
    for r in records:
        if style == "sharegpt":
            rows[col].append(r["messages"])
        else:
            rows[col].append([{"role": role[m["from"]], "content": m["value"]} for m in r["messages"]])
        rows["images"].append([{"bytes": (root / p).read_bytes(), "path": Path(p).name} for p in r["images"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=_features(style)).to_parquet(str(path))


@pytest.fixture(scope="module")
def release(crohme_train_data, tmp_path_factory):
    """A release folder: the five crohme_train task configs (one in role/content style) + one unknown config."""
    src = tmp_path_factory.mktemp("release") / "Uni-MuMER-Data"
    originals = {}
    for name in crohme_train_data.names:
        recs = json.loads((crohme_train_data.root / f"CROHME/train/{name}.json").read_text())
        originals[name] = recs
        style = "openai" if name == "crohme_train_can" else "sharegpt"
        write_release_config(src / f"parquet_{name}" / "train-00000-of-00001.parquet", recs,
                             crohme_train_data.root, style)
    write_release_config(src / "parquet_crohme_train_v2_extra" / "train-00000-of-00001.parquet",
                         originals["crohme_train"][:3], crohme_train_data.root)
    return src, originals, crohme_train_data.root


def run(*args: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_name_map_is_explicit_and_covers_the_26_official_names():
    assert len(RELEASED_NAME_MAP) == 26
    assert sorted(RELEASED_NAME_MAP.values()) == sorted(TRAINING_DATASETS)
    assert all(k == f"parquet_{v}" for k, v in RELEASED_NAME_MAP.items())


def test_import_converts_under_official_names_and_reports_unmapped(release, tmp_path):
    src, originals, root = release
    res = run("--source", str(src), "--output", "out", "--no-progress", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr  # 1: something was left unmapped
    assert "UNMAPPED" in res.stdout and "parquet_crohme_train_v2_extra" in res.stdout
    out = tmp_path / "out"
    info = json.loads((out / "dataset_info.json").read_text())
    assert info == {n: dataset_info()[n] for n in originals}  # the official entries, nothing else
    images = sorted((out / "CROHME/train/images").iterdir())
    assert len(images) == 24  # shared by the five task datasets, written once
    for name, recs in originals.items():
        got = json.loads((out / info[name]["file_name"]).read_text())
        assert [g["messages"] for g in got] == [r["messages"] for r in recs]
        for g, r in zip(got, recs, strict=True):
            (img,) = g["images"]
            assert img == f"CROHME/train/images/{Path(r['images'][0]).name}"  # relative to the data root
            assert (out / img).read_bytes() == (root / r["images"][0]).read_bytes()
    report = json.loads((out / "released_import_report.json").read_text())
    assert report["unmapped"] == ["parquet_crohme_train_v2_extra"]
    assert report["mapped"] == {f"parquet_{n}": n for n in sorted(originals)}
    assert sorted(report["missing_official"]) == sorted(set(TRAINING_DATASETS) - set(originals))
    assert report["datasets"]["crohme_train_tree"]["records"] == len(originals["crohme_train_tree"])
    # the official test-file form, relative to the repository root (the working directory)
    res = run("--source", str(src), "--output", "out2", "--only", "crohme_train", "--path-style", "repo",
              "--no-progress", cwd=tmp_path)
    assert res.returncode == 1
    got = json.loads((tmp_path / "out2/CROHME/train/crohme_train.json").read_text())
    assert all(g["images"][0].startswith("./out2/CROHME/train/images/") for g in got)
    assert not (tmp_path / "out2/CROHME/train/crohme_train_tree.json").exists()
    # a second run keeps what exists (resume) and converts nothing twice
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "released_import_report.json"}
    res = run("--source", str(src), "--output", "out", "--no-progress", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout.count("exists, skipped") == 5
    assert before == {p: p.stat().st_mtime_ns for p in before}


@pytest.mark.slow
def test_imported_data_passes_check_config(release, tmp_path):
    src, originals, root = release
    assert run("--source", str(src), "--output", "data", "--no-progress", cwd=tmp_path).returncode == 1
    env = dict(os.environ, DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_config.py"), str(REPO / "train" / "Uni-MuMER-train.yaml"),
         f"dataset={','.join(originals)}", f"deepspeed={REPO / 'train/deepspeed/ds_z2_config.json'}",
         "--check-records"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "datasets: 5 named, 5 found" in res.stdout


def test_configs_from_the_dataset_card(release, tmp_path):
    src, originals, root = release
    card = tmp_path / "card"
    (card / "data").mkdir(parents=True)
    for name in ("crohme_train", "crohme_train_tree"):
        (card / "data" / f"{name}-00000-of-00001.parquet").write_bytes(
            (src / f"parquet_{name}" / "train-00000-of-00001.parquet").read_bytes())
    (card / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: parquet_crohme_train\n  data_files:\n  - split: train\n    path: data/crohme_train-*\n"
        "- config_name: parquet_crohme_train_tree\n  data_files: data/crohme_train_tree-*\n"
        "---\n# Uni-MuMER-Data\n")
    found = discover_configs(card)
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "parquet_crohme_train": ["crohme_train-00000-of-00001.parquet"],
        "parquet_crohme_train_tree": ["crohme_train_tree-00000-of-00001.parquet"],
    }


def test_hub_source_offline_fails_clearly(tmp_path):
    res = run("--source", "phxember/Uni-MuMER-Data", "--output", "out", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: cannot download phxember/Uni-MuMER-Data")
    assert "offline" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "dataset_info.json").exists()


def test_malformed_release_is_an_input_error(tmp_path):
    import datasets

    bad = tmp_path / "bad" / "parquet_crohme_train" / "train-00000-of-00001.parquet"
    bad.parent.mkdir(parents=True)
    datasets.Dataset.from_dict({"text": ["no messages here"]}).to_parquet(str(bad))
    res = run("--source", str(tmp_path / "bad"), "--output", "out", cwd=tmp_path)
    assert res.returncode == 2 and "no messages column" in res.stderr
    assert not (tmp_path / "out" / "CROHME" / "train" / "crohme_train.json").exists()
    res = run("--source", str(tmp_path / "nothing"), "--output", "out", cwd=tmp_path)
    assert res.returncode == 2 and "not a folder" in res.stderr
