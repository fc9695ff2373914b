"""``unimumer check-data`` / ``scripts/check_data.py``: which official test sets are present and complete."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.check import EXPECTED, check_data, format_table, select_sets
from ..paths import DATA_DIR
from .common import command_parser

DESCRIPTION = (
    "Check which official Uni-MuMER test sets are present and complete under a data root (the official\n"
    "data.zip layout: DATA_DIR/<DATASET>/prompts/<split>.json, images where the prompt files say) before\n"
    "spending GPU time. Per set: the official record count, the records found, the records whose image is\n"
    "not on disk, and the status (complete / incomplete / missing / unreadable).\n\n"
    "Sets: " + ", ".join(EXPECTED) + ".\n"
    "Exit 0: every requested set complete; 1: one is not; 2: bad input ('error: ...')."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/check_data.py``: print the table; exit 0 when every requested set is complete, else 1."""
    parser = command_parser("check_data.py", DESCRIPTION)
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the data root (default: the repository's data/)")
    parser.add_argument("--sets", default=None,
                        help="comma-separated set names or dataset folders (CROHME, CROHME2023, HME100K, Im2LaTeXv2, "
                             "MathWriting, MNE); default: all")
    parser.add_argument("--image-root", default=None,
                        help="folder the relative image paths start from (default: the parent of --data-dir)")
    parser.add_argument("--no-images", action="store_true", help="count records only, do not look for the images")
    args = parser.parse_args(argv)
    results = check_data(args.data_dir, select_sets(args.sets), args.image_root, images=not args.no_images)
    print(format_table(results), end="")
    return 0 if all(r.ok for r in results) else 1
