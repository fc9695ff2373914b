"""Record conversion: vanilla ShareGPT records → Tree-CoT / symbol-counting records, and LaTeX normalisation of
prediction / ShareGPT records.

Sources: paper Sec. 3 (the tasks), the official ``preprocess/make_unimumer_tree_data.py`` (record semantics, skip
behaviour), its examples ``preprocess/examples/unimumer_tree/`` and the official ``*_normalized`` test sets.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import (
    read_json_list,
    sharegpt_record,
    write_json,
    write_json_stream,
)
from ..latex.counting import build_count_target
from ..latex.normalize import try_normalize
from ..latex.tokenize import LatexTokenizeError, tokenize_latex
from ..latex.tree import TreeParseError, build_tree_target
from ..tasks import TASKS
from .serialisation import iter_records

#: Output-name suffix of each task of ``make_unimumer_tree_data.py`` (official ``TASK_SUFFIXES``).
TREE_TASKS = {"tree": TASKS["tree"].suffix, "can": TASKS["can"].suffix}


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

        seen = 0
        for index, record in enumerate(tqdm(iter_records(src), desc=src.name, unit="rec", disable=None)):
            seen += 1
            try:
                yield convert_record(record, task)
            except (TreeParseError, RecordError) as exc:
                if strict:
                    raise InputError(f"{src}: record {index}: {exc}") from None
                skipped["parse_error" if isinstance(exc, TreeParseError) else "bad_record"] += 1
        if not seen:  # one rule for every builder: an empty input is refused (the atomic write leaves nothing)
            raise InputError(f"{src}: the input holds no records")

    kept = write_json_stream(output_path, records(), indent=indent)
    return kept, skipped


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
    records: Iterable[Any], field: str | None = None, *, tokenize: bool = False, use_only_c: bool = True,
) -> tuple[list, Counter]:
    """Keep the records whose LaTeX passes the normalization filters and rewrite it (the official ``*_normalized`` test sets).

    ``field``: the key holding the LaTeX (``"gt"`` for prediction files); ``None`` = the ShareGPT assistant
    message. ``tokenize``: tokenize raw LaTeX with pylatexenc first. ``use_only_c``: array alignments become ``c``
    (official default). Other fields and the order are kept.
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
        out, why = try_normalize(latex, use_only_c=use_only_c)
        if why:
            dropped[why] += 1
            continue
        where[key] = out
        kept.append(record)
    return kept, dropped


def normalize_file(
    input_path: str | os.PathLike, output_path: str | os.PathLike, field: str | None = None, *,
    tokenize: bool = False, indent: int | None = None, use_only_c: bool = True,
) -> tuple[int, Counter]:
    """Normalize a JSON array of records (prediction file or ShareGPT file) into ``output_path`` (atomic).

    ``field`` ``None`` picks ``"gt"`` when the first record has it, else the ShareGPT assistant message.
    ``indent`` ``None`` keeps the project's layout: 2 for prediction files (``gt`` field), 4 otherwise.
    Returns ``(kept, dropped_by_reason)``. Raises :class:`InputError` for an unreadable file or when no record
    holds the field.
    """
    from tqdm import tqdm

    records = read_json_list(input_path)
    if field is None and isinstance(records[0], dict) and "gt" in records[0]:
        field = "gt"
    bar = tqdm(records, desc=f"normalize {Path(input_path).name}", unit="rec", disable=None)
    kept, dropped = normalize_records(bar, field, tokenize=tokenize, use_only_c=use_only_c)
    if dropped.get("bad_record") == len(records):
        what = f"field {field!r}" if field else "a ShareGPT assistant message"
        raise InputError(f"{input_path}: no record has {what}")
    write_json(output_path, kept, indent=indent if indent is not None else (2 if field == "gt" else 4))
    return len(kept), dropped
