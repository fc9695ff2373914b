#!/usr/bin/env python
"""Benchmark: ``preprocess/make_mathnet_hmer_data.py process`` throughput, and the normalisation rules per visible set.

Part A runs :func:`unimumer.data.mathnet.process` (every step file written, as the CLI does) on a ``caption.txt``
(default: the gt of the bundled official prediction files ``tests/fixtures/reference/predictions/*_pred.json``,
7,284 records; ``--captions`` takes another one, e.g. the full CROHME ``train/caption.txt``) ``--repeat`` times
in-process and reports the best wall time and records / s (single core; the official tool needs MathNet, Node and
KaTeX and is not run).

Part B counts, for each bundled set (the ``data/sample/crohme`` captions, the gt of each bundled official
prediction file) and each ``--caption-dir`` folder given, the records kept by tokenise + normalise and the records
whose output each MathWriting rule (R3, R7, R8, R9, R10) can change (the records holding its trigger tokens: an upper bound).

Prints a Markdown report and writes it to benchmarks/results/bench_mathnet.md.
Usage: .venv/bin/python benchmarks/bench_mathnet.py [--repeat 3] [--captions FILE] [--caption-dir DIR ...]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unimumer.data.mathnet import process  # noqa: E402
from unimumer.latex.normalize import try_normalize  # noqa: E402
from unimumer.latex.tokenize import tokenize_latex  # noqa: E402

#: MathWriting rules and the tokens that trigger them (a record without these tokens is unchanged by the rule).
RULES = {
    "R7 vmatrix / Vmatrix / command delimiters": ("|", "\\|", "\\lbrack", "\\lbrace", "\\vert", "\\Vert", "\\lvert",
                                                  "\\lVert"),
    "R7 one-token \\begin{env}": (),
    "R7 array spec braced / use_only_c": ("{array}", "{tabular}"),
    "R3 \\operatorname spelled out": ("\\operatorname",),
    "R9 empty \\sqrt index": ("\\sqrt",),
}


PREDICTIONS = ROOT / "tests" / "fixtures" / "reference" / "predictions"


def _captions(f: Path) -> list[str]:
    lines = f.read_text(encoding="utf-8").splitlines()
    return [ln.split(None, 1)[1] for ln in lines if len(ln.split(None, 1)) == 2]


def visible_sets(caption_dirs: list[Path]) -> dict[str, list[str]]:
    """``{set name: captions}``: the bundled CROHME sample, the gt of each bundled prediction file, the extra dirs."""
    sets = {}
    for f in sorted((ROOT / "data" / "sample" / "crohme").glob("*/caption.txt")):
        sets[f"sample crohme/{f.parent.name}"] = _captions(f)
    for pred in sorted(PREDICTIONS.glob("*_pred.json")):
        sets[f"{pred.name.removesuffix('_pred.json')} gt"] = [r["gt"] for r in json.loads(pred.read_text("utf-8"))]
    for d in caption_dirs:
        sets[str(d)] = _captions(d / "caption.txt")
    return sets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--captions", help="caption.txt for part A (default: the bundled prediction files' gt)")
    ap.add_argument("--caption-dir", action="append", default=[], help="extra CROHME-style folder for part B")
    args = ap.parse_args()
    best, kept = float("inf"), 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.captions:
            captions, source = Path(args.captions), f"`{args.captions}`"
        else:
            captions, source = Path(tmp) / "caption.txt", "gt of the bundled official prediction files"
            rows = [r for f in sorted(PREDICTIONS.glob("*_pred.json")) for r in json.loads(f.read_text("utf-8"))]
            captions.write_text("".join(f"{i}\t{r['gt']}\n" for i, r in enumerate(rows)), encoding="utf-8")
        n = sum(1 for ln in captions.read_text(encoding="utf-8").splitlines() if ln.strip())
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = process(captions, Path(tmp) / "out", "data/CROHME/train/images", ".png", out=io.StringIO())
            best = min(best, time.perf_counter() - t)
            kept = res["kept"]
    out = [
        "# bench_mathnet: make_mathnet_hmer_data.py process, normalisation rules on the visible sets",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; single core.",
        "Command: `.venv/bin/python benchmarks/bench_mathnet.py`",
        "",
        f"## A. `process` throughput ({source}, all step files written)",
        "",
        "| records | kept | best wall time (s) | records / s |",
        "|---:|---:|---:|---:|",
        f"| {n:,} | {kept:,} | {best:.2f} | {n / best:,.0f} |",
        "",
        "## B. Records per visible set: kept, and touched by the MathWriting rules",
        "",
        "Per rule: the records that hold the rule's trigger (an upper bound of the records it can change; with no",
        "trigger the rule cannot fire). Kept: records that pass tokenise + normalise.",
        "",
        "| set | records | kept | " + " | ".join(RULES) + " |",
        "|---|---:|---:|" + "---:|" * len(RULES),
    ]
    for name, caps in visible_sets([Path(d) for d in args.caption_dir]).items():
        toks = [tokenize_latex(c).split() for c in caps]
        kept_n = sum(1 for t in toks if try_normalize(" ".join(t))[0] is not None)
        counts = []
        for rule, trig in RULES.items():
            if rule.startswith("R7 one-token"):
                hit = sum(1 for t in toks if any(x.startswith(("\\begin{", "\\end{")) for x in t))
            elif rule.startswith("R9"):
                hit = sum(1 for t in toks if any(t[i:i + 3] == ["\\sqrt", "[", "]"] for i in range(len(t))))
            elif rule.startswith("R7 vmatrix"):
                hit = sum(1 for t in toks if any(x in trig for x in t) and "\\begin" in t)
            else:
                hit = sum(1 for t in toks if any(x in trig for x in t))
            counts.append(str(hit))
        out.append(f"| {name} | {len(caps):,} | {kept_n:,} | " + " | ".join(counts) + " |")
    report = "\n".join(out) + "\n"
    print(report)
    dest = ROOT / "benchmarks" / "results" / "bench_mathnet.md"
    dest.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
