"""``unimumer analyze`` / ``scripts/analyze_errors.py``: error analysis of prediction files (logic: unimumer.evaluation.analysis)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..evaluation.analysis.features import DEFAULT_LENGTH_EDGES
from ..evaluation.analysis.run import planned_files, run
from ..evaluation.analysis.statistics import DEFAULT_TOP_K
from ..files import check_outputs
from .common import command_parser

DESCRIPTION = """\
Error analysis of prediction files: token confusions, ExpRate breakdowns and an A-vs-B comparison.

Input: --input A, a prediction file (official layout, or the released paper_final/*.json) or a folder of them;
--compare B, a second file or folder (records paired by img_id, same gt required).
Output (OUTPUT_DIR, or OUTPUT_DIR/<stem>/ per file of a folder): analysis.json, report.md (with its definitions)
and, with --plot, breakdowns.png / confusions.png; written only after every input is analysed.
Errors: a missing / malformed file, different img_ids or gts between A and B, an unwritable folder -> one
"error: ..." line, exit 2. Source: the paper's Sec. 4 analyses. Definitions: docs/analysis.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``scripts/analyze_errors.py`` argument parser (full ``--help``)."""
    p = command_parser("analyze_errors.py", DESCRIPTION)
    p.add_argument("--input", required=True, metavar="A", help="prediction file or folder (model A)")
    p.add_argument("--compare", metavar="B", help="prediction file or folder of model B to compare with A")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for analysis.json / report.md / PNGs")
    p.add_argument("--plot", action="store_true", help="also write breakdowns.png and confusions.png (matplotlib)")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="pairs in the confusion score (default 5)")
    p.add_argument("--top", type=int, default=20, help="rows of confusions / samples in report.md (default 20)")
    p.add_argument("--mcnemar", choices=("auto", "exact", "chi2"), default="auto",
                   help="McNemar variant (default auto: exact binomial when fixed + broken < 25)")
    p.add_argument("--length-edges", default=",".join(map(str, DEFAULT_LENGTH_EDGES)), metavar="E1,E2,...",
                   help="upper edges (inclusive) of the gt-length buckets, increasing (default %(default)s)")
    return p


def _parse_edges(text: str) -> tuple[int, ...]:
    try:
        edges = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--length-edges {text!r}: expected increasing integers like 5,10,20") from None
    if not edges or any(e <= 0 for e in edges) or list(edges) != sorted(set(edges)):
        raise InputError(f"--length-edges {text!r}: expected increasing positive integers like 5,10,20")
    return edges


def main(argv: Sequence[str] | None = None) -> int:
    """CLI ``scripts/analyze_errors.py`` (see :data:`DESCRIPTION`). Returns 0; raises :class:`InputError`."""
    args = build_parser().parse_args(argv)
    if args.top_k < 1 or args.top < 1:
        raise InputError("--top-k and --top must be at least 1")
    edges = _parse_edges(args.length_edges)
    check_outputs(**planned_files(Path(args.input), Path(args.output_dir), Path(args.compare) if args.compare else None,
                                  plot=args.plot))
    results = run(Path(args.input), Path(args.output_dir), compare=Path(args.compare) if args.compare else None,
                  plot=args.plot, top_k=args.top_k, top=args.top, method=args.mcnemar, length_edges=edges)
    for d, an in results:
        m = an["metrics"]
        line = (f"{an['input']}: {an['records']} records, ExpRate {m['exact_match_rate']:.2f} %, "
                f"confusion score {an['confusion_score']['score']:.2f}")
        if "comparison" in an:
            c = an["comparison"]
            line += (f"; vs {c['against']}: fixed {len(c['fixed'])}, broken {len(c['broken'])}, "
                     f"McNemar p = {c['mcnemar']['p_value']:.4g}")
        print(f"{line} -> {d / 'report.md'}")
    return 0
