"""``unimumer normalize`` / ``preprocess/normalize_latex.py``: normalize the LaTeX of prediction / ShareGPT files."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.records import normalize_file
from ..files import check_outputs
from .common import command_parser

DESCRIPTION = (
    "Normalize the LaTeX of a JSON array of records the way the official *_normalized test sets were\n"
    "made (docs/data-building.md): drop records that fail the filters (delete_chars tokens,\n"
    "CJK, unbalanced { } / ( ) / [ ], a command without its arguments) and rewrite the others (R1-R9:\n"
    "\\dots/\\le/\\ge, \\left/\\right, \\mathrm/\\operatorname, bracing \\frac/\\sqrt arguments, redundant\n"
    "braces, sub-before-sup, environments and matrix delimiters, operator names, empty \\sqrt index).\n"
    "Reproduces CROHME 2023: 2,300 -> 1,652. Array alignments l / r become c (official --use-only-c).\n"
    "Input: a prediction file (*_pred.json, field 'gt') or a ShareGPT file (the gpt message).\n"
    "Output: the kept records, other fields and order unchanged (indent 2 for prediction files, 4 for\n"
    "ShareGPT). Prints kept / dropped counts by reason. Errors: 'error: ...', exit code 2."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``preprocess/normalize_latex.py``."""
    parser = command_parser("normalize_latex.py", DESCRIPTION)
    parser.add_argument("--input", required=True, help="input JSON array (prediction or ShareGPT records)")
    parser.add_argument("--output", required=True, help="output JSON file (written atomically)")
    parser.add_argument("--field", help="record key holding the LaTeX (default: 'gt' if present, else the gpt message)")
    parser.add_argument("--tokenize", action="store_true", help="tokenize raw LaTeX with pylatexenc first")
    parser.add_argument("--indent", type=int, help="output indent (default: 2 for prediction files, 4 otherwise)")
    parser.add_argument("--keep-alignments", action="store_true",
                        help="keep array column alignments l / r (default: rewrite them to c, the official --use-only-c)")
    args = parser.parse_args(argv)
    check_outputs(inputs=[args.input], outputs=[args.output])
    kept, dropped = normalize_file(args.input, args.output, args.field, tokenize=args.tokenize, indent=args.indent,
                                   use_only_c=not args.keep_alignments)
    total = kept + sum(dropped.values())
    print(f"{args.input} -> {args.output} | records={total} kept={kept} dropped={sum(dropped.values())}")
    for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]):
        print(f"  dropped {reason}: {n}")
    return 0
