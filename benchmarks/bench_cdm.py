#!/usr/bin/env python
"""Benchmark ExpRate@CDM (unimumer.cdm): seconds per sample on one core and on all cores, cold cache.

Input: a prediction file (default ``../shared/reference/uni-mumer/paper_final/crohme_2014.json``, 986 CROHME 2014
samples behind the paper's numbers). Prints, and writes to ``benchmarks/results/bench_cdm.md``:
wall seconds and core-seconds (CPU time of this process and every child: workers, pdflatex, pdftoppm) per sample
for ``workers=1`` and ``workers=<all cores>`` with an empty cache, the warm-cache re-run, and the ExpRate@CDM
obtained (with the plain ExpRate beside it), and the agreement with the official toolkit on
``../shared/reference/cdm/official_crohme2014_40.json``. Reference: the official UniMERNet toolkit needs ≈ 2.7 core-seconds
per sample; the target here is ≤ 0.3.

Usage: ``python benchmarks/bench_cdm.py [--input PRED.json] [--limit N] [--workers N]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unimumer.cdm import evaluate_cdm  # noqa: E402
from unimumer.files import atomic_write_text, read_json, read_json_list  # noqa: E402
from unimumer.paths import shared_dir  # noqa: E402


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(records, **kw):
    cpu0, t0 = _cpu(), time.perf_counter()
    result = evaluate_cdm(records, **kw)
    return result, time.perf_counter() - t0, _cpu() - cpu0


def main() -> int:
    default = shared_dir() / "reference" / "uni-mumer" / "paper_final" / "crohme_2014.json"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(default), help="prediction file with gt/pred (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N samples")
    ap.add_argument("--workers", type=int, default=None, help="'all cores' run: this many workers")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "bench_cdm.md"))
    args = ap.parse_args()

    records = read_json_list(args.input)[: args.limit]
    n = len(records)
    cores = args.workers or len(os.sched_getaffinity(0))
    exact = sum(r["gt"].split() == r["pred"].split() for r in records)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cdm-") as tmp:
        one, wall1, cpu1 = _timed(records, workers=1, cache_dir=Path(tmp) / "c1")
        rows.append(("1 worker, cold cache", wall1, cpu1))
        many, walln, cpun = _timed(records, workers=cores, cache_dir=Path(tmp) / "cn")
        rows.append((f"{cores} workers, cold cache", walln, cpun))
        _, wallw, cpuw = _timed(records, workers=cores, cache_dir=Path(tmp) / "cn")
        rows.append((f"{cores} workers, warm cache", wallw, cpuw))
    same = [s["f1"] for s in one["samples"]] == [s["f1"] for s in many["samples"]]
    ref_path = shared_dir() / "reference" / "cdm" / "official_crohme2014_40.json"
    official = read_json(ref_path)["samples"]
    ours = evaluate_cdm(official, workers=cores, use_cache=False)["samples"]
    agree = sum((o["f1"] == 1.0) == (s["f1"] == 1.0) for o, s in zip(official, ours, strict=True))
    differ = [o["img_id"] for o, s in zip(official, ours, strict=True) if (o["f1"] == 1.0) != (s["f1"] == 1.0)]
    tex = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    lines = [
        "# bench_cdm — ExpRate@CDM (unimumer.cdm)",
        "",
        f"Input: `{args.input}` ({n} samples). Machine: {platform.platform()}, {os.cpu_count()} CPUs "
        f"({cores} used), Python {platform.python_version()}, {tex}.",
        "Command: `python benchmarks/bench_cdm.py" + (f" --input {args.input}" if args.input != str(default) else "")
        + (f" --limit {args.limit}" if args.limit else "") + "`",
        "",
        "| run | wall s | wall s / sample | core-s | core-s / sample |",
        "|---|---|---|---|---|",
    ]
    for name, wall, cpu in rows:
        lines.append(f"| {name} | {wall:.2f} | {wall / n:.4f} | {cpu:.2f} | {cpu / n:.4f} |")
    lines += [
        "",
        f"ExpRate@CDM: **{many['exprate_cdm']:.4f} %** ({many['evaluated']} evaluated, "
        f"{len(many['excluded'])} excluded (gt not renderable: {many['excluded']}), "
        f"{many['pred_render_failures']} pred not renderable, mean F1 {many['mean_f1']:.4f}); "
        f"plain ExpRate (token-exact) {100 * exact / n:.4f} %.",
        f"Per-sample F1 identical for 1 and {cores} workers: {same}.",
        f"Official toolkit (`{ref_path.name}`): the decision F1 = 1 agrees on {agree}/{len(official)} samples"
        + (f" (differs: {', '.join(differ)})." if differ else "."),
        "Target: ≤ 0.3 core-seconds per sample (official UniMERNet CDM toolkit ≈ 2.7).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
