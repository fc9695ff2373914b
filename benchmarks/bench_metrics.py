#!/usr/bin/env python
"""Benchmark: unimumer's metrics calculator vs the official approach on a 24,607-record input.

Input: the official prediction files (tests/fixtures/reference/{predictions,paper_final}/, 10,616 records) concatenated
and cycled to 24,607 records (the size of the HME100K test set).

Compared (same process, best of --repeat runs, after one warm-up):
- official: what the official ``scripts/eval_metrics_calculator.py`` does per record - ``str.split`` tokens,
  ``editdistance.eval`` on token lists (for the edit scores, again for the thresholds and again for the CER),
  NLTK ``corpus_bleu`` with ``SmoothingFunction().method4``;
- straightforward: the same libraries with one ``editdistance.eval`` per record;
- unimumer: :func:`unimumer.evaluation.metrics.evaluate` (rapidfuzz token distance once per record, skipped for identical
  token lists; BLEU-4 n-gram counts computed directly, equal lists need no counting; no NLTK import).
Both result dictionaries must be identical (checked). Import times are measured in fresh interpreters.

Prints a Markdown table and writes it to benchmarks/results/bench_metrics.md.
Usage: .venv/bin/python benchmarks/bench_metrics.py [--repeat 3] [--records 24607]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unimumer.evaluation.metrics import evaluate  # noqa: E402
from unimumer.files import atomic_write_text  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "reference"


def build_records(n: int) -> list[dict]:
    files = sorted((FIX / "predictions").glob("*_pred.json")) + sorted((FIX / "paper_final").glob("*.json"))
    base: list[dict] = []
    for f in files:
        base += [{"gt": r["gt"], "pred": r["pred"]} for r in json.loads(f.read_text(encoding="utf-8"))]
    out: list[dict] = []
    while len(out) < n:
        out += base
    return out[:n]


def official_approach(data: list[dict]) -> dict:
    """The official TextEvaluator.evaluate computation (token CER, as in the released reports)."""
    import editdistance
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    total = len(data)
    refs, hyps, scores = [], [], []
    for s in data:
        g, p = s["gt"].split(), s["pred"].split()
        if not g and not p:
            scores.append(100.0)
        elif not g or not p:
            scores.append(0.0)
        else:
            scores.append((1 - editdistance.eval(g, p) / max(len(g), len(p))) * 100)
        refs.append([g])
        hyps.append(p)
    bleu = corpus_bleu(refs, hyps, weights=(0.25, 0.25, 0.25, 0.25), smoothing_function=SmoothingFunction().method4)
    dist = length = 0
    for s in data:
        dist += editdistance.eval(s["gt"].split(), s["pred"].split())
        length += len(s["gt"])
    cer = dist / length if length > 0 else 0.0
    counts = {k: 0 for k in range(4)}
    for s in data:
        d = editdistance.eval(s["gt"].split(), s["pred"].split())
        for k in range(4):
            if d <= k:
                counts[k] += 1
    rates = {k: c / total * 100 for k, c in counts.items()}
    return {
        "total_samples": total,
        "mean_edit_score": round(sum(scores) / total, 4),
        "bleu4_score": round(bleu * 100, 4),
        "character_error_rate": round(cer, 4),
        "exact_match_rate": round(rates[0], 4),
        "error_le_1_rate": round(rates[1], 4),
        "error_le_2_rate": round(rates[2], 4),
        "error_le_3_rate": round(rates[3], 4),
        "error_threshold_stats": {
            f"errors_le_{k}": {"count": counts[k], "percentage": round(rates[k], 4)} for k in range(4)
        },
    }


def straightforward(data: list[dict]) -> dict:
    """The same libraries used plainly: one ``editdistance.eval`` per record, NLTK ``corpus_bleu`` once."""
    import editdistance
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    total = len(data)
    g = [s["gt"].split() for s in data]
    p = [s["pred"].split() for s in data]
    d = [editdistance.eval(a, b) for a, b in zip(g, p, strict=True)]
    scores = [100.0 if not a and not b else 0.0 if not a or not b else (1 - x / max(len(a), len(b))) * 100
              for a, b, x in zip(g, p, d, strict=True)]
    bleu = corpus_bleu([[a] for a in g], p, weights=(0.25,) * 4, smoothing_function=SmoothingFunction().method4)
    length = sum(len(s["gt"]) for s in data)
    counts = {k: sum(1 for x in d if x <= k) for k in range(4)}
    rates = {k: c / total * 100 for k, c in counts.items()}
    return {
        "total_samples": total,
        "mean_edit_score": round(sum(scores) / total, 4),
        "bleu4_score": round(bleu * 100, 4),
        "character_error_rate": round(sum(d) / length if length > 0 else 0.0, 4),
        "exact_match_rate": round(rates[0], 4),
        "error_le_1_rate": round(rates[1], 4),
        "error_le_2_rate": round(rates[2], 4),
        "error_le_3_rate": round(rates[3], 4),
        "error_threshold_stats": {
            f"errors_le_{k}": {"count": counts[k], "percentage": round(rates[k], 4)} for k in range(4)
        },
    }


def best_time(fn, data, repeat: int) -> tuple[float, dict]:
    result = fn(data)  # warm-up (imports)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(data)
        times.append(time.perf_counter() - t)
    return min(times), result


def import_time(stmt: str) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--records", type=int, default=24607)
    args = ap.parse_args()

    data = build_records(args.records)
    t_off, r_off = best_time(official_approach, data, args.repeat)
    t_str, r_str = best_time(straightforward, data, args.repeat)
    t_our, r_our = best_time(evaluate, data, args.repeat)
    identical = r_off == r_our == r_str
    imp_off = min(import_time("import editdistance, nltk.translate.bleu_score") for _ in range(3))
    imp_our = min(import_time("import unimumer.evaluation.metrics, rapidfuzz.distance") for _ in range(3))

    lines = [
        "# bench_metrics: official metrics on a 24,607-record input",
        "",
        f"Input: {len(data):,} records (the official prediction files in tests/fixtures/reference/ cycled); "
        f"best of {args.repeat} runs after a warm-up; Python {platform.python_version()}, "
        f"{platform.machine()}, `{platform.processor() or platform.system()}`.",
        "",
        "| approach | compute (s) | import (s) | records/s |",
        "|---|---:|---:|---:|",
        f"| official: nltk `corpus_bleu` (method4) + `editdistance` per record | {t_off:.3f} | {imp_off:.3f} | "
        f"{len(data) / t_off:,.0f} |",
        f"| straightforward: same libraries, one `editdistance` call per record | {t_str:.3f} | {imp_off:.3f} | "
        f"{len(data) / t_str:,.0f} |",
        f"| unimumer.evaluation.metrics.evaluate | {t_our:.3f} | {imp_our:.3f} | {len(data) / t_our:,.0f} |",
        "",
        f"Speed-up (compute): {t_off / t_our:.1f}x vs official, {t_str / t_our:.1f}x vs straightforward; identical result dictionaries: {identical}.",
        f"ExpRate {r_our['exact_match_rate']}%, BLEU-4 {r_our['bleu4_score']}%, CER {r_our['character_error_rate']}.",
        "",
        "Command: `.venv/bin/python benchmarks/bench_metrics.py`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(ROOT / "benchmarks" / "results" / "bench_metrics.md", text)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
