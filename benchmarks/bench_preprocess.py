#!/usr/bin/env python
"""Benchmark: Tree-CoT + symbol-counting data building, unimumer vs a straightforward recursive implementation.

Inputs: the official reference inputs together (``tests/fixtures/reference/tree_cot/*_input.json``: 3,288 vanilla
records, CROHME 2014 / 2023 and the sample), then the same records cycled to ``--records`` (default 1,600,000, the
size of the Uni-MuMER training mixture).

Compared:
- ``recursive``: :mod:`unimumer.latex.reference`, the spec implemented the way the official tool is written (one
  recursive call per token, token lists copied and consumed with ``pop(0)``), in the official pipeline shape
  (``json.load`` the whole file, convert every record, ``json.dump`` the list): single core;
- ``unimumer``: :mod:`unimumer.latex.tree` (iterative, precomputed bracket matches) and
  :func:`unimumer.data.training_sets.build_training_set` (ijson streaming, chunks on a process pool, bounded memory),
  single core (``--workers 1``) and all cores.

Part A times the targets alone in-process (best of ``--repeat``; outputs checked identical) and a 5,000-token
expression. Part B writes the ``_tree`` and ``_can`` files for ``--records`` records, each run in a fresh process
(wall time; peak RSS of the process tree and of its largest process, sampled from /proc) and checks that both
implementations wrote byte-identical files.

Prints a Markdown report and writes it to benchmarks/results/bench_preprocess.md.
Usage: .venv/bin/python benchmarks/bench_preprocess.py [--records 1600000] [--repeat 3] [--workdir DIR]
(Part B needs ~3 GB of disk in the work folder and ~8 GB of RAM for the recursive in-memory pipeline; run it under
``flock /tmp/unimumer-heavy.lock`` on shared machines.)
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

from unimumer.files import atomic_write_text  # noqa: E402
from unimumer.latex.counting import build_count_target  # noqa: E402
from unimumer.latex.reference import reference_tree  # noqa: E402
from unimumer.latex.tree import TreeParseError, build_tree_target  # noqa: E402

TREE_COT = ROOT / "tests" / "fixtures" / "reference" / "tree_cot"
INPUTS = ("sample_input.json", "crohme_2014_input.json", "crohme2023_test_input.json")


def reference_records() -> list[dict]:
    out: list[dict] = []
    for name in INPUTS:
        out += json.loads((TREE_COT / name).read_text(encoding="utf-8"))
    return out


def _targets(latexes: list[str], tree) -> tuple[list, int]:
    out, skipped = [], 0
    for latex in latexes:
        try:
            out.append(tree(latex))
        except TreeParseError:
            skipped += 1
        out.append(build_count_target(latex))
    return out, skipped


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def part_a(repeat: int) -> list[str]:
    latexes = [r["messages"][1]["value"] for r in reference_records()]

    def ours():
        return _targets(latexes, build_tree_target)

    def recursive():
        return _targets(latexes, lambda x: f"{reference_tree(x)}\n{x}")

    ours()
    recursive()  # warm-up
    t_ours, r_ours = _best(ours, repeat)
    t_ref, r_ref = _best(recursive, repeat)
    assert r_ours == r_ref, "implementations disagree"
    n = len(latexes)
    long_expr = " ".join(["\\frac { a _ { i } } { b } +"] * 500)  # 5,500 tokens
    t_long, _ = _best(lambda: build_tree_target(long_expr), repeat)
    deep = " ".join(["x ^ {"] * 2000) + " y " + " ".join(["}"] * 2000)
    t_deep, _ = _best(lambda: build_tree_target(deep), repeat)
    ref_long = ref_deep = "RecursionError"
    for expr, label in ((long_expr, "long"), (deep, "deep")):
        try:
            reference_tree(expr)
            if label == "long":
                ref_long = "ok"
            else:
                ref_deep = "ok"
        except RecursionError:
            pass
    return [
        "## A. Targets in-process (single core)",
        "",
        f"{n:,} reference records (tree + counting targets each; {r_ours[1]} tree skips, identical outputs).",
        "",
        "| implementation | time (s) | records/s | speed-up |",
        "|---|---:|---:|---:|",
        f"| recursive reference | {t_ref:.3f} | {n / t_ref:,.0f} | 1.00 |",
        f"| unimumer (iterative) | {t_ours:.3f} | {n / t_ours:,.0f} | {t_ref / t_ours:.2f} |",
        "",
        "| expression | unimumer | recursive reference |",
        "|---|---:|---:|",
        f"| 5,500 tokens, flat | {t_long * 1000:.1f} ms | {ref_long} |",
        f"| 4,001 tokens, nesting depth 2,000 | {t_deep * 1000:.1f} ms | {ref_deep} |",
        "",
    ]


_RECURSIVE_PIPELINE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from unimumer.latex.reference import reference_tree
from unimumer.latex.tree import TreeParseError
from unimumer.latex.counting import build_count_target
from unimumer.files import sharegpt_record
from unimumer.tasks import TASKS
src, out_tree, out_can = sys.argv[2:5]
data = json.load(open(src, encoding="utf-8"))
tree, can = [], []
for rec in data:
    image, latex = rec["images"][0], rec["messages"][1]["value"]
    try:
        tree.append(sharegpt_record(image, TASKS["tree"].prompt(), f"{reference_tree(latex)}\n{latex}"))
    except TreeParseError:
        pass
    can.append(sharegpt_record(image, TASKS["can"].prompt(), build_count_target(latex)))
json.dump(tree, open(out_tree, "w", encoding="utf-8"), ensure_ascii=False, indent=4)
json.dump(can, open(out_can, "w", encoding="utf-8"), ensure_ascii=False, indent=4)
"""

