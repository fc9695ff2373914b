"""``unimumer error-data`` / ``preprocess/make_error_data.py``: EDL datasets from prediction files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..edl.marking import write_edl_datasets
from ..files import check_outputs
from ..tasks import check_dataset_base_name, dataset_name
from .common import command_parser

DESCRIPTION = (
    "Build the error-driven-learning (EDL) datasets NAME_error_find.json (error detection) and\n"
    "NAME_error_fix.json (error correction) from model predictions (Uni-MuMER paper Sec. 3.3; the official\n"
    "release has no code for these tasks, the format is docs/edl.md, paper Sec. 3.3).\n\n"
    "Input: one or more prediction files, JSON arrays of {\"gt\", \"pred\", \"image_path\", ...} (the *_pred.json\n"
    "files written by inference; extra keys are ignored). Each wrong prediction (token list != gt's) is\n"
    "aligned to the gt with rapidfuzz's Levenshtein opcodes on the token lists; each maximal run of edits\n"
    "becomes one REPLACE / DELETE / INSERT. error_find target: the prediction with <error_start> old\n"
    "<error_end> around replaced / extra tokens and <deleted> where tokens are missing. error_fix target: the\n"
    "log lines ('REPLACE: old -> new', 'DELETE: old', 'INSERT: new'), then the gt on the last line.\n"
    "Correct predictions yield nothing; a repeated (image_path, pred) pair is written once.\n\n"
    "Output: DIR/NAME_error_find.json and DIR/NAME_error_fix.json (LLaMA-Factory ShareGPT, indent 4, the\n"
    "image path copied from each record; the official name exceptions apply, e.g. hme100k_train gives\n"
    "hme100k_error_find.json), both registered in --dataset-info. Prints the counts: records in, correct,\n"
    "wrong, duplicates, skipped (gt empty or containing an EDL marker token), written.\n\n"
    "Errors: a missing / invalid / empty input file, a record without string gt / pred / image_path, or an\n"
    "output that is an input or cannot be written prints 'error: ...' and exits 2; nothing is written then."
)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI of ``preprocess/make_error_data.py`` (see its ``--help``)."""
    from ..paths import DATASET_INFO

    parser = command_parser("make_error_data.py", DESCRIPTION)
    parser.add_argument("--input", nargs="+", required=True, metavar="PRED.json", help="prediction file(s)")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the two dataset files")
    parser.add_argument("--name", required=True, help="base dataset name, e.g. crohme_train (→ crohme_train_error_find)")
    parser.add_argument("--dataset-info", default=str(DATASET_INFO), metavar="JSON",
                        help="dataset_info.json to register both datasets in (default: %(default)s)")
    parser.add_argument("--no-register", action="store_true", help="do not touch any dataset_info.json")
    args = parser.parse_args(argv)
    check_dataset_base_name(args.name)
    check_outputs(inputs=args.input,
                  outputs=[Path(args.output_dir) / f"{dataset_name(args.name, t)}.json" for t in ("error_find", "error_fix")]
                  + [None if args.no_register else args.dataset_info])
    paths, stats = write_edl_datasets(args.input, args.output_dir, args.name,
                                      None if args.no_register else args.dataset_info, allow_empty=False)
    print(stats.summary())
    for task, p in paths.items():
        print(f"{task}: {p} ({stats.written} records)")
    if not args.no_register:
        print(f"registered {', '.join(dataset_name(args.name, t) for t in paths)} in {args.dataset_info}")
    return 0
