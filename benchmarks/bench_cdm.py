#!/usr/bin/env python
"""Benchmark ExpRate@CDM (unimumer.cdm): agreement with the official toolkit and the paper, and cost per sample.

Inputs (``tests/fixtures/``): the three ``reference/paper_final/crohme_{2014,2016,2019}.json`` prediction
files behind the paper's CROHME numbers (3,332 samples) and ``reference/cdm/official_crohme_inexact_half.json`` (the
official toolkit's per-sample scores for 340 token-inexact predictions). Prints, and writes to
``benchmarks/results/bench_cdm.md``:

- ExpRate@CDM per set and the average, default (official) mode, next to the token-exact ExpRate, the official
  UniMERNet toolkit run on this kind of machine (84.99 / 80.91 / 82.24, average 82.71) and the paper (average
  82.86) — goal: the average within ± 0.3 of both; the ``--mode strict`` variant beside it;
- per-sample agreement with the official toolkit on the visible half: the F1 = 1 decision (goal ≥ 98 %) and
  |F1 − official F1| ≤ 0.02 (goal ≥ 90 %);
- cold-cache wall seconds and core-seconds (CPU time of this process and of every child: pdflatex, pdftoppm)
  per sample for ``workers=1`` and ``workers=<all cores>`` over the three sets, and the warm-cache re-run
  (goal ≤ 0.02 core-s per sample; the official toolkit needs ≈ 1.0 here);
- whether per-sample F1 is identical for 1 and all workers (determinism).

Usage: ``python benchmarks/bench_cdm.py [--workers N] [--output FILE]``
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
FIXTURES = ROOT / "tests" / "fixtures" / "reference"
sys.path.insert(0, str(ROOT))

from unimumer.cdm import evaluate_cdm  # noqa: E402
from unimumer.files import atomic_write_text, read_json, read_json_list  # noqa: E402

YEARS = (2014, 2016, 2019)
OFFICIAL = {2014: 84.99, 2016: 80.91, 2019: 82.24}  # official UniMERNet toolkit on this kind of machine (issue #13)
OFFICIAL_AVG = 82.71
PAPER_AVG = 82.86


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(records, **kw):
    cpu0, t0 = _cpu(), time.perf_counter()
    result = evaluate_cdm(records, **kw)
    return result, time.perf_counter() - t0, _cpu() - cpu0


def _split(result: dict, sizes: list[int]) -> list[dict]:
    out, start = [], 0
    for n in sizes:
        samples = result["samples"][start:start + n]
        start += n
        scored = [s for s in samples if s["f1"] is not None and s["status"] != "gt_error"]
        out.append({"n": n, "evaluated": len(scored),
                    "exprate_cdm": 100.0 * sum(s["f1"] == 1.0 for s in scored) / max(len(scored), 1)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=None, help="'all cores' run: this many workers")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "bench_cdm.md"))
    args = ap.parse_args()

    paper = FIXTURES / "paper_final"
    sets = {y: read_json_list(paper / f"crohme_{y}.json") for y in YEARS}
    records = [dict(r, img_id=f"{y}/{r.get('img_id', i)}") for y in YEARS for i, r in enumerate(sets[y])]
    sizes = [len(sets[y]) for y in YEARS]
    n = len(records)
    cores = args.workers or len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cdm-") as tmp:
        one, wall1, cpu1 = _timed(records, workers=1, cache_dir=Path(tmp) / "c1")
        rows.append(("1 worker, cold cache", wall1, cpu1))
        many, walln, cpun = _timed(records, workers=cores, cache_dir=Path(tmp) / "cn")
        rows.append((f"{cores} workers, cold cache", walln, cpun))
        _, wallw, cpuw = _timed(records, workers=cores, cache_dir=Path(tmp) / "cn")
        rows.append((f"{cores} workers, warm cache", wallw, cpuw))
        strict = evaluate_cdm(records, workers=cores, cache_dir=Path(tmp) / "cn", mode="strict")
        half = read_json(FIXTURES / "cdm" / "official_crohme_inexact_half.json")["samples"]
        half_recs = [{"img_id": k, "gt": v["gt"], "pred": v["pred"]} for k, v in half.items()]
        ours = {s["img_id"]: s["f1"] for s in evaluate_cdm(half_recs, workers=cores,
                                                           cache_dir=Path(tmp) / "cn")["samples"]}
    same = [s["f1"] for s in one["samples"]] == [s["f1"] for s in many["samples"]]
    per_set, per_strict = _split(many, sizes), _split(strict, sizes)
    exact = [100.0 * sum(r["gt"].split() == r["pred"].split() for r in sets[y]) / len(sets[y]) for y in YEARS]
    avg = sum(s["exprate_cdm"] for s in per_set) / 3
    avg_strict = sum(s["exprate_cdm"] for s in per_strict) / 3
    agree = sum((v["F1_score"] == 1.0) == (ours[k] == 1.0) for k, v in half.items())
    close = sum(abs(v["F1_score"] - ours[k]) <= 0.02 for k, v in half.items())
    differ = [k for k, v in half.items() if (v["F1_score"] == 1.0) != (ours[k] == 1.0)]
    tex = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True).stdout.splitlines()[0]

    def row(name, values, average):
        return f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | **{average:.2f}** |"

    lines = [
        "# bench_cdm — ExpRate@CDM (unimumer.cdm)",
        "",
        f"Inputs: `tests/fixtures/reference/paper_final/crohme_{{2014,2016,2019}}.json` ({n} samples) and "
        "`tests/fixtures/reference/cdm/official_crohme_inexact_half.json` (340). "
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs ({cores} used), Python {platform.python_version()}, "
        f"{tex}.",
        "Command: `python benchmarks/bench_cdm.py`",
        "",
        "## ExpRate@CDM on the paper's predictions",
        "",
        "| | CROHME 2014 | 2016 | 2019 | average |",
        "|---|---|---|---|---|",
        row("ExpRate (token-exact)", exact, sum(exact) / 3),
        f"| paper, ExpRate@CDM | | | | **{PAPER_AVG:.2f}** |",
        row("official UniMERNet toolkit, run on this kind of machine", OFFICIAL.values(), OFFICIAL_AVG),
        row("unimumer `cdm_eval.py` (default, official mode)", [s["exprate_cdm"] for s in per_set], avg),
        row("unimumer `cdm_eval.py --mode strict` (not comparable)", [s["exprate_cdm"] for s in per_strict],
            avg_strict),
        "",
        f"Average − official toolkit: {avg - OFFICIAL_AVG:+.2f}; average − paper: {avg - PAPER_AVG:+.2f} "
        "(goal: both within ± 0.3). Excluded (gt not renderable): "
        f"{len(many['excluded'])}; pred not renderable: {many['pred_render_failures']}.",
        "",
        "## Per-sample agreement with the official toolkit (visible half, 340 token-inexact predictions)",
        "",
        f"- F1 = 1 decision agrees on **{agree}/340 ({100 * agree / 340:.1f} %)** (goal ≥ 98 %)"
        + (f"; differs: {', '.join(differ)}" if differ else ""),
        f"- |F1 − official F1| ≤ 0.02 on **{close}/340 ({100 * close / 340:.1f} %)** (goal ≥ 90 %)",
        f"- F1 = 1: {sum(f == 1.0 for f in ours.values())} here, "
        f"{sum(v['F1_score'] == 1.0 for v in half.values())} official",
        "",
        "## Cost (cold cache = every expression rendered)",
        "",
        "| run | wall s | wall s / sample | core-s | core-s / sample |",
        "|---|---|---|---|---|",
    ]
    for name, wall, cpu in rows:
        lines.append(f"| {name} | {wall:.2f} | {wall / n:.4f} | {cpu:.2f} | {cpu / n:.4f} |")
    lines += [
        "",
        f"Per-sample F1 identical for 1 and {cores} workers: {same}.",
        "Goal: ≤ 0.02 core-seconds per sample (the official toolkit: ≈ 1.0 on this kind of machine, 671 core-s for "
        "679 samples).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
