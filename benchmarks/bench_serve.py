#!/usr/bin/env python
"""Benchmark: the web demo / JSON API of ``scripts/serve.py`` (start-up, latency, what request batching buys).

Inputs: the 48 real CROHME 2014 test images bundled in ``data/sample/crohme/2014/img``, the tiny Qwen2.5-VL
checkpoint (:mod:`unimumer.testing.tiny_models`), greedy decoding, float32, ``--max-tokens`` (default 24). For each backend
(``--backends``, default ``hf vllm``; vLLM with ``--enforce-eager``), one server process is started and measured:

- start: from process start to the first ``GET /health`` answer (imports, engine start, Gradio page build);
- sequential: the 48 images, one request at a time (latency per request: median and max);
- concurrent: the 48 images as 48 single-image requests sent at once (16 client threads) — the server generates
  whatever is queued as one batch;
- one request: the 48 images in one multipart request (one batch).

Every answer is compared with the sequential one for the same image (greedy: must agree). Prints a Markdown report
and writes it to ``benchmarks/results/bench_serve.md``.
Usage: flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_serve.py [--max-tokens 24] [--backends hf]
"""

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENV = {"DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
       "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_backend(backend: str, model: Path, images: list[Path], max_tokens: int, log: Path) -> dict:
    """Start one server, measure it, stop it. Returns the measurements (seconds) and the agreement counts."""
    import httpx

    port = _port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(ROOT / "scripts/serve.py"), "--model", str(model), "--port", str(port),
           "--backend", backend, "--max-tokens", str(max_tokens), "--dtype", "float32", "--max-images", "64"]
    if backend == "vllm":
        cmd.append("--enforce-eager")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **ENV})
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        start = time.perf_counter() - t0
        data = {p: p.read_bytes() for p in images}

        def one(p: Path) -> tuple[float, str]:
            t = time.perf_counter()
            r = httpx.post(url + "/api/predict", files=[("image", (p.name, data[p]))], timeout=600)
            r.raise_for_status()
            return time.perf_counter() - t, r.json()["latex"]

        one(images[0])  # warm-up
        t = time.perf_counter()
        seq = [one(p) for p in images]
        seq_wall = time.perf_counter() - t
        ref = [latex for _, latex in seq]
        t = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            conc = list(pool.map(one, images))
        conc_wall = time.perf_counter() - t
        t = time.perf_counter()
        r = httpx.post(url + "/api/predict", files=[("image", (p.name, data[p])) for p in images], timeout=600)
        r.raise_for_status()
        batch_wall = time.perf_counter() - t
        batch = [x["latex"] for x in r.json()["results"]]
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    lat = [s for s, _ in seq]
    return {
        "start": start, "seq_wall": seq_wall, "lat_median": statistics.median(lat), "lat_max": max(lat),
        "conc_wall": conc_wall, "batch_wall": batch_wall,
        "conc_equal": sum(a == b for (_, a), b in zip(conc, ref, strict=True)),
        "batch_equal": sum(a == b for a, b in zip(batch, ref, strict=True)), "n": len(images),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--backends", nargs="+", choices=("hf", "vllm"), default=["hf", "vllm"])
    a = ap.parse_args()
    for k, v in ENV.items():
        os.environ.setdefault(k, v)
    from unimumer.files import atomic_write_text
    from unimumer.testing.tiny_models import cached_tiny_model

    model = cached_tiny_model("qwen2_5_vl", Path(os.environ.get("UNIMUMER_TINY_CACHE", ROOT / ".cache/tiny_models")))
    images = sorted((ROOT / "data/sample/crohme/2014/img").glob("*.png"))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in a.backends:
            rows[backend] = run_backend(backend, model, images, a.max_tokens, Path(tmp) / f"{backend}.log")
            print(backend, rows[backend], flush=True)
    n = len(images)
    lines = [
        "# bench_serve: `scripts/serve.py` (web page + JSON API) start-up, latency and request batching",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU; tiny Qwen2.5-VL (2 layers, float32), "
        f"greedy, `--max-tokens {a.max_tokens}`. Inputs: {n} real CROHME 2014 test images "
        "(`data/sample/crohme/2014/img`), vanilla task, over HTTP on localhost (httpx client).",
        "",
        "| backend | start → /health (s) | sequential: wall (s) | latency median / max (s) | "
        f"{n} concurrent requests: wall (s) | one {n}-image request: wall (s) | answers equal to sequential |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b, r in rows.items():
        lines.append(f"| {b} | {r['start']:.1f} | {r['seq_wall']:.2f} | {r['lat_median']:.3f} / {r['lat_max']:.3f} | "
                     f"{r['conc_wall']:.2f} | {r['batch_wall']:.2f} | concurrent {r['conc_equal']}/{n}, "
                     f"one request {r['batch_equal']}/{n} |")
    ratios = "; ".join(f"{b}: concurrent {r['seq_wall'] / r['conc_wall']:.2f}x, one request "
                       f"{r['seq_wall'] / r['batch_wall']:.2f}x" for b, r in rows.items())
    lines += [
        "",
        f"Throughput relative to sequential requests ({ratios}).",
        "",
        "Reading: requests that arrive while the engine is busy are generated together as the next batch, and a "
        "multi-image request is one batch; with greedy decoding the answers do not depend on how requests were "
        "grouped (checked above). With vLLM (continuous batching, the GPU path) grouping pays off even on this CPU. "
        "The transformers backend pads a batch and decodes until its longest output ends, so it gains less, and on "
        "2 CPU cores shared with other jobs (HTTP handling and the client threads compete with generation for the "
        "same cores) grouped requests were once measured slower than sequential ones (8.2 s vs 4.8 s); it is the "
        "fallback for machines without vLLM. On a GPU the start-up is dominated by loading the weights.",
        "",
        f"Command: `flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_serve.py --max-tokens "
        f"{a.max_tokens} --backends {' '.join(a.backends)}`",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    atomic_write_text(ROOT / "benchmarks/results/bench_serve.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
