"""The four data-building CLIs (``preprocess/make_unimumer_tree_data.py``, ``normalize_latex.py``,
``make_hmer_prompts.py``, ``build_training_data.py``); split out of :mod:`unimumer.builders`, which re-exports them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError
from .files import check_outputs
from .paths import DATA_DIR
from .prompt_files import build_prompts_from_crohme, build_prompts_from_latex_json, default_prompt_path
from .records import TREE_TASKS, convert_file, normalize_file
from .training_sets import build_training_set


def resolve_output_file(input_file: Path, output_root: Path | None, task: str, prefix: str, suffix: str | None) -> Path:
    """Output path of ``input_file`` (official ``resolve_output_file``).

    ``{prefix}{stem}{suffix}{ext}`` next to the input when ``output_root`` is None, inside ``output_root`` when it is
    an existing folder or a missing path without the input's extension, else ``output_root`` itself.
    """
    resolved_suffix = TREE_TASKS[task] if suffix is None else suffix
    filename = f"{prefix}{input_file.stem}{resolved_suffix}{input_file.suffix}"
    if output_root is None:
        return input_file.with_name(filename)
    if output_root.is_dir():
        return output_root / filename
    if not output_root.exists() and output_root.suffix != input_file.suffix:
        return output_root / filename
    return output_root


def iter_input_files(input_path: Path, include: str | None, exclude: str | None) -> list[Path]:
    """``[input_path]`` for a file; the sorted ``*.json`` files of a folder filtered by name substrings.

    Raises :class:`InputError` when the path does not exist.
    """
    if input_path.is_file():
        return [input_path]
    if not input_path.is_dir():
        raise InputError(f"input path not found: {input_path}")
    files = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix == ".json")
    return [
        p for p in files
        if (not include or include in p.name) and not (exclude and exclude in p.name)
    ]


def main_tree(argv: Sequence[str] | None = None) -> int:
    """``preprocess/make_unimumer_tree_data.py``: the official CLI (same options, naming and skip behaviour)."""
    parser = argparse.ArgumentParser(
        prog="make_unimumer_tree_data.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
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
        ),
    )
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


def main_normalize(argv: Sequence[str] | None = None) -> int:
    """``preprocess/normalize_latex.py``."""
    parser = argparse.ArgumentParser(
        prog="normalize_latex.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Normalize the LaTeX of a JSON array of records the way the official *_normalized test sets were\n"
            "made (docs/data-building.md): drop records that fail the filters (delete_chars tokens,\n"
            "CJK, unbalanced { } / ( ) / [ ], a command without its arguments) and rewrite the others (R1-R9:\n"
            "\\dots/\\le/\\ge, \\left/\\right, \\mathrm/\\operatorname, bracing \\frac/\\sqrt arguments, redundant\n"
            "braces, sub-before-sup, environments and matrix delimiters, operator names, empty \\sqrt index).\n"
            "Reproduces CROHME 2023: 2,300 -> 1,652. Array alignments l / r become c (official --use-only-c).\n"
            "Input: a prediction file (*_pred.json, field 'gt') or a ShareGPT file (the gpt message).\n"
            "Output: the kept records, other fields and order unchanged (indent 2 for prediction files, 4 for\n"
            "ShareGPT). Prints kept / dropped counts by reason. Errors: 'error: ...', exit code 2."
        ),
    )
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


def main_prompts(argv: Sequence[str] | None = None) -> int:
    """``preprocess/make_hmer_prompts.py``."""
    parser = argparse.ArgumentParser(
        prog="make_hmer_prompts.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Build a vanilla ShareGPT prompt file (training data or a test set for inference) from real data\n"
            "(paper Sec. 4.1; layout of the official data.zip):\n"
            "  (a) --crohme-dir: a CROHME-style folder, caption.txt ('img_id<TAB>tokenized LaTeX') + img/*.png\n"
            "      (white on black, as packaged for CoMER/PosFormer; also MNE);\n"
            "  (b) --latex-json: a JSON array / JSONL of {\"image\": path, \"latex\": raw LaTeX} (MathWriting /\n"
            "      Im2LaTeXv2 style), tokenized with pylatexenc and normalized; invalid records dropped, counted.\n"
            "Images are written black strokes on white to DATA_ROOT/DATASET/SPLIT/images/<img_id>.<fmt>\n"
            "(existing images are kept, so a rerun resumes). Image paths in the JSON: 'repo' style\n"
            "./data/CROHME/2014/images/<img_id>.jpg (relative to the parent of DATA_ROOT = repository root; the\n"
            "official prompt files, used by inference) or 'dataset_dir' style CROHME/train/images/<img_id>.png\n"
            "(relative to DATA_ROOT, resolved by LLaMA-Factory through media_dir = dataset_dir). Default: repo for\n"
            "test splits, dataset_dir for 'train'.\n"
            "Example: make_hmer_prompts.py --crohme-dir data/sample/crohme/2014 --split 2014 \\\n"
            "             --out data/CROHME/prompts/crohme_2014.json\n"
            "Prints the counts (records, written, skipped by reason). Errors: 'error: ...', exit code 2."
        ),
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--crohme-dir", help="folder with caption.txt and img/ (CROHME / MNE layout)")
    src.add_argument("--latex-json", help="JSON array or JSONL of {image, latex} records (raw LaTeX)")
    parser.add_argument("--data-root", default=str(DATA_DIR), help="dataset root (default: <repo>/data)")
    parser.add_argument("--dataset", help="dataset folder name (default: CROHME, or MathWriting for --latex-json)")
    parser.add_argument("--split", default="train", help="split name: train, 2014, 2016, 2019, N1 … (default: train)")
    parser.add_argument("--out", help="output JSON (default: DATA_ROOT/DATASET/train/<dataset>_train.json for "
                        "train, DATA_ROOT/DATASET/prompts/<dataset>_<split>.json for test splits)")
    parser.add_argument("--image-format", choices=("png", "jpg"),
                        help="written image format (default: png for train, jpg for test splits as officially)")
    parser.add_argument("--path-style", choices=("repo", "dataset_dir"), help="image path style (see above)")
    parser.add_argument("--repo-root", help="base of 'repo' style paths (default: parent of DATA_ROOT)")
    parser.add_argument("--limit", type=int, help="first N records only")
    parser.add_argument("--workers", type=int, help="image conversion processes (default: all cores)")
    parser.add_argument("--no-normalize", action="store_true", help="--latex-json: tokenize only, do not normalize")
    args = parser.parse_args(argv)
    fmt = args.image_format or ("png" if args.split == "train" else "jpg")
    dataset = args.dataset or ("CROHME" if args.crohme_dir else "MathWriting")
    source = Path(args.crohme_dir) / "caption.txt" if args.crohme_dir else args.latex_json
    check_outputs(inputs=[source], outputs=[args.out or default_prompt_path(args.data_root, dataset, args.split)],
                  dirs=[Path(args.data_root) / dataset / args.split / "images"])
    common = dict(
        split=args.split, limit=args.limit, image_format=fmt, out_json=args.out, path_style=args.path_style,
        repo_root=args.repo_root, workers=args.workers,
    )
    if args.crohme_dir:
        out, stats = build_prompts_from_crohme(args.crohme_dir, args.data_root, dataset, **common)
    else:
        out, stats = build_prompts_from_latex_json(
            args.latex_json, args.data_root, dataset, normalize=not args.no_normalize, **common
        )
    print(f"{out} | " + " ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


def main_build(argv: Sequence[str] | None = None) -> int:
    """``preprocess/build_training_data.py``."""
    parser = argparse.ArgumentParser(
        prog="build_training_data.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
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
        ),
    )
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
