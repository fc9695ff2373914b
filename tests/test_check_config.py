"""Training configs, dataset registry and scripts/check_config.py.

The settings and names are those of the official BFlameSwift/Uni-MuMER train/*.yaml; the configs are
validated with LLaMA-Factory's own argument parser (the installed 0.9.5), not with a schema of our own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unimumer.data import registry
from unimumer.training.config import dataset_names, load_config, split_cli_args

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "check_config.py"
CONFIGS = sorted((REPO / "train").glob("*.yaml"))

# the official configs' dataset list, in the official order
OFFICIAL_26 = """crohme2023, crohme2023_can, crohme2023_error_find, crohme2023_error_fix, crohme2023_tree, crohme_train,
crohme_train_can, crohme_train_error_find, crohme_train_error_fix, crohme_train_tree, hme100k_error_find,
hme100k_error_fix, hme100k_train, hme100k_train_can, hme100k_train_tree, im2latex_v2_error_find,
im2latex_v2_error_fix, im2latex_v2_train, im2latex_v2_train_can, im2latex_v2_train_tree, mathwriting_symbols,
mathwriting_train, mathwriting_train_can, mathwriting_train_error_find, mathwriting_train_error_fix,
mathwriting_train_tree""".replace("\n", " ").split(", ")
OFFICIAL_26 = [n.strip() for n in OFFICIAL_26]

# the official README / configs: config → (base model, template, DeepSpeed stage, GPUs, per device, grad accum)
SPEC = {
    "Uni-MuMER-train.yaml": ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_vl", 2, 4, 4, 32),
    "Uni-MuMER-Qwen2.5-VL-7B.yaml": ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_vl", 3, 8, 4, 16),
    "Uni-MuMER-Qwen3-VL-2B.yaml": ("Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl_nothink", 3, 8, 4, 16),
    "Uni-MuMER-Qwen3-VL-4B.yaml": ("Qwen/Qwen3-VL-4B-Instruct", "qwen3_vl_nothink", 3, 8, 4, 16),
    "Uni-MuMER-Qwen3.5-2B.yaml": ("Qwen/Qwen3.5-2B", "qwen3_5_nothink", 3, 8, 4, 16),
    "Uni-MuMER-Qwen3.5-4B.yaml": ("Qwen/Qwen3.5-4B", "qwen3_5_nothink", 3, 8, 4, 16),
}
COMMON = {  # every official config (full fine-tuning)
    "stage": "sft", "do_train": True, "finetuning_type": "full", "freeze_vision_tower": False,
    "freeze_multi_modal_projector": False, "freeze_language_model": False, "num_train_epochs": 1.0,
    "lr_scheduler_type": "cosine", "learning_rate": 1.0e-5, "bf16": True, "cutoff_len": 2048,
    "image_max_pixels": 262144, "video_max_pixels": 16384, "max_samples": 20000000, "save_only_model": True,
    "report_to": "tensorboard", "plot_loss": True, "logging_steps": 1, "save_steps": 1000,
    "ddp_timeout": 180000000, "dataset_dir": "data",
}


def _env() -> dict:
    env = dict(os.environ)
    env.update(DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    return env


def run_check(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)


# --------------------------------------------------------------------------------------------------- static
def test_every_backbone_has_its_config():
    assert sorted(p.name for p in CONFIGS) == sorted(SPEC)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_config_follows_the_training_spec(name):
    cfg = yaml.safe_load((REPO / "train" / name).read_text())
    model, template, stage, gpus, per_device, accum = SPEC[name]
    assert cfg["model_name_or_path"] == model
    assert cfg["template"] == template
    for key, value in COMMON.items():
        assert cfg[key] == value, key
    assert cfg["warmup_steps"] == 0.1  # warmup ratio 0.1 (transformers >= 5 spelling)
    assert "warmup_ratio" not in cfg
    assert cfg["per_device_train_batch_size"] == per_device and cfg["gradient_accumulation_steps"] == accum
    assert gpus * per_device * accum == 512
    assert dataset_names(cfg["dataset"]) == OFFICIAL_26
    ds = REPO / cfg["deepspeed"]
    assert ds.parent == REPO / "train" / "deepspeed"  # shipped with the project
    assert json.loads(ds.read_text())["zero_optimization"]["stage"] == stage


def test_registry_holds_the_26_official_names_and_the_test_sets():
    assert registry.training_dataset_names() == OFFICIAL_26
    info = json.loads((REPO / "data" / "dataset_info.json").read_text())
    assert info == registry.dataset_info()
    for name in OFFICIAL_26:
        assert info[name]["formatting"] == "sharegpt"
        assert info[name]["columns"] == {"messages": "messages", "images": "images"}
        assert info[name]["file_name"].endswith(f"/train/{name}.json")
    # test sets: one prompt JSON per split under data/<DATASET>/prompts/ (official data.zip)
    tests = {n: e["file_name"] for n, e in info.items() if n not in OFFICIAL_26}
    assert tests["crohme_2014"] == "CROHME/prompts/crohme_2014.json"
    assert tests["hme100k_test_normalized"] == "HME100K/prompts/hme100k_test_normalized.json"
    assert tests["mne_n3"] == "MNE/prompts/N3.json"
    assert len(tests) == 14


def test_load_config_merges_overrides_like_llamafactory(tmp_path):
    cfg = load_config(REPO / "train" / "Uni-MuMER-train.yaml",
                      ["max_steps=2", "bf16=false", "deepspeed=null", "dataset=crohme_train,crohme_train_tree"])
    assert cfg["max_steps"] == 2 and cfg["bf16"] is False and cfg["deepspeed"] is None
    assert dataset_names(cfg["dataset"]) == ["crohme_train", "crohme_train_tree"]
    assert cfg["learning_rate"] == 1.0e-5  # untouched keys kept
    assert split_cli_args(["a.yaml", "x=1", "b.yml"]) == (["a.yaml", "b.yml"], ["x=1"])


# --------------------------------------------------------------------------------------------------- CLI
def _full_data_root(tmp_path: Path, smoke) -> Path:
    """A data root in the official layout where every one of the 26 files exists: each holds the real CROHME
    records of the same task from the ``crohme_train_data`` fixture (stand-ins: only the names and paths are
    under test here)."""
    root = tmp_path / "data"
    root.mkdir()
    shutil.copytree(smoke.root / "CROHME/train/images", root / "CROHME/train/images")  # paths relative to the root
    shutil.copy(REPO / "data" / "dataset_info.json", root / "dataset_info.json")
    by_task = {registry.TRAINING_DATASETS[n].task: smoke.root / f"CROHME/train/{n}.json" for n in smoke.names}
    for spec in registry.TRAINING_DATASETS.values():
        dst = root / spec.file_name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(by_task[spec.task], dst)
    return root


@pytest.mark.slow
def test_every_config_passes_check_config_with_llamafactory_parser(tmp_path, crohme_train_data):
    root = _full_data_root(tmp_path, crohme_train_data)
    res = run_check(*[str(c) for c in CONFIGS], f"dataset_dir={root}", "--check-records")
    assert res.returncode == 0, res.stdout + res.stderr
    for c in CONFIGS:
        assert f"{c}" in res.stdout
    headers = [line for line in res.stdout.splitlines() if line.startswith(str(REPO / "train"))]
    assert len(headers) == len(CONFIGS) and all(h.endswith(": OK") for h in headers), headers
    assert res.stdout.count("LLaMA-Factory argument parser: OK") == len(CONFIGS)
    assert res.stdout.count("datasets: 26 named, 26 found") == len(CONFIGS)
    assert "use_cpu=true" in res.stdout  # bf16 on a CPU machine is reported, not silently edited
    assert f"{len(CONFIGS)} of {len(CONFIGS)} config(s) valid" in res.stdout


@pytest.mark.slow
def test_check_config_lists_what_is_missing_and_what_llamafactory_rejects(tmp_path, crohme_train_data):
    root = _full_data_root(tmp_path, crohme_train_data)
    (root / "HME100K/train/hme100k_error_fix.json").unlink()
    paper = yaml.safe_load((REPO / "train" / "Uni-MuMER-train.yaml").read_text())
    # a dataset name that does not match the registry (the reported failure of the official release)
    typo = dict(paper, dataset_dir=str(root), deepspeed=str(REPO / paper["deepspeed"]),
                dataset=paper["dataset"].replace("hme100k_error_find", "hme100k_train_error_find"))
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    # a key this transformers no longer has (warmup_ratio was removed in transformers 5.2) and a wrong template
    stale = dict(paper, dataset_dir=str(root), deepspeed=str(REPO / paper["deepspeed"]), warmup_ratio=0.1,
                 template="qwen2_5_vl")
    stale.pop("warmup_steps")
    (tmp_path / "stale.yaml").write_text(yaml.safe_dump(stale))
    res = run_check(str(tmp_path / "typo.yaml"), str(tmp_path / "stale.yaml"), cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    typo_report, stale_report = res.stdout.split(f"{tmp_path / 'stale.yaml'}")
    assert "typo.yaml: INVALID" in typo_report
    assert "not registered in dataset_info.json (1): hme100k_train_error_find" in typo_report
    assert "registered but the file is missing (1):" in typo_report
    assert f"hme100k_error_fix: {root / 'HME100K/train/hme100k_error_fix.json'}" in typo_report
    assert "LLaMA-Factory argument parser: OK" in typo_report
    assert stale_report.startswith(": INVALID")
    assert "LLaMA-Factory argument parser: FAILED" in stale_report and "warmup_ratio" in stale_report
    assert "template 'qwen2_5_vl' is not a LLaMA-Factory" in stale_report
    assert "0 of 2 config(s) valid" in res.stdout


def test_check_config_bad_input_exits_2(tmp_path):
    res = run_check(str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "not found" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_check(str(REPO / "train" / "Uni-MuMER-train.yaml"), "max_steps")
    assert res.returncode == 2 and "expected a config file" in res.stderr
    (tmp_path / "broken.yaml").write_text("model_name_or_path: [oops\n")
    res = run_check(str(tmp_path / "broken.yaml"))
    assert res.returncode == 2 and "cannot read the config" in res.stderr
    res = run_check("--help")
    assert res.returncode == 0 and "get_train_args" in res.stdout and "Exit status" in res.stdout


@pytest.mark.slow
def test_fresh_checkout_registry_only():
    """In the repository as shipped (no data built): every config's names resolve in data/dataset_info.json."""
    res = run_check(*[str(c.relative_to(REPO)) for c in CONFIGS], "--registry-only")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("datasets: 26 named, 26 registered (files not checked)") == len(CONFIGS)
    assert "Hugging Face Hub id" in res.stdout


