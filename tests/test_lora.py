"""Parameter-efficient fine-tuning: LoRA training through scripts/train.sh for each family, the two-stage
recipe (stage 2 continues stage 1's adapter), the adapter at inference (``--lora``: vLLM LoRA request and peft) equal
to LLaMA-Factory's merged export, and the adapter checks (missing / other base model -> one ``error:`` line before
any engine starts).

Real configs of ``train/lora/`` with the model swapped for the tiny model of the family and the data for the five
task datasets built from real CROHME train images (``crohme_train_data``); inference on real CROHME 2014 test images.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_smoke import CPU_OVERRIDES, launch, losses

from unimumer.errors import InputError
from unimumer.files import sharegpt_record, write_json
from unimumer.inference.adapters import check_adapter
from unimumer.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
STAGE1 = "lora/two-stage/stage1-printed-Qwen2.5-VL-3B.yaml"
STAGE2 = "lora/two-stage/stage2-handwritten-Qwen2.5-VL-3B.yaml"
# family -> (LoRA config, tiny-model fixture); Qwen2.5-VL trains through the two-stage recipe's stage 1
LORA_FAMILIES = {
    "qwen2_5_vl": (STAGE1, "tiny_qwen2_5_vl"),
    "qwen3_vl": ("lora/Uni-MuMER-LoRA-Qwen3-VL-2B.yaml", "tiny_qwen3_vl"),
    "qwen3_5": ("lora/Uni-MuMER-LoRA-Qwen3.5-2B.yaml", "tiny_qwen3_5"),
}
INFER = ["--temperature", "0", "--max-tokens", "12", "--dtype", "float32", "--enforce-eager", "--no-report"]


def _train(config: str, model: Path, data, out: Path, tmp: Path, *extra: str, check: bool = False):
    overrides = [f"model_name_or_path={model}", f"dataset_dir={data.root}", f"dataset={','.join(data.names)}",
                 f"output_dir={out}", *CPU_OVERRIDES, *extra]
    res = launch(config, overrides, tmp, check=check)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    return log


def _tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


@pytest.fixture(scope="session")
def lora_runs(tmp_path_factory, crohme_train_data, request):
    """Factory ``lora_runs(family) -> (adapter dir, training log)``: each family trained once per session."""
    done: dict[str, tuple[Path, str]] = {}

    def get(family: str):
        if family not in done:
            config, fixture = LORA_FAMILIES[family]
            tmp = tmp_path_factory.mktemp(f"lora_{family}")
            out = tmp / "adapter"
            log = _train(config, request.getfixturevalue(fixture), crohme_train_data, out, tmp,
                         check=family == "qwen2_5_vl")
            done[family] = (out, log)
        return done[family]

    return get


@pytest.fixture(scope="module")
def prompts(tmp_path_factory, crohme_samples) -> Path:
    """A prompt folder (official layout) of four real CROHME 2014 test images, vanilla recognition."""
    root = tmp_path_factory.mktemp("lora_prompts")
    rows = [sharegpt_record(str(s.path), TASKS["vanilla"].prompt(), s.caption) for s in crohme_samples[:4]]
    write_json(root / "crohme_2014.json", rows)
    return root


def _infer(model: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    res = subprocess.run([PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(model), "--input-dir", str(prompts),
                          "--output-dir", str(out), *INFER, *extra], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return [r["pred"] for r in json.loads((out / "crohme_2014_pred.json").read_text(encoding="utf-8"))]


def _hf_in_process(model: Path, prompts: Path) -> list[str]:
    """The ``pred`` values ``vllm_infer.py --backend hf`` writes for ``prompts`` with :data:`INFER`'s settings
    (greedy, 12 tokens, float32; the four records are one batch), made in this process without a CLI start:
    the runner's :func:`~unimumer.inference.runner.batch_records` on a transformers engine."""
    from unimumer.inference.engines import make_engine
    from unimumer.inference.jobs import read_prompt_file
    from unimumer.inference.runner import batch_records
    from unimumer.inference.settings import GenerationSettings

    engine = make_engine("hf", str(model), GenerationSettings(max_tokens=12, temperature=0), dtype="float32")
    items = read_prompt_file(prompts / "crohme_2014.json")
    records = dict(batch_records(engine, items, None, raw=False))
    assert all(not r.get("error") for r in records.values()), records
    return [records[it.index]["pred"] for it in items]


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(LORA_FAMILIES))
def test_lora_config_trains_an_adapter_through_train_sh(family, lora_runs, request):
    adapter, log = lora_runs(family)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    tiny = request.getfixturevalue(LORA_FAMILIES[family][1])
    # the config's LoRA settings reach PEFT: rank 64, alpha 128, on the language model's linear layers only
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 64 and cfg["lora_alpha"] == 128
    assert cfg["base_model_name_or_path"] == str(tiny)
    targets = cfg["target_modules"]
    assert targets and all("language_model" in t for t in targets), targets
    assert not any("visual" in t or "merger" in t or "lm_head" in t for t in targets)
    assert any(t.endswith("mlp.down_proj") for t in targets)
    assert "Fine-tuning method: LoRA" in log and "Initializing 1 distributed tasks" in log
    ls = losses(adapter)
    assert len(ls) == 2 and all(math.isfinite(v) for v in ls), ls
    # trained: lora_B starts at zero in PEFT, after two steps it is not; no full model was written
    w = _tensors(adapter)
    assert any(k.endswith("lora_B.weight") and w[k].abs().max() > 0 for k in w)
    assert not (adapter / "model.safetensors").exists()
    assert check_adapter(adapter, str(tiny)).rank == 64


