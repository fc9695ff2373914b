"""Training- and test-data builders: vanilla prompt files, Tree-CoT / symbol-counting files, normalization, training sets.

Sources: paper Sec. 3 (the vanilla / Tree-CoT / symbol-counting tasks) and Sec. 4.1 (data), the official
``preprocess/make_unimumer_tree_data.py`` (CLI, output naming, skip behaviour), ``../shared/spec/formats.md``,
``datasets.md`` and ``normalization.md``.

Library entry points (other modules and engineers call these):

- :func:`build_prompts_from_crohme` — CROHME-style folder (``caption.txt`` + ``img/``, white on black) → vanilla
  ShareGPT JSON with black-on-white images in the official layout ``<data_root>/<dataset>/<split>/images/``;
- :func:`build_prompts_from_latex_json` — JSON / JSONL of ``{"image", "latex"}`` with raw LaTeX (tokenized and
  normalized on the way, invalid records dropped and counted) → the same;
- :func:`convert_file` — one ShareGPT file → its ``_tree`` / ``_can`` file (official tool semantics);
- :func:`normalize_records` / :func:`normalize_file` — normalization of a prediction or ShareGPT file;
- :func:`build_training_set` — vanilla ShareGPT → ``NAME.json``, ``NAME_tree.json``, ``NAME_can.json`` registered
  in ``dataset_info.json``, streaming, on all cores.

Image paths (``path_style``): LLaMA-Factory 0.9.5 (``llamafactory/data/converter.py``) opens
``os.path.join(media_dir, path)`` when that file exists (``media_dir`` defaults to ``dataset_dir``), else the path as
given (relative to the working directory). ``"dataset_dir"`` paths are relative to ``data_root`` (the folder that
holds ``dataset_info.json``; ``CROHME/train/images/x.png``) and resolve through ``media_dir`` from any working
directory; ``"repo"`` paths are the official ``./data/CROHME/2014/images/x.jpg`` form, relative to the parent of
``data_root`` (the repository root for ``data/``), which is what vLLM inference and the official configs (run from
the repository root) use. Training splits default to ``"dataset_dir"``, test splits to ``"repo"``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .files import (
    JsonArrayWriter,
    atomic_open,
    iter_text_lines,
    json_array_item,
    one_line,
    read_json_list,
    read_json_or_jsonl,
    read_text,
    register_datasets,
    relative_file_name,
    sharegpt_record,
    write_json,
    write_json_stream,
)
from .latex.counting import build_count_target
from .latex.normalize import try_normalize
from .latex.tokenize import LatexTokenizeError, tokenize_latex
from .latex.tree import TreeParseError, build_tree_target
from .paths import DATA_DIR
from .tasks import GT_TASKS, TASKS, check_dataset_base_name, dataset_name

__all__ = [
    "TREE_TASKS",
    "build_prompts_from_crohme",
    "build_prompts_from_latex_json",
    "build_training_set",
    "convert_file",
    "convert_record",
    "default_prompt_path",
    "iter_records",
    "make_can_record",
    "make_tree_record",
    "normalize_file",
    "normalize_records",
    "read_captions",
]

#: Output-name suffix of each task of ``make_unimumer_tree_data.py`` (official ``TASK_SUFFIXES``).
TREE_TASKS = {"tree": TASKS["tree"].suffix, "can": TASKS["can"].suffix}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class RecordError(ValueError):
    """A record that is not a ShareGPT record with ``images[0]`` and ``messages[1].value`` strings."""


# ================================================================================ record conversion (official)
def record_latex(record: Any) -> tuple[str, str]:
    """``(images[0], messages[1]["value"])`` of a ShareGPT record, as the official ``validate_record`` reads them.

    Raises :class:`RecordError` when the structure is not that (the builders count the record as skipped).
    """
    try:
        messages = record["messages"]
        image, latex = record["images"][0], messages[1]["value"]
    except (KeyError, IndexError, TypeError) as exc:
        raise RecordError("record must contain images[0] and messages[1].value") from exc
    if not isinstance(messages, list) or not isinstance(messages[0], dict) or not isinstance(messages[1], dict):
        raise RecordError("messages must be a list of at least two objects")
    if not isinstance(image, str) or not isinstance(latex, str):
        raise RecordError("images[0] and messages[1].value must be strings")
    return image, latex


def make_tree_record(record: dict) -> dict:
    """Tree-CoT record: a copy of ``record`` with the Tree-CoT prompt and ``build_tree_target(latex)``.

    Official ``make_tree_record``: every other key and message field is kept. Raises :class:`RecordError` or
    :class:`~unimumer.latex.tree.TreeParseError`.
    """
    _, latex = record_latex(record)
    target = build_tree_target(latex)
    new = _copy_json(record)
    new["messages"][0]["value"] = "<image>" + TASKS["tree"].prompt()
    new["messages"][1]["value"] = target
    return new


def _copy_json(obj: Any) -> Any:
    """Deep copy of JSON data (dicts, lists, immutable leaves): ``copy.deepcopy`` semantics, 10x faster."""
    if type(obj) is dict:
        return {k: _copy_json(v) for k, v in obj.items()}
    if type(obj) is list:
        return [_copy_json(v) for v in obj]
    return copy.deepcopy(obj) if isinstance(obj, (dict, list)) else obj


def make_can_record(record: dict) -> dict:
    """Symbol-counting record ``{"images": [image], "messages": [human, gpt]}`` (official ``make_can_record``).

    Raises :class:`RecordError`.
    """
    image, latex = record_latex(record)
    return sharegpt_record(image, TASKS["can"].prompt(), build_count_target(latex))


def make_vanilla_record(record: dict) -> dict:
    """Vanilla record ``{"images": [image], "messages": [human vanilla prompt, gpt latex]}``. Raises RecordError."""
    image, latex = record_latex(record)
    return sharegpt_record(image, TASKS["vanilla"].prompt(), latex)


_MAKERS = {"vanilla": make_vanilla_record, "tree": make_tree_record, "can": make_can_record}


def convert_record(record: dict, task: str) -> dict:
    """The ``task`` (``vanilla`` / ``tree`` / ``can``) record built from a vanilla record.

    Raises :class:`RecordError`, :class:`~unimumer.latex.tree.TreeParseError` (tree) or :class:`InputError` (task).
    """
    try:
        return _MAKERS[task](record)
    except KeyError:
        raise InputError(f"unknown task {task!r} (choose from {', '.join(_MAKERS)})") from None


# ================================================================================ streaming JSON
def iter_records(path: str | os.PathLike) -> Iterator[Any]:
    """Records of a ``.jsonl`` file (one per line) or of a JSON array, read incrementally (bounded memory).

    JSON arrays are streamed with ``ijson`` (numbers come back as ``int`` / ``float``). Raises :class:`InputError`
    when the file is missing or not valid JSON / JSONL (naming the line where known).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if p.suffix.lower() == ".jsonl":
        for lineno, line in iter_text_lines(p):
            if line.strip():
                try:
                    yield json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise InputError(f"{p}:{lineno}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
        return
    import ijson

    with p.open("rb") as fh:
        head = fh.read(64).lstrip()
        if not head.startswith(b"["):
            raise InputError(f"{p}: expected a JSON array of records")
        fh.seek(0)
        try:
            yield from ijson.items(fh, "item", use_float=True)
        except ijson.JSONError as exc:
            if "UTF8" in str(exc):  # name the line of the first undecodable byte
                for _ in iter_text_lines(p):
                    pass
            raise InputError(f"{p}: not valid JSON ({one_line(exc)})") from None


def _serialise(item: Any, indent: int) -> str:
    """One array item as :func:`unimumer.files.write_json_stream` lays it out (indented one level).

    Plain ShareGPT records (``images`` strings, ``messages`` of ``from`` / ``value`` strings, in that key order)
    take a string template with the C string encoder of :mod:`json` (the pure-Python indenting encoder is the
    bottleneck of data building); anything else goes through ``json.dumps``. Both give the same bytes (tested).
    """
    if indent > 0 and type(item) is dict and len(item) == 2:
        fast = _fast_sharegpt(item, " " * indent)
        if fast is not None:
            return fast
    return json_array_item(item, indent)


def _fast_sharegpt(item: dict, p: str) -> str | None:
    from json.encoder import encode_basestring as enc

    keys = iter(item)
    if next(keys) != "images" or next(keys) != "messages":
        return None
    images, messages = item["images"], item["messages"]
    if type(images) is not list or type(messages) is not list or not images or not messages:
        return None
    if any(type(x) is not str for x in images):
        return None
    parts = [p, "{\n", p, p, '"images": [']
    parts.append(",".join(f"\n{p}{p}{p}{enc(x)}" for x in images))
    parts += ["\n", p, p, "],\n", p, p, '"messages": [']
    msgs = []
    for m in messages:
        if type(m) is not dict or len(m) != 2:
            return None
        k = iter(m)
        if next(k) != "from" or next(k) != "value" or type(m["from"]) is not str or type(m["value"]) is not str:
            return None
        msgs.append(f"\n{p}{p}{p}{{\n{p}{p}{p}{p}\"from\": {enc(m['from'])},\n{p}{p}{p}{p}\"value\": "
                    f"{enc(m['value'])}\n{p}{p}{p}}}")
    parts.append(",".join(msgs))
    parts += ["\n", p, p, "]\n", p, "}"]
    return "".join(parts)


# ================================================================================ tree / can files (official CLI)
def convert_file(
    input_path: str | os.PathLike, output_path: str | os.PathLike, task: str, *, strict: bool = False,
    indent: int = 4,
) -> tuple[int, Counter]:
    """Convert one vanilla ShareGPT JSON file into its ``tree`` or ``can`` file (official ``convert_file``).

    Records that fail (:class:`TreeParseError`, malformed record) are skipped and counted by reason
    (``parse_error`` / ``bad_record``) unless ``strict``, where the first one raises :class:`InputError` naming
    the record. Reads the input incrementally and writes atomically (``json.dump(list, ensure_ascii=False,
    indent=indent)`` layout). Returns ``(kept, skipped_by_reason)``.
    """
    if task not in TREE_TASKS:
        raise InputError(f"unknown task {task!r} (choose from {', '.join(TREE_TASKS)})")
    skipped: Counter = Counter()
    src = Path(input_path)

    def records() -> Iterator[dict]:
        from tqdm import tqdm

        for index, record in enumerate(tqdm(iter_records(src), desc=src.name, unit="rec", disable=None)):
            try:
                yield convert_record(record, task)
            except (TreeParseError, RecordError) as exc:
                if strict:
                    raise InputError(f"{src}: record {index}: {exc}") from None
                skipped["parse_error" if isinstance(exc, TreeParseError) else "bad_record"] += 1

    kept = write_json_stream(output_path, records(), indent=indent)
    return kept, skipped


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
            "Targets: TREE + '\\n' + LaTeX / COUNTS + '\\n' + LaTeX (../shared/spec/formats.md).\n"
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
    failed = 0
    for input_file in files:
        output_file = resolve_output_file(input_file, output_root, args.task, args.prefix, args.suffix)
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


# ================================================================================ normalization
def _field_location(record: Any, field: str | None) -> tuple[dict, str]:
    """``(container, key)`` of the normalized field: ``record[field]``, or the ShareGPT assistant message."""
    if field is not None:
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise RecordError(f"no string field {field!r}")
        return record, field
    msgs = record.get("messages") if isinstance(record, dict) else None
    if isinstance(msgs, list):
        for m in msgs:
            if isinstance(m, dict) and m.get("from") in ("gpt", "assistant") and isinstance(m.get("value"), str):
                return m, "value"
    raise RecordError("no ShareGPT assistant (gpt) message")


def normalize_records(
    records: Iterable[Any], field: str | None = None, *, tokenize: bool = False
) -> tuple[list, Counter]:
    """Keep the records whose LaTeX passes the normalization filters and rewrite it (``normalization.md``).

    ``field``: the key holding the LaTeX (``"gt"`` for prediction files); ``None`` = the ShareGPT assistant
    message. ``tokenize``: tokenize raw LaTeX with pylatexenc first. Other fields and the order are kept.
    Returns ``(kept_records, dropped_by_reason)``; reasons are the normalizer's ``DROP_REASONS`` plus
    ``tokenize_error`` and ``bad_record`` (the field is missing).
    """
    kept, dropped = [], Counter()
    for record in records:
        try:
            where, key = _field_location(record, field)
        except RecordError:
            dropped["bad_record"] += 1
            continue
        latex = where[key]
        if tokenize:
            try:
                latex = tokenize_latex(latex)
            except LatexTokenizeError:
                dropped["tokenize_error"] += 1
                continue
        out, why = try_normalize(latex)
        if why:
            dropped[why] += 1
            continue
        where[key] = out
        kept.append(record)
    return kept, dropped


def normalize_file(
    input_path: str | os.PathLike, output_path: str | os.PathLike, field: str | None = None, *,
    tokenize: bool = False, indent: int | None = None,
) -> tuple[int, Counter]:
    """Normalize a JSON array of records (prediction file or ShareGPT file) into ``output_path`` (atomic).

    ``field`` ``None`` picks ``"gt"`` when the first record has it, else the ShareGPT assistant message.
    ``indent`` ``None`` keeps the project's layout: 2 for prediction files (``gt`` field), 4 otherwise.
    Returns ``(kept, dropped_by_reason)``. Raises :class:`InputError` for an unreadable file or when no record
    holds the field.
    """
    records = read_json_list(input_path)
    if field is None and isinstance(records[0], dict) and "gt" in records[0]:
        field = "gt"
    kept, dropped = normalize_records(records, field, tokenize=tokenize)
    if dropped.get("bad_record") == len(records):
        what = f"field {field!r}" if field else "a ShareGPT assistant message"
        raise InputError(f"{input_path}: no record has {what}")
    write_json(output_path, kept, indent=indent if indent is not None else (2 if field == "gt" else 4))
    return len(kept), dropped


def main_normalize(argv: Sequence[str] | None = None) -> int:
    """``preprocess/normalize_latex.py``."""
    parser = argparse.ArgumentParser(
        prog="normalize_latex.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Normalize the LaTeX of a JSON array of records the way the official *_normalized test sets were\n"
            "made (../shared/spec/normalization.md): drop records that fail the filters (delete_chars tokens,\n"
            "CJK, unbalanced { } / ( ) / [ ], a command without its arguments) and rewrite the others (R1-R8:\n"
            "\\dots/\\le/\\ge, \\left/\\right, \\mathrm, bracing \\frac/\\sqrt arguments, redundant braces,\n"
            "sub-before-sup, environments, operator names). Reproduces CROHME 2023: 2,300 -> 1,652.\n"
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
    args = parser.parse_args(argv)
    kept, dropped = normalize_file(args.input, args.output, args.field, tokenize=args.tokenize, indent=args.indent)
    total = kept + sum(dropped.values())
    print(f"{args.input} -> {args.output} | records={total} kept={kept} dropped={sum(dropped.values())}")
    for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]):
        print(f"  dropped {reason}: {n}")
    return 0


