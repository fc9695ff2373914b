"""``unimumer tree`` / ``preprocess/make_unimumer_tree_data.py``: Tree-CoT / counting ShareGPT JSON (official CLI)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..data.records import TREE_TASKS, convert_file
from ..data.tree_files import iter_input_files, resolve_output_file
from ..errors import InputError
from ..files import check_outputs
from .common import command_parser

DESCRIPTION = (
    "Generate Uni-MuMER Tree-CoT (--task tree) or symbol-counting (--task can) training JSON from vanilla\n"
    "ShareGPT JSON (paper Sec. 3; the official preprocess/make_unimumer_tree_data.py, same options and\n"
    "output naming). Input: a ShareGPT JSON array (or .jsonl) whose records have images[0] and\n"
    "messages[1].value = space-tokenized LaTeX, or a folder of such *.json files. Output: the same\n"
    "records with the task prompt and target (tree: a copy of each record; can: {images, messages}),\n"
    "written as json.dump(list, ensure_ascii=False, indent=INDENT), byte-identical to the official tool.\n"
    "Targets: TREE + '\\n' + LaTeX / COUNTS + '\\n' + LaTeX (official make_unimumer_tree_data.py).\n"
    "Records the official parser rejects (a script or command without its '{' group, \\begin without\n"
    "its \\end) and malformed records are skipped and counted; --strict stops at the first one.\n"
    "Unlike the official tool, long or deeply nested expressions never fail (iterative parser).\n"
    "Prints 'INPUT -> OUTPUT | kept=N skipped=M' per file. Errors: 'error: ...', exit code 2. With a\n"
    "folder, an empty or malformed file is reported ('skipped file: ...' on stderr) and the other files\n"
    "are converted; the exit code is then 1."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``preprocess/make_unimumer_tree_data.py``: the official CLI (same options, naming and skip behaviour)."""
    parser = command_parser("make_unimumer_tree_data.py", DESCRIPTION)
    parser.add_argument("--task", choices=tuple(TREE_TASKS), required=True, help="task type to generate")
    parser.add_argument("--input", required=True, help="input JSON file or directory")
    parser.add_argument("--output", help="output JSON file or directory; if omitted, next to the input")
    parser.add_argument("--prefix", default="", help="optional filename prefix for generated files")
    parser.add_argument("--suffix", help="filename suffix; default: _tree / _can by task")
    parser.add_argument("--include-substring", help="with a directory input: only files whose names contain this")
    parser.add_argument("--exclude-substring", help="with a directory input: skip files whose names contain this")
    parser.add_argument("--strict", action="store_true", help="fail on the first malformed record instead of skipping")
    parser.add_argument("--indent", type=int, default=4, help="indent of the generated JSON (default: 4)")
    args = parser.parse_args(argv)
    input_path = Path(args.input)
    output_root = Path(args.output) if args.output else None
    if input_path.is_dir() and output_root is not None:
        if output_root.is_file():
            raise InputError("when --input is a directory, --output must be a directory or be omitted")
        if not output_root.exists() and output_root.suffix == ".json":
            raise InputError("when --input is a directory, --output cannot be a single .json file path")
    if args.indent < 0:
        raise InputError("--indent must be >= 0")
    files = iter_input_files(input_path, args.include_substring, args.exclude_substring)
    if not files:
        raise InputError("no matching input JSON files were found")
    outputs = [resolve_output_file(f, output_root, args.task, args.prefix, args.suffix) for f in files]
    check_outputs(inputs=files, outputs=outputs)
    failed = 0
    for input_file, output_file in zip(files, outputs, strict=True):
        try:
            kept, skipped = convert_file(input_file, output_file, args.task, strict=args.strict, indent=args.indent)
        except InputError as exc:
            if args.strict or not input_path.is_dir():
                raise
            failed += 1  # an empty or malformed file of a folder is reported and skipped; the others go on
            print(f"skipped file: {exc}", file=sys.stderr)
            continue
        detail = "".join(f" {k}={v}" for k, v in sorted(skipped.items()))
        print(f"{input_file} -> {output_file} | kept={kept} skipped={sum(skipped.values())}{detail}")
    if failed:
        print(f"{failed} of {len(files)} input files skipped (unreadable or malformed)", file=sys.stderr)
        return 1
    return 0