# ---------------------------------------------------------------------------------------------------------- LoRA
LORA = REPO / "train" / "lora"
LORA_CONFIGS = sorted(LORA.rglob("*.yaml"))


def test_lora_configs_one_per_backbone_qlora_and_two_stage_mixes():
    names = {c.relative_to(LORA).as_posix() for c in LORA_CONFIGS}
    for full in CONFIGS:  # every full config's backbone has a LoRA config on the same model and template
        cfg = yaml.safe_load(full.read_text())
        same = [yaml.safe_load(c.read_text()) for c in LORA_CONFIGS]
        assert any(c["model_name_or_path"] == cfg["model_name_or_path"] and c["template"] == cfg["template"]
                   and "quantization_bit" not in c for c in same), full.name
    assert {"Uni-MuMER-QLoRA-Qwen2.5-VL-7B.yaml", "two-stage/stage1-printed-Qwen2.5-VL-3B.yaml",
            "two-stage/stage2-handwritten-Qwen2.5-VL-3B.yaml"} <= names
    for c in LORA_CONFIGS:
        cfg = yaml.safe_load(c.read_text())
        assert cfg["finetuning_type"] == "lora" and cfg["lora_target"] == "all", c.name
        assert cfg["lora_rank"] == 64 and cfg["lora_alpha"] == 128 and cfg["freeze_vision_tower"] is True, c.name
        assert "deepspeed" not in cfg and cfg["stage"] == "sft" and cfg["dataset_dir"] == "data"
        if "two-stage" not in str(c):  # the paper's data and batch
            assert dataset_names(cfg["dataset"]) == OFFICIAL_26, c.name
            assert cfg["per_device_train_batch_size"] * cfg["gradient_accumulation_steps"] == 512
    qlora = yaml.safe_load((LORA / "Uni-MuMER-QLoRA-Qwen2.5-VL-7B.yaml").read_text())
    assert qlora["quantization_bit"] == 4 and qlora["quantization_type"] == "nf4" and qlora["double_quantization"]
    assert "GPU ONLY" in (LORA / "Uni-MuMER-QLoRA-Qwen2.5-VL-7B.yaml").read_text()
    s1 = yaml.safe_load((LORA / "two-stage/stage1-printed-Qwen2.5-VL-3B.yaml").read_text())
    s2 = yaml.safe_load((LORA / "two-stage/stage2-handwritten-Qwen2.5-VL-3B.yaml").read_text())
    info = json.loads((REPO / "data" / "dataset_info.json").read_text())
    # stage 1: printed formulas only (Im2LaTeXv2); stage 2: handwritten CROHME + HME100K; all registered names
    assert dataset_names(s1["dataset"]) and all(n.startswith("im2latex_v2") and n in info
                                                for n in dataset_names(s1["dataset"]))
    s2_names = dataset_names(s2["dataset"])
    assert {n.split("_")[0] for n in s2_names} == {"crohme", "hme100k"} and all(n in info for n in s2_names)
    assert "adapter_name_or_path" not in s1 and s2["adapter_name_or_path"] == s1["output_dir"]
    assert s2["model_name_or_path"] == s1["model_name_or_path"] and s2["output_dir"] != s1["output_dir"]