# ================================================================================ vanilla prompt files
def read_captions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``[(img_id, latex)]`` of a CROHME / MNE ``caption.txt`` (``img_id<TAB or space>tokens`` per line).

    The LaTeX is re-joined with single spaces. Raises :class:`InputError` for a missing file or a line without
    LaTeX (naming the line).
    """
    p = Path(path)
    out = []
    for lineno, line in enumerate(read_text(p, what="caption file").split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) < 2 or not parts[1].strip():
            raise InputError(f"{p}:{lineno}: expected 'img_id<TAB>latex'")
        out.append((parts[0], " ".join(parts[1].split())))
    return out


def _find_image(img_dir: Path, img_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = img_dir / f"{img_id}{suffix}"
        if p.is_file():
            return p
    return None


def _convert_image(job: tuple[str, str]) -> str | None:
    """Worker: load ``src`` black-on-white and save it to ``dst`` (skipped when ``dst`` exists: resume)."""
    from .images import load_image, save_image

    src, dst = job
    if os.path.exists(dst):
        return None
    try:
        save_image(load_image(src), dst)
    except InputError as exc:
        return str(exc)
    return None


def _image_path(dst: Path, data_root: Path, path_style: str, repo_root: Path | None) -> str:
    if path_style == "dataset_dir":
        return relative_file_name(dst, data_root)
    base = repo_root if repo_root is not None else data_root.resolve().parent
    rel = relative_file_name(dst, base)
    return rel if os.path.isabs(rel) else "./" + rel


def _write_prompts(
    items: list[tuple[str, str, Path]], data_root: Path, dataset: str, split: str, out_json: Path | None,
    image_format: str, path_style: str | None, repo_root: Path | None, workers: int | None, stats: Counter,
) -> tuple[Path, dict]:
    """Shared tail of the prompt builders: convert images (parallel, resumable), write the vanilla JSON."""
    if image_format not in ("png", "jpg"):
        raise InputError(f"image format must be png or jpg, got {image_format!r}")
    style = path_style or ("dataset_dir" if split == "train" else "repo")
    if style not in ("dataset_dir", "repo"):
        raise InputError(f"path style must be dataset_dir or repo, got {style!r}")
    img_dir = data_root / dataset / split / "images"
    seen: set[str] = set()
    jobs, records = [], []
    for img_id, latex, src in items:
        if img_id in seen:
            stats["duplicate_img_id"] += 1
            continue
        seen.add(img_id)
        dst = img_dir / f"{img_id}.{image_format}"
        jobs.append((str(src), str(dst)))
        records.append((dst, latex))
    errors = _run_parallel(_convert_image, jobs, workers, desc=f"{dataset}/{split} images")
    vanilla = TASKS["vanilla"].prompt()
    out_records = []
    for (dst, latex), err in zip(records, errors, strict=True):
        if err:
            stats["unreadable_image"] += 1
            continue
        out_records.append(sharegpt_record(_image_path(dst, data_root, style, repo_root), vanilla, latex))
    if not out_records:
        raise InputError(f"{dataset}/{split}: no record left to write")
    out = out_json or default_prompt_path(data_root, dataset, split)
    write_json_stream(out, out_records, indent=4)
    stats["written"] = len(out_records)
    return Path(out), dict(stats)


def default_prompt_path(data_root: str | os.PathLike, dataset: str, split: str) -> Path:
    """Default vanilla JSON of a split: ``<data_root>/<dataset>/train/<dataset lower>_train.json`` for ``train``
    (the training file itself, e.g. ``data/CROHME/train/crohme_train.json`` as registered in
    ``data/dataset_info.json``), else the test prompt file ``<data_root>/<dataset>/prompts/<dataset
    lower>_<split>.json`` (``data/CROHME/prompts/crohme_2014.json``)."""
    root = Path(data_root) / dataset
    if split == "train":
        return root / "train" / f"{dataset.lower()}_train.json"
    return root / "prompts" / f"{dataset.lower()}_{split}.json"


def _run_parallel(func, jobs: list, workers: int | None, desc: str) -> list:
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) < 64:
        return [func(j) for j in tqdm(jobs, desc=desc, disable=None)]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(func, jobs, chunksize=32), total=len(jobs), desc=desc, disable=None))


def build_prompts_from_crohme(
    src_dir: str | os.PathLike, data_root: str | os.PathLike = DATA_DIR, dataset: str = "CROHME",
    split: str = "train", *, limit: int | None = None, image_format: str = "png",
    out_json: str | os.PathLike | None = None, path_style: str | None = None,
    repo_root: str | os.PathLike | None = None, workers: int | None = None,
) -> tuple[Path, dict]:
    """Vanilla ShareGPT JSON from a CROHME-style folder (``caption.txt`` + ``img/<img_id>.png``).

    Images are converted to black strokes on white (:func:`unimumer.images.load_image`) and written to
    ``<data_root>/<dataset>/<split>/images/<img_id>.<image_format>`` (existing files are kept: resumable).
    The JSON (default :func:`default_prompt_path`: ``data/CROHME/train/crohme_train.json``,
    ``data/CROHME/prompts/crohme_2014.json``) holds one vanilla record per caption line with the caption's
    tokens as target. ``path_style``: see the module docstring (default: ``dataset_dir`` for ``train``, ``repo``
    otherwise, giving ``./data/CROHME/2014/images/<img_id>.jpg``). ``limit``: first N captions only.
    Returns ``(json_path, stats)``; stats count ``captions``, ``written``, ``missing_image``, ``unreadable_image``,
    ``duplicate_img_id``. Raises :class:`InputError` for a missing folder / caption file or when nothing is left.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise InputError(f"{src}: CROHME folder not found")
    captions = read_captions(src / "caption.txt")
    if limit is not None:
        captions = captions[:limit]
    stats: Counter = Counter(captions=len(captions))
    items = []
    for img_id, latex in captions:
        image = _find_image(src / "img", img_id)
        if image is None:
            stats["missing_image"] += 1
            continue
        items.append((img_id, latex, image))
    return _write_prompts(
        items, Path(data_root), dataset, split, Path(out_json) if out_json else None, image_format, path_style,
        Path(repo_root) if repo_root else None, workers, stats,
    )


