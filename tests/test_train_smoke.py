"""Smoke training: each backbone family's real config, through scripts/train.sh (LLaMA-Factory's torchrun
launch, the config's own DeepSpeed ZeRO-2 / ZeRO-3 on the CPU accelerator), with the model swapped for the tiny
model of that family and steps / batch cut down by key=value overrides, on the five-task data built from real
CROHME train images by the project's builders (``crohme_train_data``). Loss finite, checkpoints saved, the saved
model loads and generates; the paper config also resumes from its DeepSpeed checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unimumer.tasks import TASKS, task_for_prompt
from unimumer.testing.smoke import DEFAULT_SOURCE, read_captions

REPO = Path(__file__).resolve().parents[1]
TRAIN_SH = REPO / "scripts" / "train.sh"
# family → (config, tiny-model fixture, DeepSpeed stage of that config)
FAMILIES = {
    "qwen2_5_vl": ("Uni-MuMER-train.yaml", "tiny_qwen2_5_vl", 2),
    "qwen3_vl": ("Uni-MuMER-Qwen3-VL-2B.yaml", "tiny_qwen3_vl", 3),
    "qwen3_5": ("Uni-MuMER-Qwen3.5-2B.yaml", "tiny_qwen3_5", 3),
}
CPU_OVERRIDES = ["bf16=false", "max_steps=2", "per_device_train_batch_size=1", "gradient_accumulation_steps=1",
                 "dataloader_num_workers=0", "preprocessing_num_workers=1", "report_to=none", "save_steps=1"]


def launch(config: str, overrides: list[str], tmp_path: Path, *, check: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # llamafactory-cli, torchrun
        PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "hf_datasets"),
        SKIP_CHECK="0" if check else "1", TOKENIZERS_PARALLELISM="false",
    )
    for k in ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.run(["bash", str(TRAIN_SH), f"train/{config}", *overrides], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def losses(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    return [r["loss"] for r in rows if "loss" in r]


def generates(model_dir: Path, image: Path) -> list[str]:
    """Load the saved model with the project's transformers engine and greedily generate a few tokens."""
    from unimumer.images import load_image
    from unimumer.inference.engines import GenerationSettings, make_engine

    engine = make_engine("hf", str(model_dir), GenerationSettings(max_tokens=8, temperature=0),
                         dtype="float32", device="cpu")
    out = engine.generate([engine.prepare_image(load_image(image))], [TASKS["vanilla"].prompt()])
    n_new = len(engine.tokenizer(out[0], add_special_tokens=False)["input_ids"]) if out[0] else 0
    return out, n_new


def weights_changed(before: Path, after: Path) -> int:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    assert set(x) == set(y)
    return sum(not torch.equal(x[k].float(), y[k].float()) for k in x)


def test_smoke_data_has_all_five_tasks_from_real_crohme_train_images(crohme_train_data):
    d = crohme_train_data
    assert d.names == ["crohme_train", "crohme_train_tree", "crohme_train_can", "crohme_train_error_find",
                       "crohme_train_error_fix"]
    info = json.loads((d.root / "dataset_info.json").read_text())
    captions = read_captions(DEFAULT_SOURCE)  # the bundled real CROHME train captions
    for name in d.names:
        records = json.loads((d.root / info[name]["file_name"]).read_text())
        assert len(records) == d.datasets[name] > 0
        tasks = {task_for_prompt(r["messages"][0]["value"]).name for r in records}
        assert tasks == {TASKS[name.replace("crohme_train", "").lstrip("_") or "vanilla"].name}
        for r in records:
            img = d.root / r["images"][0]  # relative to the data root (the builders' convention)
            target = r["messages"][1]["value"]
            assert img.is_file()
            if name.endswith("error_find"):  # the marked wrong candidate
                assert "<error_start>" in target or "<deleted>" in target
            else:  # the gt LaTeX is the last line of every other target
                assert target.splitlines()[-1] == captions[img.stem].strip()
    assert len(d.images) == 24 and sorted(d.captions) == sorted(captions)  # all 24 bundled images