_UNIMUMER_PIPELINE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from unimumer.data.training_sets import build_training_set
src, out_dir, workers = sys.argv[2], sys.argv[3], int(sys.argv[4])
build_training_set(src, "bench", ("tree", "can"), out_dir, workers=workers, register=False)
"""


def _tree_rss_mib(root: int) -> tuple[float, float]:
    """(total, largest) resident set size in MiB of ``root`` and its descendants, read from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    sizes = [rss.get(p, 0) for p in tree]
    return sum(sizes) / 2**20, max(sizes) / 2**20


def _run(code: str, args: list[str]) -> tuple[float, float, float]:
    """Run ``code`` in a fresh interpreter: (wall seconds, peak total RSS MiB of its process tree, peak RSS MiB
    of its largest process), RSS sampled from /proc every 0.2 s."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), *args], stdout=subprocess.DEVNULL)
    peak_total = peak_one = 0.0
    while proc.poll() is None:
        total, one = _tree_rss_mib(proc.pid)
        peak_total, peak_one = max(peak_total, total), max(peak_one, one)
        time.sleep(0.2)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run failed (status {proc.returncode}): {args}")
    return wall, peak_total, peak_one


def part_b(n: int, workdir: Path) -> list[str]:
    from unimumer.files import write_json_stream

    base = reference_records()
    src = workdir / "vanilla.json"
    write_json_stream(src, (base[i % len(base)] for i in range(n)), indent=4)
    size_mb = src.stat().st_size / 2**20
    rows = []
    ref_tree, ref_can = workdir / "ref_tree.json", workdir / "ref_can.json"
    wall, total, one = _run(_RECURSIVE_PIPELINE, [str(src), str(ref_tree), str(ref_can)])
    rows.append(("recursive reference, whole file in memory", 1, wall, total, one))
    cores = os.cpu_count() or 1
    for workers in sorted({1, cores}):
        out = workdir / f"ours_{workers}"
        wall, total, one = _run(_UNIMUMER_PIPELINE, [str(src), str(out), str(workers)])
        label = "in-process" if workers == 1 else f"pool of {workers} workers + reader/writer"
        rows.append((f"unimumer build_training_set, {label}", workers, wall, total, one))
        for a, b in ((out / "bench_tree.json", ref_tree), (out / "bench_can.json", ref_can)):
            if a.read_bytes() != b.read_bytes():
                raise SystemExit(f"{a} differs from {b}")
    lines = [
        f"## B. {n:,} records, files written (tree + can)",
        "",
        f"Input: {size_mb:,.0f} MiB vanilla ShareGPT JSON (the reference records cycled). Outputs of every run are"
        " byte-identical. RSS sampled from /proc every 0.2 s: peak of the whole process tree and of its largest"
        " process.",
        "",
        "| pipeline | cores | wall (s) | records/s | peak RSS total (MiB) | peak RSS largest process (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, cores_used, wall, total, one in rows:
        lines.append(f"| {label} | {cores_used} | {wall:.1f} | {n / wall:,.0f} | {total:,.0f} | {one:,.0f} |")
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_600_000, help="records of part B (0 = skip part B)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of part A (best is kept)")
    parser.add_argument("--workdir", help="folder for part B's files (default: a temporary folder, removed)")
    args = parser.parse_args()
    header = [
        "# bench_preprocess: Tree-CoT + symbol counting",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores. "
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
    ]
    lines = header + part_a(args.repeat)
    if args.records > 0:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            lines += part_b(args.records, Path(args.workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="bench_preprocess.") as tmp:
                lines += part_b(args.records, Path(tmp))
    text = "\n".join(lines)
    print(text)
    atomic_write_text(ROOT / "benchmarks" / "results" / "bench_preprocess.md", text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