@pytest.mark.slow
def test_stage2_continues_stage1_adapter(lora_runs, tiny_qwen2_5_vl, crohme_train_data, tmp_path):
    stage1, _ = lora_runs("qwen2_5_vl")
    out = tmp_path / "stage2"
    # through the launcher's check (check_config validates the adapter against the base model), then training
    log = _train(STAGE2, tiny_qwen2_5_vl, crohme_train_data, out, tmp_path, f"adapter_name_or_path={stage1}",
                 check=True)
    assert f"adapter {stage1}: LoRA rank 64" in log and ": OK" in log
    assert f"Loaded adapter(s): {stage1}" in log
    w1, w2 = _tensors(stage1), _tensors(out)
    assert set(w1) == set(w2)
    import torch

    # continued, not re-initialised: every lora_A stays within 10 % of stage 1's (a fresh adapter draws a new
    # random A: ~140 % away), every lora_B was trained further and still points where stage 1's did (a fresh B
    # starts at zero and would be unrelated to stage 1's: cosine ~0)
    for k in w1:
        if k.endswith("lora_A.weight"):
            assert (w2[k] - w1[k]).norm() < 0.1 * w1[k].norm(), k
        else:
            assert not torch.equal(w1[k], w2[k]), k
            assert torch.nn.functional.cosine_similarity(w1[k].flatten(), w2[k].flatten(), dim=0) > 0.7, k
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 64