def build_prompts_from_latex_json(
    src_json: str | os.PathLike, data_root: str | os.PathLike = DATA_DIR, dataset: str = "MathWriting",
    split: str = "train", *, limit: int | None = None, image_format: str = "png",
    out_json: str | os.PathLike | None = None, path_style: str | None = None,
    repo_root: str | os.PathLike | None = None, workers: int | None = None, normalize: bool = True,
) -> tuple[Path, dict]:
    """Vanilla ShareGPT JSON from a JSON array / JSONL of ``{"image": path, "latex": raw LaTeX}`` records.

    The LaTeX is tokenized (pylatexenc) and, with ``normalize``, normalized (``normalization.md``); records
    that fail are dropped and counted by reason (``tokenize_error``, the normalizer's reasons, ``bad_record``,
    ``missing_image``, ``empty_latex``). ``image`` paths are relative to the input file's folder or absolute;
    ``img_id`` is the image file stem. Images and JSON as in :func:`build_prompts_from_crohme`.
    Returns ``(json_path, stats)``. Raises :class:`InputError` for an unreadable input or when nothing is left.
    """
    src = Path(src_json)
    records = read_json_or_jsonl(src)
    if limit is not None:
        records = records[:limit]
    stats: Counter = Counter(records=len(records))
    items = []
    for rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or not isinstance(rec.get("latex"), str):
            stats["bad_record"] += 1
            continue
        image = Path(rec["image"])
        image = image if image.is_absolute() else src.parent / image
        if not image.is_file():
            stats["missing_image"] += 1
            continue
        try:
            latex = tokenize_latex(rec["latex"])
        except LatexTokenizeError:
            stats["tokenize_error"] += 1
            continue
        if normalize:
            latex, why = try_normalize(latex)
            if why:
                stats[why] += 1
                continue
        if not latex:
            stats["empty_latex"] += 1
            continue
        items.append((image.stem, latex, image))
    return _write_prompts(
        items, Path(data_root), dataset, split, Path(out_json) if out_json else None, image_format, path_style,
        Path(repo_root) if repo_root else None, workers, stats,
    )


