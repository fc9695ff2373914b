"""``unimumer summary`` / ``scripts/summarize_results.py``: one table of every scored split next to the paper."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..cli import emit
from ..errors import InputError
from ..evaluation.cdm.toolkit import CHOICES as CDM_TOOLKITS
from ..evaluation.metrics.paper import DEFAULT_MODEL, MODELS, resolve_model
from ..evaluation.metrics.summary import (
    collect_rows,
    find_prediction_files,
    markdown_table,
    render_exprate_png,
)
from ..files import atomic_write_bytes, atomic_write_text, check_outputs
from ..layout import CDM_SUFFIX, stem_of
from .common import add_record_keys, command_parser

DESCRIPTION = """\
Summarize results across datasets: one Markdown table of every test split found, next to the paper.

Input: PATH, a folder searched recursively for *_pred.json (the eval/eval_all.sh layout) or a prediction file;
each is scored with the official metrics, ExpRate@CDM read from <stem>_cdm.json beside it when present.
Output: the Markdown table on stdout (and --output), --plot a bar chart of ExpRate per split against the paper
(--paper-model chooses the released model's column).
Errors: a missing path, no prediction files, a malformed file or an unknown --paper-model -> "error: ..." on
stderr, exit code 2, nothing written. Details: docs/evaluation.md.
"""


EPILOG = (
    "example: scripts/summarize_results.py data --output data/summary.md "
    "--plot data/summary.png"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/summarize_results.py`` (see :data:`DESCRIPTION`)."""
    p = command_parser("summarize_results.py", DESCRIPTION, epilog=EPILOG)
    p.add_argument("paths", nargs="+", metavar="PATH", help="data root folder(s) and/or prediction JSON files")
    p.add_argument("--paper-model", default=DEFAULT_MODEL, metavar="MODEL",
                   help=f"paper column to compare with: {', '.join(MODELS)} (default: {DEFAULT_MODEL})")
    p.add_argument("--output", "-o", metavar="summary.md", help="also write the Markdown table to this file")
    p.add_argument("--plot", metavar="chart.png", help="write a bar chart of ExpRate per split vs the paper")
    p.add_argument("--cdm-toolkit", choices=CDM_TOOLKITS, default=None, metavar="VERSION",
                   help=f"show ExpRate@CDM only from <stem>_cdm.json files of this CDM toolkit version "
                        f"({', '.join(CDM_TOOLKITS)}; default: any, the column names it)")
    add_record_keys(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/summarize_results.py`` (see ``--help``). Returns 0; raises :class:`InputError`
    on bad input (exit code 2 through ``run_main``)."""
    args = build_parser().parse_args(argv)
    model = resolve_model(args.paper_model)
    files = [f for f, _ in find_prediction_files(args.paths)]
    check_outputs(inputs=[*files, *(f.with_name(stem_of(f) + CDM_SUFFIX) for f in files)],
                  outputs=[args.output, args.plot])
    rows = collect_rows(args.paths, model=model, gt_key=args.gt_key, pred_key=args.pred_key,
                        cdm_toolkit=args.cdm_toolkit)
    text = markdown_table(rows, model)
    png = render_exprate_png(rows, model) if args.plot else None  # render everything before writing anything
    try:
        if args.output:
            atomic_write_text(args.output, text)
        if png is not None:
            atomic_write_bytes(Path(args.plot), png)
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename or 'output'} ({exc.strerror or exc})") from None
    emit(text)
    return 0