def test_smoke_sampler_takes_the_first_n_bundled_images_or_a_seeded_sample(tmp_path):
    import random

    from unimumer.testing.smoke import build_smoke_data

    order = list(read_captions(DEFAULT_SOURCE))  # caption.txt order = the seed-0 draw order from the full set
    assert len(order) == 24 and order[0] == "TrainData2_8_sub_41"
    first = build_smoke_data(tmp_path / "a", n=3)
    assert sorted(first.captions) == sorted(order[:3]) and first.datasets["crohme_train"] == 3
    seeded = build_smoke_data(tmp_path / "b", n=3, seed=1)
    assert sorted(seeded.captions) == sorted(random.Random(1).sample(sorted(order), 3))


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_trains_on_cpu_saves_and_generates(family, crohme_train_data, request, tmp_path):
    config, fixture, stage = FAMILIES[family]
    tiny = request.getfixturevalue(fixture)
    out = tmp_path / "out"
    paper = family == "qwen2_5_vl"
    overrides = [f"model_name_or_path={tiny}", f"dataset_dir={crohme_train_data.root}",
                 f"dataset={','.join(crohme_train_data.names)}", f"output_dir={out}", *CPU_OVERRIDES]
    if paper:  # keep the optimizer state so that the run can be resumed (docs/training.md)
        overrides.append("save_only_model=false")
    res = launch(config, overrides, tmp_path, check=paper)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "Initializing 1 distributed tasks" in log  # LLaMA-Factory's own torchrun launch
    if paper:
        assert f"train/{config}" in log and ": OK" in log  # the launcher's check_config step ran and passed
    for name in crohme_train_data.names:
        assert f"Loading dataset CROHME/train/{name}.json" in log
    ls = losses(out)
    assert len(ls) == 2 and all(math.isfinite(v) for v in ls), ls
    for step in (1, 2):
        assert (out / f"checkpoint-{step}" / "model.safetensors").is_file()
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    if stage == 3:
        assert "Detected DeepSpeed ZeRO-3" in log
    else:  # a ZeRO-2 engine checkpoint: DeepSpeed's own optimizer-state shards
        assert (out / "checkpoint-2" / "global_step2" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").is_file()
    assert weights_changed(tiny, out) > 0
    texts, n_new = generates(out / "checkpoint-2", crohme_train_data.images[0])  # the saved checkpoint
    assert len(texts) == 1 and isinstance(texts[0], str) and n_new >= 1

    if paper:  # resume from the DeepSpeed checkpoint, as documented: resume_from_checkpoint=... max_steps=3
        more = [o for o in overrides if not o.startswith("max_steps=")]
        res2 = launch(config, [*more, "max_steps=3", f"resume_from_checkpoint={out / 'checkpoint-2'}"],
                      tmp_path, check=False)
        log2 = res2.stdout + res2.stderr
        assert res2.returncode == 0, log2[-4000:]
        assert "Resuming training from checkpoint with epoch 0 and global step 2" in log2
        state = json.loads((out / "trainer_state.json").read_text())
        assert state["global_step"] == 3
        assert (out / "checkpoint-3" / "model.safetensors").is_file()
        assert all(math.isfinite(v) for v in losses(out))


def test_train_sh_rejects_bad_usage(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for args, msg in [([], "Usage"), (["train/missing.yaml"], "config file not found"),
                      (["train/Uni-MuMER-train.yaml", "max_steps"], "expected key=value")]:
        res = subprocess.run(["bash", str(TRAIN_SH), *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert res.returncode == 2 and msg in res.stdout + res.stderr
    env2 = dict(env, NNODES="2")
    env2.pop("MASTER_ADDR", None)
    res = subprocess.run(["bash", str(TRAIN_SH), "train/Uni-MuMER-train.yaml"], cwd=REPO, env=env2,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "MASTER_ADDR" in res.stderr
    res = subprocess.run(["bash", str(TRAIN_SH), "--help"], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "NODE_RANK" in res.stdout and "FORCE_TORCHRUN" in res.stdout