# ------------------------------------------------------------------------------------------------ inference
@pytest.mark.slow
def test_lora_outputs_equal_the_merged_export_with_vllm_and_hf(lora_runs, tiny_qwen2_5_vl, prompts, tmp_path,
                                                               crohme_samples):
    adapter, _ = lora_runs("qwen2_5_vl")
    merged = tmp_path / "merged"
    res = subprocess.run([PY, str(REPO / "scripts/export_model.py"), "--model", str(tiny_qwen2_5_vl), "--lora",
                          str(adapter), "--output", str(merged), "--dtype", "float32"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert not (merged / "adapter_config.json").exists()  # a plain full checkpoint
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged.")]  # temp folder renamed away

    # the two reference runs (no CLI under test) in this process, through the runner's own batch path
    base = _hf_in_process(tiny_qwen2_5_vl, prompts)
    from_merged = _hf_in_process(merged, prompts)
    hf_lora = _infer(tiny_qwen2_5_vl, prompts, tmp_path / "hf_lora", "--backend", "hf", "--lora", str(adapter))
    vllm_lora = _infer(tiny_qwen2_5_vl, prompts, tmp_path / "vllm_lora", "--lora", str(adapter))
    assert hf_lora == from_merged
    assert vllm_lora == from_merged  # vLLM LoRA request on the base = the merged checkpoint (hf == vLLM: tests/test_infer_engines.py)
    assert base != from_merged  # the adapter changes the outputs, so the equality above is not vacuous
    # predict.py --lora prints the same LaTeX
    imgs = [str(s.path) for s in crohme_samples[:2]]
    res = subprocess.run([PY, str(REPO / "scripts/predict.py"), "--model", str(tiny_qwen2_5_vl), "--lora",
                          str(adapter), "--backend", "hf", "--dtype", "float32", "--max-tokens", "12", "--plain",
                          *imgs], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == [" ".join(p.splitlines()) for p in from_merged[:2]]
    # the error corpus's sampling child serves a LoRA fold model (its adapter folder) with the adapter applied
    samples = tmp_path / "fold_samples_pred.json"
    res = subprocess.run([PY, "-m", "unimumer.commands.sample_child", "--heldout", str(prompts / "crohme_2014.json"),
                          "--model", str(adapter), "--output", str(samples), "--samples", "1", "--temperature", "0",
                          "--max-tokens", "12", "--engine-kwargs", json.dumps({"dtype": "float32",
                                                                                "enforce_eager": True})],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["pred"] for r in json.loads(samples.read_text(encoding="utf-8"))] == from_merged
    # the web server's --lora (predict.py's parser): the API answers the merged export's LaTeX
    from test_serve import _one_line, _post, _start, _stop

    proc, url = _start(tiny_qwen2_5_vl, "--lora", str(adapter), "--backend", "hf", "--dtype", "float32",
                       "--max-tokens", "12", log=tmp_path / "serve.log")
    try:
        res = _post(url, [(s.path.name, s.path.read_bytes()) for s in crohme_samples[:4]])
        assert res.status_code == 200, res.text
        assert [_one_line(r["latex"]) for r in res.json()["results"]] == [_one_line(p) for p in from_merged]
    finally:
        _stop(proc)


def _one_error_line(res: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stdout[-1000:] + res.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


@pytest.mark.slow
def test_mismatched_adapter_is_one_error_line_before_any_engine(lora_runs, tiny_qwen3_vl, tiny_qwen3_5, prompts,
                                                                tmp_path):
    adapter, _ = lora_runs("qwen2_5_vl")
    # another base model: the adapter records tiny Qwen2.5-VL, --model is tiny Qwen3-VL (same linear shapes!)
    for backend in ("vllm", "hf"):
        res = subprocess.run([PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(tiny_qwen3_vl), "--lora",
                              str(adapter), "--input-dir", str(prompts), "--output-dir", str(tmp_path / backend),
                              "--backend", backend, *INFER], capture_output=True, text=True, timeout=300)
        _one_error_line(res, "another model", "model_type qwen2_5_vl vs qwen3_vl")
        assert not (tmp_path / backend).exists()  # failed before the output folder was made
    # the adapter's base recorded as a Hub id (not checkable here): the shapes decide; Qwen3.5's first layer is
    # linear attention (no q_proj), so the adapter does not fit
    hub = tmp_path / "hub_adapter"
    shutil.copytree(adapter, hub, ignore=shutil.ignore_patterns("checkpoint-*"))
    cfg = json.loads((hub / "adapter_config.json").read_text())
    (hub / "adapter_config.json").write_text(json.dumps(dict(cfg, base_model_name_or_path="Qwen/Qwen2.5-VL-3B")))
    res = subprocess.run([PY, str(REPO / "scripts/predict.py"), "--model", str(tiny_qwen3_5), "--lora", str(hub),
                          "--backend", "vllm", str(prompts / "crohme_2014.json")], capture_output=True, text=True,
                         timeout=300)
    _one_error_line(res, "layers.0.self_attn", "another base model")
    res = subprocess.run([PY, str(REPO / "scripts/export_model.py"), "--model", str(tiny_qwen3_vl), "--lora",
                          str(adapter), "--output", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    _one_error_line(res, "another model")
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="another model"):
        check_adapter(adapter, str(tiny_qwen3_vl))


def test_missing_adapter_is_one_error_line(tiny_qwen2_5_vl, tmp_path):
    prompts = tmp_path / "prompts"
    write_json(prompts / "crohme_2014.json", [sharegpt_record("x.png", TASKS["vanilla"].prompt(), "x")])
    not_peft = tmp_path / "full_model"
    not_peft.mkdir()
    (not_peft / "config.json").write_text("{}")
    for lora, needle in [(tmp_path / "nope", "no such adapter folder"), (not_peft, "no adapter_config.json")]:
        res = subprocess.run([PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(tiny_qwen2_5_vl), "--lora",
                              str(lora), "--input-dir", str(prompts), "--output-dir", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=300, env={**os.environ})
        _one_error_line(res, str(lora), needle)
        res = subprocess.run([PY, str(REPO / "scripts/predict.py"), "--model", str(tiny_qwen2_5_vl), "--lora",
                              str(lora), "--backend", "hf", "x.png"], capture_output=True, text=True, timeout=300)
        _one_error_line(res, needle)
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    with pytest.raises(InputError, match="no adapter weights"):
        check_adapter(weightless, str(tiny_qwen2_5_vl))


def test_eval_scripts_pass_the_adapter_to_vllm_infer(tiny_qwen2_5_vl, tmp_path):
    # -l reaches vllm_infer.py --lora (echoed command) and its adapter check (a missing adapter: exit 2 at once)
    write_json(tmp_path / "data/CROHME/prompts/crohme_2014.json",
               [sharegpt_record("./data/CROHME/2014/images/x.png", TASKS["vanilla"].prompt(), "x")])
    env = {**os.environ, "PYTHON": PY}
    res = subprocess.run(["bash", str(REPO / "eval/eval_crohme.sh"), "-m", str(tiny_qwen2_5_vl), "-l",
                          str(tmp_path / "nope")], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and f"--lora {tmp_path / 'nope'}" in res.stderr
    assert f"error: --lora {tmp_path / 'nope'}: no such adapter folder" in res.stderr
    res = subprocess.run(["bash", str(REPO / "eval/eval_all.sh"), "-m", str(tiny_qwen2_5_vl), "--lora",
                          str(tmp_path / "nope")], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 1 and "LoRA adapter" in res.stdout and "no such adapter folder" in res.stderr
    assert "[ERROR] CROHME failed" in res.stderr


@pytest.mark.slow
def test_error_corpus_serves_a_lora_fold_model_on_its_base(lora_runs, tiny_qwen2_5_vl):
    # a fold trained with a LoRA base config saves an adapter: sampling serves it on the recorded base model
    from unimumer.edl.corpus import _model_and_adapter

    adapter, _ = lora_runs("qwen2_5_vl")
    assert _model_and_adapter(adapter) == (str(tiny_qwen2_5_vl), str(adapter))
    assert _model_and_adapter(tiny_qwen2_5_vl) == (str(tiny_qwen2_5_vl), None)
