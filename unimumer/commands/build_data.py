"""``unimumer build-data`` / ``preprocess/build_training_data.py``: one training set with its task variants."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.training_sets import build_training_set
from ..errors import InputError
from .common import command_parser

DESCRIPTION = (
    "One command for a training set (paper Sec. 3-4): from a vanilla ShareGPT file (JSON array or JSONL,\n"
    "records with images[0] and messages[1].value = tokenized LaTeX) write NAME.json (vanilla),\n"
    "NAME_tree.json (Tree-CoT) and NAME_can.json (symbol counting) with the official dataset names of\n"
    "the official configs, and register each in dataset_info.json (merged; other entries kept;\n"
    "file_name relative to the dataset_info folder, LLaMA-Factory's dataset_dir).\n"
    "Streams the input (ijson / JSONL) and builds on all cores with bounded memory; Tree-CoT records the\n"
    "official parser rejects are left out of NAME_tree.json and counted.\n"
    "Example: build_training_data.py --input data/CROHME/prompts/crohme_train.json --name crohme_train\n"
    "             --tasks vanilla,tree,can --output-dir data\n"
    "Errors: 'error: ...', exit code 2."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``preprocess/build_training_data.py``."""
    parser = command_parser("build_training_data.py", DESCRIPTION)
    parser.add_argument("--input", required=True, help="vanilla ShareGPT JSON array or JSONL")
    parser.add_argument("--name", required=True, help="base dataset name, e.g. crohme_train, crohme2023")
    parser.add_argument("--tasks", default="vanilla,tree,can", help="comma list of vanilla,tree,can (default: all)")
    parser.add_argument("--output-dir", help="folder of the outputs (default: the input's folder)")
    parser.add_argument("--dataset-info", help="dataset_info.json to update (default: nearest one above --output-dir)")
    parser.add_argument("--workers", type=int, help="processes (default: all cores; 1 = no pool)")
    parser.add_argument("--chunk-size", type=int, default=2000, help="records per work unit (default: 2000)")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    if args.chunk_size < 1:
        raise InputError("--chunk-size must be >= 1")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    build_training_set(
        args.input, args.name, tasks, args.output_dir, args.dataset_info, args.workers,
        chunk_size=args.chunk_size, register=not args.no_register,
    )
    return 0
