"""``unimumer eval`` / ``scripts/eval_metrics_calculator.py``: official metrics and text reports of prediction files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli import emit
from ..errors import InputError
from ..evaluation.cdm.toolkit import CHOICES as CDM_TOOLKITS
from ..evaluation.cdm.toolkit import DEFAULT_TOOLKIT
from ..evaluation.metrics.calculator import (
    duplicate_ids,
    edit_score,
    evaluate,
    evaluate_with_distances,
    load_predictions,
)
from ..evaluation.metrics.report import (
    cdm_f1_mean,
    cdm_toolkit_of,
    format_canonical_line,
    format_cdm_line,
    format_report,
    one_line_summary,
)
from ..evaluation.metrics.run import canonical_records, cdm_result, expand_inputs, write_report
from ..files import check_outputs, write_json
from ..layout import CDM_SUFFIX, RESULTS_SUFFIX, stem_of
from .common import add_record_keys, command_parser

DESCRIPTION = """\
Score prediction files with the official metrics and write the official text report (byte-identical).

Input: FILE.json (array of {"gt", "pred", ...}) or DIR (directory mode: every DIR/*_pred.json, its report
written beside it as <stem>_results.txt). Metrics: token ExpRate, Error <= 1/2/3, edit score, BLEU-4 (NLTK,
smoothing method4), the official character error rate.
Output: the report on stdout, in --output / --output-dir, or as JSON (--json, official keys); options add
ExpRate@CDM (--cdm), canonical forms (--canonicalize) and per-record distances (--per-sample).
Errors: a missing / invalid file or record -> one "error: ..." line, exit code 2, no report written.
Source: scripts/eval_metrics_calculator.py of BFlameSwift/Uni-MuMER. Details: docs/evaluation.md.
"""


EPILOG = """\
examples:
  scripts/eval_metrics_calculator.py --input data/CROHME/results/crohme_2014_pred.json
  scripts/eval_metrics_calculator.py --input pred.json --output pred_results.txt
  scripts/eval_metrics_calculator.py --input data/CROHME/results            # directory mode
  scripts/eval_metrics_calculator.py --input a_pred.json b_pred.json --json
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (see :data:`DESCRIPTION` for inputs, outputs and errors)."""
    p = command_parser("eval_metrics_calculator.py", DESCRIPTION, epilog=EPILOG)
    p.add_argument("--input", "-i", nargs="+", required=True, metavar="PATH",
                   help="prediction JSON file(s) and/or result folder(s) (directory mode: DIR/*_pred.json)")
    p.add_argument("--output", "-o", metavar="RESULTS.txt",
                   help="write the report of the single input file here instead of stdout")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write each report as DIR/<stem>_results.txt (default in directory mode: beside the input)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON (official keys) on stdout")
    add_record_keys(p)
    p.add_argument("--per-sample", metavar="OUT.jsonl",
                   help="(single input) write per-record distances / edit scores as JSON lines")
    p.add_argument("--cdm", action="store_true",
                   help="also compute ExpRate@CDM (needs TeX); writes <stem>_cdm.json with the report")
    p.add_argument("--cdm-workers", type=int, default=None, metavar="N",
                   help="worker processes for --cdm (default: all cores)")
    p.add_argument("--cdm-toolkit", choices=CDM_TOOLKITS, default=DEFAULT_TOOLKIT, metavar="VERSION",
                   help=f"with --cdm: official CDM toolkit version, one of {', '.join(CDM_TOOLKITS)} (default "
                        f"{DEFAULT_TOOLKIT}; 2025-03 gives the paper's ExpRate@CDM)")
    p.add_argument("--force", action="store_true", help="with --cdm: recompute an existing <stem>_cdm.json")
    p.add_argument("--canonicalize", action="store_true",
                   help="also report the ExpRate of canonical forms (formula extracted from free-form answers, "
                        "equivalent spellings unified; docs/analysis.md); off: the official report, unchanged")
    p.add_argument("--canonical-output", metavar="OUT.json",
                   help="with --canonicalize (single input): write the canonical records (official layout) here")
    return p


def _report_path(path: Path, from_dir: bool, args) -> Path | None:
    """Where the text report of ``path`` goes: ``--output``, ``--output-dir/<stem>_results.txt``, beside a file
    found in a folder, else nowhere (printed)."""
    if args.output:
        return Path(args.output)
    if args.output_dir:
        return Path(args.output_dir) / f"{stem_of(path)}{RESULTS_SUFFIX}"
    if from_dir:
        return path.parent / f"{stem_of(path)}{RESULTS_SUFFIX}"
    return None


def _check_args(args, inputs: list[tuple[Path, bool]]) -> None:
    """Refuse option combinations that do not fit the inputs (:class:`InputError`)."""
    if args.output and (len(inputs) != 1 or inputs[0][1]):
        raise InputError("--output takes a single prediction file; use --output-dir (or directory mode) for several")
    if args.output and Path(args.output).is_dir():
        raise InputError(f"{args.output}: --output must be a file path, not a directory")
    if args.per_sample and len(inputs) != 1:
        raise InputError("--per-sample takes a single input file")
    if args.canonical_output and (not args.canonicalize or len(inputs) != 1):
        raise InputError("--canonical-output needs --canonicalize and a single input file")
    if args.canonical_output and Path(args.canonical_output).is_dir():
        raise InputError(f"{args.canonical_output}: --canonical-output must be a file path, not a directory")
    if args.cdm_workers is not None and args.cdm_workers < 1:
        raise InputError("--cdm-workers must be >= 1")


def _warn_duplicates(path: Path, records: list) -> None:
    extra, ids = duplicate_ids(records)
    if extra:  # scored all the same, as the official calculator does; only reported
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        print(f"warning: {path}: {len(ids)} img_id(s) occur more than once ({extra} extra records; first: "
              f"{shown}); every record is scored, as the official calculator does", file=sys.stderr)


def _add_cdm(metrics: dict, records: list, path: Path, report_path: Path | None, args) -> str:
    """ExpRate@CDM of ``records`` into ``metrics``; returns the report line."""
    cdm_path = report_path.parent / f"{stem_of(path)}{CDM_SUFFIX}" if report_path else None
    cdm = cdm_result(records, path, cdm_path, args)
    excluded = cdm.get("excluded", [])
    n_excluded = len(excluded) if isinstance(excluded, list) else int(excluded or 0)
    metrics["exprate_cdm"] = cdm["exprate_cdm"]
    metrics["cdm_f1"] = cdm_f1_mean(cdm)  # mean per-sample CDM F1 in percent (beside ExpRate@CDM)
    metrics["cdm_evaluated"] = cdm.get("evaluated")
    metrics["cdm_excluded"] = n_excluded
    metrics["cdm_toolkit"] = cdm_toolkit_of(cdm)
    return format_cdm_line(cdm["exprate_cdm"], cdm.get("evaluated"), n_excluded, metrics["cdm_toolkit"])


def _add_canonical(metrics: dict, records: list, results: dict, args) -> str:
    """Canonical ExpRate of ``records`` into ``metrics`` (and --canonical-output); returns the report line."""
    canon_recs = canonical_records(records, gt_key=args.gt_key, pred_key=args.pred_key)
    canon = evaluate(canon_recs)
    if args.canonical_output:
        write_json(Path(args.canonical_output), canon_recs, indent=2)
    metrics["exprate_canonical"] = canon["exact_match_rate"]
    metrics["canonical"] = canon
    return format_canonical_line(canon["exact_match_rate"], results["exact_match_rate"])


def _write_per_sample(out: Path, records: list, distances: list, args) -> None:
    lines = []
    for i, (rec, d) in enumerate(zip(records, distances, strict=True)):
        gl, pl = len(rec[args.gt_key].split()), len(rec[args.pred_key].split())
        lines.append(json.dumps({"index": i, "img_id": rec.get("img_id"), "distance": d, "gt_tokens": gl,
                                 "pred_tokens": pl, "edit_score": edit_score(d, gl, pl)}, ensure_ascii=False))
    write_report(out, "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/eval_metrics_calculator.py`` (see ``--help``). Returns the exit code (0).

    Raises :class:`InputError` on bad input (``run_main`` turns it into ``error: ...``, exit 2); all inputs are
    loaded and validated before any file is written.
    """
    args = build_parser().parse_args(argv)
    inputs = expand_inputs(args.input)
    _check_args(args, inputs)
    reports = {path: _report_path(path, from_dir, args) for path, from_dir in inputs}
    cdm_files = [r.parent / f"{stem_of(p)}{CDM_SUFFIX}" for p, r in reports.items() if r is not None] if args.cdm else []
    check_outputs(inputs=[p for p, _ in inputs], outputs=[*reports.values(), *cdm_files, args.per_sample])

    # 1) load and validate everything first: a bad input leaves no file behind
    loaded = [(path, load_predictions(path, gt_key=args.gt_key, pred_key=args.pred_key)) for path, _ in inputs]
    for path, records in loaded:
        _warn_duplicates(path, records)

    # 2) score, then write
    from tqdm import tqdm

    json_out: dict[str, dict] = {}
    text_out: list[str] = []
    many = len(loaded) > 1
    for path, records in tqdm(loaded, desc="scoring", unit="file", disable=not many or None):
        results, distances = evaluate_with_distances(records, gt_key=args.gt_key, pred_key=args.pred_key,
                                                     progress=f"scoring {path.name}")
        report = format_report(results)
        report_path = reports[path]
        metrics = dict(results)
        if args.cdm:
            report += _add_cdm(metrics, records, path, report_path, args)
        if args.canonicalize:
            report += _add_canonical(metrics, records, results, args)
        if args.per_sample:
            _write_per_sample(Path(args.per_sample), records, distances, args)
        if report_path is not None:
            write_report(report_path, report)
            if not args.json:
                emit(f"{report_path}: {one_line_summary(results)}\n")
        elif not args.json:
            text_out.append(f"==> {path} <==\n{report}" if many else report)
        json_out[str(path)] = metrics

    if args.json:
        payload = json_out[str(loaded[0][0])] if not many else json_out
        emit(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    elif text_out:
        emit("\n".join(text_out))
    return 0
