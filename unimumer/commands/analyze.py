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
Error analysis of Uni-MuMER prediction files: confusions, ExpRate breakdowns and an A-vs-B comparison.

Inputs:
  --input A        a prediction file in the official layout (JSON array of {"gt", "pred", "image_path",
                   "img_id"}; the released paper_final/*.json files fit too) or a folder of them (its *_pred.json
                   files, else its *.json files), each analysed on its own into OUTPUT_DIR/<stem>/.
  --compare B      a second file (or folder, files paired by stem) to compare with A: records paired by img_id
                   (or the image_path stem); the two files must hold the same img_ids with the same gt.
Outputs (OUTPUT_DIR):
  analysis.json    "records", "metrics" (official calculator), "edit_totals", "confusions" [{"gt","pred","count"}]
                   most frequent first, "insertions" [{"pred","count"}], "deletions" [{"gt","count"}],
                   "confusion_score", "buckets" {gt_length, depth, structure, repetition: [{"bucket","n","exact",
                   "le1","le2","exprate","error_le_1_rate","error_le_2_rate"}]}; with --compare also "comparison"
                   (metrics, per-bucket and per-confusion A/B/difference, "fixed"/"broken" samples
                   [{"img_id","gt","pred_a","pred_b"}], "mcnemar").
  report.md        the same as Markdown tables; with --plot it embeds breakdowns.png (ExpRate per bucket) and
                   confusions.png (top confusions). All files are written atomically, after all computing.

Definitions:
  tokens / distance   the official calculator's: str.split() tokens, token Levenshtein distance d; exact match
                      (ExpRate) d = 0, "<=1" / "<=2" d <= 1 / 2. Bucket counts recombine to the calculator's.
  confusions          the EDL builder's token alignment, rapidfuzz Levenshtein.opcodes(pred, gt): each aligned
                      replaced position is one substitution gt -> pred; insertions = extra pred tokens (EDL
                      DELETE), deletions = missing gt tokens (EDL INSERT); subs + ins + dels = d.
  confusion score     paper Sec. 4 "top-5 letter-digit confusion score" (5.25 -> 3.31 with EDL); no formula is
                      given, our reading: a pair {digit, Latin letter} of single-character tokens scores its
                      substitutions in both directions per 100 records; the score is the sum of the top-k pair
                      scores (--top-k, default 5).
  gt length           number of gt tokens, buckets <=5, 6-10, 11-20, 21-30, 31-50, >50 (--length-edges).
  depth               deepest nesting level of the gt's Tree-CoT tree (official parser; 0 = flat, >=4 pooled,
                      "unparsable" when the parser rejects the gt).
  structure kinds     present in the gt, overlapping: fraction (\\frac \\dfrac \\tfrac \\cfrac), root (\\sqrt),
                      scripts (^ _), matrix (any \\begin environment), big operator (\\sum \\lim \\int \\iint
                      \\oint \\prod \\coprod); "none of these" otherwise.
  max repetition      largest count in the gt's symbol-counting target (every token except { }): 1, 2-4, >=5.
  fixed / broken      exact in B but not A / exact in A but not B.
  McNemar             on the paired exact-match outcomes (b = broken, c = fixed): exact two-sided binomial test
                      (scipy binomtest) when b + c < 25, else chi-square with continuity correction
                      (|b-c|-1)^2/(b+c), 1 df (scipy chi2.sf); p = 1 when b + c = 0. --mcnemar forces one.

Errors: a missing file, non-JSON, a wrong layout (not a non-empty array of records with string gt / pred),
different img_ids or gts between A and B, or an unwritable output folder -> one "error: ..." line, exit 2,
nothing written for that file.
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
