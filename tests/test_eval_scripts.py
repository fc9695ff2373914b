"""eval/eval_all.sh and eval/eval_<dataset>.sh end to end with the tiny Qwen2.5-VL checkpoint on a tiny data root
(CROHME present, the five other test sets absent → skipped with a message), transformers backend passed through
``--`` to scripts/vllm_infer.py. Real CROHME 2014 images (tests/fixtures/images/crohme2014)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.tasks import TASKS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
INFER = ["--backend", "hf", "--max-tokens", "8", "--temperature", "0", "--dtype", "float32"]


@pytest.fixture()
def data_root(tmp_path, crohme_samples) -> Path:
    img_dir = tmp_path / "data/CROHME/2014/images"
    img_dir.mkdir(parents=True)
    rows = []
    for s in crohme_samples[:3]:
        shutil.copy(s.path, img_dir / s.path.name)
        rows.append(sharegpt_record(f"./data/CROHME/2014/images/{s.path.name}", TASKS["vanilla"].prompt(), s.caption))
    write_json(tmp_path / "data/CROHME/prompts/crohme_2014.json", rows)
    (tmp_path / "data/MNE/prompts").mkdir(parents=True)  # present but empty: skipped too
    return tmp_path


def _bash(args, cwd, **env):
    return subprocess.run(["bash", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_eval_all_runs_present_datasets_skips_absent_and_summarizes(data_root, tiny_qwen2_5_vl):
    res = _bash([str(REPO / "eval/eval_all.sh"), "-m", str(tiny_qwen2_5_vl), "-s", "tiny", "-b", "2",
                 "-c", "2025-03", "--", *INFER], data_root, CUDA_VISIBLE_DEVICES="")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for ds in ("CROHME2023", "HME100K", "MathWriting", "Im2LaTeXv2", "MNE"):
        assert f"[SKIP] {ds}: no prompt files in data/{ds}/prompts" in res.stdout
    out = data_root / "data/CROHME/results_tiny"
    assert sorted(p.name for p in out.iterdir()) == [
        "crohme_2014_cdm.json", "crohme_2014_pred.json", "crohme_2014_pred.run.json", "crohme_2014_results.txt"]
    # -c 2025-03: ExpRate@CDM with that CDM toolkit version, named in the report line and the summary column
    assert read_json(out / "crohme_2014_cdm.json")["settings"]["toolkit"]["version"] == "2025-03"
    assert (out / "crohme_2014_results.txt").read_text().rstrip().endswith("; CDM toolkit 2025-03)")
    recs = read_json(out / "crohme_2014_pred.json")
    # the official keys, plus "truncated" on outputs cut at --max-tokens 8
    assert all(list(r)[:4] == ["gt", "pred", "image_path", "img_id"] and set(r) - set(list(r)[:4]) <= {"truncated"}
               for r in recs) and len(recs) == 3
    # the cross-dataset summary table, with the paper's CROHME 2014 number beside ours
    table = res.stdout[res.stdout.index("Summary"):]
    row = next(line for line in table.splitlines() if "`crohme_2014`" in line)
    assert row.startswith("| CROHME") and "results_tiny" in row and "82.25" in row
    assert "| ExpRate@CDM (2025-03) |" in next(line for line in table.splitlines() if line.startswith("| Dataset"))
    assert "--batch_size 2" in res.stderr and "GPU(s): " in res.stderr


def test_unknown_cdm_toolkit_is_refused_before_inference(data_root):
    for script in ("eval/eval_all.sh", "eval/eval_crohme.sh"):
        res = _bash([str(REPO / script), "-m", "no-such-model", "-c", "2024-01"], data_root)
        assert res.returncode == 2 and res.stderr.strip() == (
            "error: unknown CDM toolkit version '2024-01' (expected one of 2025-09, 2025-03)")
    assert not (data_root / "data/CROHME/results").exists()


def test_per_dataset_script_official_flags_and_defaults(data_root, tiny_qwen2_5_vl):
    res = _bash([str(REPO / "eval/eval_crohme.sh"), "-m", str(tiny_qwen2_5_vl), "--", *INFER], data_root,
                CUDA_VISIBLE_DEVICES="")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (data_root / "data/CROHME/results/crohme_2014_results.txt").is_file()  # default -o data/CROHME/results
    alt = data_root / "elsewhere"
    res = _bash([str(REPO / "eval/eval_crohme.sh"), "-i", "data/CROHME/prompts", "-o", str(alt),
                 "-m", str(tiny_qwen2_5_vl), "--", *INFER], data_root, CUDA_VISIBLE_DEVICES="")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (alt / "crohme_2014_pred.json").read_bytes() == (
        data_root / "data/CROHME/results/crohme_2014_pred.json").read_bytes()


def test_eval_all_keeps_two_models_apart_by_default(data_root, tiny_qwen2_5_vl, tiny_qwen3_vl):
    """Without -s, model B's run after model A's writes (and summarises) its own folder, never A's scores."""
    outs = {}
    for model in (tiny_qwen2_5_vl, tiny_qwen3_vl):
        res = _bash([str(REPO / "eval/eval_all.sh"), "-m", str(model), "--", *INFER, "--limit", "1"], data_root,
                    CUDA_VISIBLE_DEVICES="")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        tag = str(model).lstrip("/").replace("/", "_")
        out = data_root / "data/CROHME" / f"results_{tag}"
        assert read_json(out / "crohme_2014_pred.run.json")["model"] == str(model.resolve())
        table = res.stdout[res.stdout.index(f"Summary ({model})"):]
        assert f"results_{tag}" in table
        outs[model] = out
    assert len(set(outs.values())) == 2