def main_prompts(argv: Sequence[str] | None = None) -> int:
    """``preprocess/make_hmer_prompts.py``."""
    parser = argparse.ArgumentParser(
        prog="make_hmer_prompts.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Build a vanilla ShareGPT prompt file (training data or a test set for inference) from real data\n"
            "(paper Sec. 4.1; layout of ../shared/spec/datasets.md):\n"
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
            "Example: make_hmer_prompts.py --crohme-dir ../shared/data/crohme/2014 --split 2014 \\\n"
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
    common = dict(
        split=args.split, limit=args.limit, image_format=fmt, out_json=args.out, path_style=args.path_style,
        repo_root=args.repo_root, workers=args.workers,
    )
    if args.crohme_dir:
        out, stats = build_prompts_from_crohme(args.crohme_dir, args.data_root, args.dataset or "CROHME", **common)
    else:
        out, stats = build_prompts_from_latex_json(
            args.latex_json, args.data_root, args.dataset or "MathWriting", normalize=not args.no_normalize, **common
        )
    print(f"{out} | " + " ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


# ================================================================================ training sets
def _build_chunk(args: tuple) -> tuple[list[list[str]], Counter, int]:
    """Worker: serialised records of every task for one chunk of vanilla records, the skip counts, the size.

    ``args`` = ``(records, tasks, indent, source, first_index)``; a record given as ``str`` is a raw JSONL line
    (parsed here, so the reading process only splits lines).
    """
    records, tasks, indent, source, first = args
    out: list[list[str]] = [[] for _ in tasks]
    skipped: Counter = Counter()
    for index, record in enumerate(records, first):
        if type(record) is str:
            try:
                record = json.loads(record)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source}: record {index}: not valid JSON ({exc.msg})") from None
        try:
            record_latex(record)
        except RecordError:
            skipped["bad_record"] += 1
            continue
        for k, task in enumerate(tasks):
            try:
                out[k].append(_serialise(_MAKERS[task](record), indent))
            except TreeParseError:
                skipped[f"{task}_parse_error"] += 1
    return out, skipped, len(records)


def _chunks(records: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for r in records:
        chunk.append(r)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _iter_raw_or_records(src: Path) -> Iterator[Any]:
    """JSONL: the raw non-empty lines (workers parse them); a JSON array: records streamed with ijson."""
    if src.suffix.lower() != ".jsonl":
        yield from iter_records(src)
        return
    for _lineno, line in iter_text_lines(src):
        if line.strip():
            yield line


def _find_dataset_info(output_dir: Path) -> Path:
    """``dataset_info.json`` of the dataset root holding ``output_dir`` (nearest ancestor that has one), else
    ``output_dir/dataset_info.json``."""
    for d in (output_dir.resolve(), *output_dir.resolve().parents):
        if (d / "dataset_info.json").is_file():
            return d / "dataset_info.json"
    return output_dir / "dataset_info.json"


def build_training_set(
    vanilla_json: str | os.PathLike, name: str, tasks: Sequence[str] = GT_TASKS,
    output_dir: str | os.PathLike | None = None, dataset_info: str | os.PathLike | None = None,
    workers: int | None = None, *, chunk_size: int = 2000, indent: int = 4, register: bool = True,
) -> dict[str, Path]:
    """Write the training files of ``tasks`` from a vanilla ShareGPT file and register them for LLaMA-Factory.

    Inputs: ``vanilla_json`` (JSON array, streamed with ijson, or JSONL) of vanilla records; ``name`` the base
    dataset name (``crohme_train``); ``tasks`` ⊆ ``vanilla``, ``tree``, ``can``. Outputs: ``<output_dir>/<dataset
    name>.json`` per task with the official names (``dataset_name(name, task)``: ``crohme_train``,
    ``crohme_train_tree``, ``crohme_train_can``), default ``output_dir`` = the input's folder; each is merged
    into ``dataset_info`` (default: the nearest ``dataset_info.json`` above ``output_dir``, else one in
    ``output_dir``) with ``file_name`` relative to that file's folder, other entries untouched.
    Records are processed in chunks on ``workers`` processes (default: all cores; 1 = in-process) with a bounded
    number of chunks in flight, so memory does not grow with the corpus. Tree-CoT parse errors drop the record
    from the tree file only; malformed records are dropped everywhere. Returns ``{dataset name: path}`` and
    prints the counts. Raises :class:`InputError` (bad task / name / input).
    """
    from tqdm import tqdm

    tasks = tuple(dict.fromkeys(tasks))
    for t in tasks:
        if t not in _MAKERS:
            raise InputError(f"unknown task {t!r} (choose from {', '.join(_MAKERS)})")
    if not tasks:
        raise InputError("no task given")
    check_dataset_base_name(name)
    src = Path(vanilla_json)
    out_dir = Path(output_dir) if output_dir else src.parent
    names = {t: dataset_name(name, t) for t in tasks}
    paths = {t: out_dir / f"{names[t]}.json" for t in tasks}
    if any(p.resolve() == src.resolve() for t, p in paths.items() if t != "vanilla"):
        raise InputError(f"{src}: an output would overwrite the input")
    workers = workers or os.cpu_count() or 1
    skipped: Counter = Counter()
    total = 0
    # every output appears only if the whole build succeeds (atomic_open drops its temporary file otherwise)
    with contextlib.ExitStack() as stack:
        writers = {t: JsonArrayWriter(stack.enter_context(atomic_open(paths[t]))) for t in tasks}
        jobs = (
            (chunk, tasks, indent, str(src), k * chunk_size)
            for k, chunk in enumerate(_chunks(_iter_raw_or_records(src), chunk_size))
        )
        bar = tqdm(desc=f"build {name}", unit="rec", disable=None)

        def consume(result) -> None:
            nonlocal total
            bodies, skips, n = result
            skipped.update(skips)
            for k, t in enumerate(tasks):
                w = writers[t]
                for body in bodies[k]:
                    w.write(body)
            total += n
            bar.update(n)

        if workers <= 1:
            for job in jobs:
                consume(_build_chunk(job))
        else:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                inflight: deque = deque()
                for job in jobs:
                    inflight.append(pool.apply_async(_build_chunk, (job,)))
                    if len(inflight) >= 2 * workers:
                        consume(inflight.popleft().get())
                while inflight:
                    consume(inflight.popleft().get())
        bar.close()
        if total == 0:
            raise InputError(f"{src}: no records")
        for w in writers.values():
            w.finish()
    if register:
        info = Path(dataset_info) if dataset_info else _find_dataset_info(out_dir)
        register_datasets(info, {names[t]: relative_file_name(paths[t], info.parent) for t in tasks})
        _warn_unresolved_images(src, info.parent)
    detail = " ".join(f"{k}={v}" for k, v in sorted(skipped.items()))
    for t in tasks:
        print(f"{names[t]}: {writers[t].n} records -> {paths[t]}")
    print(f"{name}: input records={total} skipped: {detail or 'none'}")
    return {names[t]: paths[t] for t in tasks}


def _warn_unresolved_images(src: Path, dataset_dir: Path) -> None:
    """Warn (stderr) when the first record's image resolves neither through ``dataset_dir`` nor the CWD."""
    for record in iter_records(src):
        try:
            image, _ = record_latex(record)
        except RecordError:
            continue
        if not ((dataset_dir / image).is_file() or Path(image).is_file()):
            print(f"warning: image {image!r} is found neither under {dataset_dir} (LLaMA-Factory media_dir) nor "
                  "relative to the working directory", file=sys.stderr)
        return


def main_build(argv: Sequence[str] | None = None) -> int:
    """``preprocess/build_training_data.py``."""
    parser = argparse.ArgumentParser(
        prog="build_training_data.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "One command for a training set (paper Sec. 3-4): from a vanilla ShareGPT file (JSON array or JSONL,\n"
            "records with images[0] and messages[1].value = tokenized LaTeX) write NAME.json (vanilla),\n"
            "NAME_tree.json (Tree-CoT) and NAME_can.json (symbol counting) with the official dataset names of\n"
            "../shared/spec/datasets.md, and register each in dataset_info.json (merged; other entries kept;\n"
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

