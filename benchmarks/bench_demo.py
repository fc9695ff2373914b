#!/usr/bin/env python
"""Benchmark: ``make demo``'s pipeline (``scripts/demo.py`` with its shipped defaults) run twice in a row.

Each run is ``.venv/bin/python scripts/demo.py --output-dir DIR`` in a clean environment (only ``PATH`` and
``HOME``, as ``env -i`` leaves; the CPU defaults come from the venv's ``.pth`` hook), the second in the same folder
(the demo starts it afresh). Reported per run: exit code, wall time of the command (imports and engine starts
included) and the demo's own stage times (``summary.json``); the environment install (``make env``) is not timed.

Prints a Markdown report and writes it to benchmarks/results/bench_demo.md.
Usage: flock /tmp/unimumer-heavy.lock .venv/bin/python benchmarks/bench_demo.py [--runs 2] [--workdir DIR]
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2, help="demo runs in a row (default 2)")
    p.add_argument("--workdir", default=None, help="folder for the demo output (default: a temporary folder)")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_demo_"))
    out = work / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    rows = []
    for i in range(a.runs):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "scripts/demo.py", "--output-dir", str(out)], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall = time.time() - t0
        stages = {}
        if proc.returncode == 0:
            stages = json.loads((out / "summary.json").read_text())["stage_seconds"]
        else:
            print(proc.stderr[-3000:], file=sys.stderr)
        rows.append({"run": i + 1, "rc": proc.returncode, "wall": wall, "stages": stages})
        print(f"run {i + 1}: exit {proc.returncode}, {wall:.0f} s", file=sys.stderr)
    names = list(rows[0]["stages"]) or ["model", "data", "edl", "configs", "train", "infer", "official", "summary"]
    lines = [
        "# bench_demo: `scripts/demo.py` with the shipped defaults, clean environment",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "defaults: 48 train + 48 test images, K = 2 folds, N = 2 candidates, 24 new tokens, 4 training steps.",
        f"Command: `flock /tmp/unimumer-heavy.lock {Path(sys.executable).name} benchmarks/bench_demo.py "
        f"--runs {a.runs}` (each run: `env -i PATH=/usr/bin:/bin HOME=$HOME .venv/bin/python scripts/demo.py`).",
        "",
        "| run | exit | wall (s) | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for r in rows:
        lines.append(f"| {r['run']} | {r['rc']} | {r['wall']:.0f} | "
                     + " | ".join(f"{r['stages'].get(n, float('nan')):.1f}" for n in names) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    dst = ROOT / "benchmarks" / "results" / "bench_demo.md"
    dst.write_text(report, encoding="utf-8")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
