"""``unimumer cdm`` / ``scripts/cdm_eval.py``: ExpRate@CDM of a prediction file (logic: unimumer.evaluation.cdm)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import InputError
from ..evaluation.cdm import match as _match
from ..evaluation.cdm.evaluate import DEFAULT_TIMEOUT, evaluate_cdm
from ..evaluation.cdm.toolkit import DEFAULT_TOOLKIT, TOOLKITS
from ..files import check_outputs, read_json_or_jsonl, write_json
from .common import command_parser

HELP = """\
ExpRate@CDM (Character Detection Matching) of a prediction file.

Input: --input PRED.json (array or .jsonl) of records with string "gt" / "pred" (space-tokenized LaTeX).
Each expression is colour-coded per token, rendered with pdflatex at 200 dpi; gt and pred token boxes are matched
(Hungarian assignment, iterative RANSAC spatial check) as the official UniMERNet CDM toolkit of version --toolkit
decides: 2025-09 (commit 5a2c80d9) or 2025-03 (commit 415d534, the paper's figures).
Output: ExpRate@CDM = % of samples with F1 = 1 on stdout; --output: the full JSON result (per-sample scores,
settings). A gt that fails to render is excluded; a pred that fails scores F1 = 0. Renders are cached.
Errors: bad input, an unwritable --output or missing pdflatex / pdftoppm -> "error: ..." and exit code 2.
Source: Uni-MuMER paper (ExpRate@CDM); CDM, UniMERNet arXiv 2409.03643. Details: docs/evaluation.md, docs/cdm.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``scripts/cdm_eval.py`` argument parser."""
    parser = command_parser("cdm_eval.py", HELP)
    parser.add_argument("--input", required=True, help="prediction file (.json array or .jsonl) with gt/pred")
    parser.add_argument("--output", help="write the full result (totals + per-sample scores) to this JSON file")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel pdflatex/pdftoppm pipelines (default: all cores)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per expression render (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--cache-dir", default=None, help="render cache folder (default ~/.cache/unimumer/cdm)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the render cache")
    parser.add_argument("--mode", choices=_match.MODES, default="official",
                        help="official (default): the official UniMERNet CDM toolkit's decisions, comparable with "
                             "published ExpRate@CDM; strict: a stricter layout-aware variant (a token moved into a "
                             "script always counts as an error), for analysis only")
    parser.add_argument("--toolkit", choices=tuple(TOOLKITS), default=DEFAULT_TOOLKIT,
                        help=f"official CDM toolkit version reproduced (default {DEFAULT_TOOLKIT}; 2025-03: the "
                             "version the Uni-MuMER paper's ExpRate@CDM figures come from)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/cdm_eval.py``: ExpRate@CDM of ``--input``; writes ``--output`` JSON. Returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be >= 1")
    if args.timeout <= 0:
        raise InputError("--timeout must be > 0")
    check_outputs(inputs=[args.input], outputs=[args.output])
    records = read_json_or_jsonl(args.input)
    result = evaluate_cdm(records, workers=args.workers, timeout=args.timeout, cache_dir=args.cache_dir,
                          progress=not args.quiet, use_cache=not args.no_cache, mode=args.mode,
                          toolkit=args.toolkit)
    if args.output:
        try:
            write_json(args.output, result, indent=2)
        except OSError as exc:
            raise InputError(f"cannot write --output {args.output}: {exc.strerror or exc}") from None
    print(f"ExpRate@CDM ({args.toolkit}): {result['exprate_cdm']:.4f} % ({result['evaluated']} evaluated, "
          f"{len(result['excluded'])} excluded (gt not renderable), {result['pred_render_failures']} pred not "
          f"renderable, mean F1 {result['mean_f1']:.4f})")
    return 0