@pytest.mark.slow
def test_every_lora_config_passes_check_config(tmp_path, crohme_train_data):
    root = _full_data_root(tmp_path, crohme_train_data)
    rel = [str(c.relative_to(REPO)) for c in LORA_CONFIGS]
    res = run_check(*rel, f"dataset_dir={root}", "--check-records")
    stage2 = "train/lora/two-stage/stage2-handwritten-Qwen2.5-VL-3B.yaml"
    # stage 2 before stage 1 ran: its adapter does not exist yet -> that config alone is invalid, saying why
    assert res.returncode == 1, res.stdout + res.stderr
    headers = [line for line in res.stdout.splitlines() if line.startswith("train/lora/")]
    assert len(headers) == len(LORA_CONFIGS)
    assert [h for h in headers if h.endswith("INVALID")] == [f"{stage2} dataset_dir={root}: INVALID"]
    assert "adapter_name_or_path: saves/qwen2.5-vl-3b/lora/sft/stage1-printed not found" in res.stdout
    assert res.stdout.count("LLaMA-Factory argument parser: OK") == len(LORA_CONFIGS)
    assert "QLoRA: base weights in 4-bit (bnb, nf4)" in res.stdout
    # fresh checkout: every LoRA config's names resolve; the missing stage-1 adapter is only noted
    res = run_check(*rel, "--registry-only")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(LORA_CONFIGS)} of {len(LORA_CONFIGS)} config(s) valid" in res.stdout
    assert "not present yet (written by the previous stage" in res.stdout
