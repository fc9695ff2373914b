#!/usr/bin/env python
"""Benchmark: EDL data building (unimumer.edl.marking) on the official Uni-MuMER predictions.

Input: the five official prediction files (tests/fixtures/reference/predictions/*_pred.json, copies of
the official release's files): 7,284 records. Reported:

- per file and in total: records in, correct, wrong, duplicates ((image, pred) pairs seen before), written, and the
  edit counts (replace / delete / insert) -- the numbers of ``preprocess/make_error_data.py`` on those files;
- throughput of the record builder (alignment with rapidfuzz's Levenshtein opcodes, marking, ShareGPT records) on
  the wrong predictions cycled to --records, best of --repeat runs;
- throughput of the inverse check (:func:`unimumer.edl.apply_corrections` on every built record).

Prints a Markdown report and writes it to benchmarks/results/bench_edl.md.
Usage: .venv/bin/python benchmarks/bench_edl.py [--repeat 3] [--records 100000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unimumer.edl.marking import apply_corrections, make_edl_records, split_fix_output  # noqa: E402
from unimumer.files import atomic_write_text, sharegpt_fields  # noqa: E402

PRED_DIR = ROOT / "tests" / "fixtures" / "reference" / "predictions"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--records", type=int, default=100000, help="wrong predictions in the throughput run")
    args = ap.parse_args()
    files = sorted(PRED_DIR.glob("*_pred.json"))
    data = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}

    lines = ["# EDL data building on the official Uni-MuMER predictions", "",
             f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
             f"command: `.venv/bin/python benchmarks/bench_edl.py --repeat {args.repeat} --records {args.records}`", "",
             "| file | records in | correct | wrong | duplicates | written | replace | delete | insert |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, recs in data.items():
        _, _, st = make_edl_records((f"{name} {i}", r) for i, r in enumerate(recs))
        lines.append(f"| {name} | {st.records_in} | {st.correct} | {st.wrong} | {st.duplicates} | {st.written} | "
                     f"{st.edits['replace']} | {st.edits['delete']} | {st.edits['insert']} |")
    all_recs = [(f"{n} {i}", r) for n, recs in data.items() for i, r in enumerate(recs)]
    _, _, st = make_edl_records(all_recs)
    lines.append(f"| **all five (one run)** | {st.records_in} | {st.correct} | {st.wrong} | {st.duplicates} | "
                 f"{st.written} | {st.edits['replace']} | {st.edits['delete']} | {st.edits['insert']} |")

    wrong = [r for _, r in all_recs if r["gt"].split() != r["pred"].split()]
    cycled = [(str(i), {**wrong[i % len(wrong)], "image_path": f"img{i}"}) for i in range(args.records)]
    best_build = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        find, fix, _ = make_edl_records(cycled)
        best_build = min(best_build, time.perf_counter() - t0)
    best_inv = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ok = 0
        for f_rec, x_rec in zip(find, fix, strict=True):
            marked = sharegpt_fields(f_rec)[2]
            log, gt = split_fix_output(sharegpt_fields(x_rec)[2])
            ok += apply_corrections(marked, log) == gt
        best_inv = min(best_inv, time.perf_counter() - t0)
    assert ok == len(find) == args.records
    lines += ["", f"Throughput ({args.records:,} wrong predictions, the 2,393 official ones cycled, best of "
                  f"{args.repeat}, one core):", "",
              "| step | seconds | records / s |", "|---|---|---|",
              f"| build error_find + error_fix records | {best_build:.2f} | {args.records / best_build:,.0f} |",
              f"| inverse check (apply log, compare with gt) | {best_inv:.2f} | {args.records / best_inv:,.0f} |",
              "", f"Inverse check: {ok:,} / {args.records:,} records give back their gt exactly."]
    report = "\n".join(lines) + "\n"
    print(report)
    atomic_write_text(ROOT / "benchmarks" / "results" / "bench_edl.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
