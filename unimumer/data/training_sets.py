"""Training sets: a vanilla ShareGPT file → ``NAME.json``, ``NAME_tree.json``, ``NAME_can.json`` registered in
``dataset_info.json``, streamed on all cores."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import (
    JsonArrayWriter,
    atomic_open,
    check_outputs,
    iter_text_lines,
    register_datasets,
    relative_file_name,
)
from ..latex.tree import TreeParseError
from ..tasks import GT_TASKS, check_dataset_base_name, dataset_name
from .records import _MAKERS, RecordError, record_latex
from .serialisation import _serialise, iter_records


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
    info = (Path(dataset_info) if dataset_info else _find_dataset_info(out_dir)) if register else None
    # the vanilla file named like the input is the input itself (README: build next to make_hmer_prompts' output):
    # it is registered as it is, never rewritten; every file written must be writable and no input
    in_place = "vanilla" in tasks and src.is_file() and paths["vanilla"].exists() and paths["vanilla"].samefile(src)
    built = tuple(t for t in tasks if not (in_place and t == "vanilla"))
    check_outputs(inputs=[src], outputs=[*(paths[t] for t in built), info])  # before any work
    workers = workers or os.cpu_count() or 1
    skipped: Counter = Counter()
    total = 0
    # every output appears only if the whole build succeeds (atomic_open drops its temporary file otherwise)
    with contextlib.ExitStack() as stack:
        writers = {t: JsonArrayWriter(stack.enter_context(atomic_open(paths[t]))) for t in built}
        jobs = (
            (chunk, built, indent, str(src), k * chunk_size)
            for k, chunk in enumerate(_chunks(_iter_raw_or_records(src), chunk_size))
        )
        bar = tqdm(desc=f"build {name}", unit="rec", disable=None)

        def consume(result) -> None:
            nonlocal total
            bodies, skips, n = result
            skipped.update(skips)
            for k, t in enumerate(built):
                w = writers[t]
                for body in bodies[k]:
                    w.write(body)
            total += n
            bar.update(n)

        for result in _map_chunks(jobs, workers):
            consume(result)
        bar.close()
        if total == 0:
            raise InputError(f"{src}: no records")
        for w in writers.values():
            w.finish()
    if register:
        register_datasets(info, {names[t]: relative_file_name(paths[t], info.parent) for t in tasks})
        _warn_unresolved_images(src, info.parent)
    for t in tasks:
        if t in writers:
            print(f"{names[t]}: {writers[t].n} records -> {paths[t]}")
        else:
            _print_in_place(names[t], src, total, skipped)
    detail = " ".join(f"{k}={v}" for k, v in sorted(skipped.items()))
    print(f"{name}: input records={total} skipped: {detail or 'none'}")
    return {names[t]: paths[t] for t in tasks}


def _print_in_place(name: str, src: Path, total: int, skipped: Counter) -> None:
    """The count line of a vanilla dataset that is the input itself (and the warning when it holds bad records)."""
    print(f"{name}: the input {src} itself, kept as it is ({total} records)")
    if skipped.get("bad_record"):
        print(f"warning: {src}: {skipped['bad_record']} malformed records stay in it (left out of the "
              "other files); give --output-dir to write a cleaned copy", file=sys.stderr)


def _map_chunks(jobs, workers: int):
    """``_build_chunk(job)`` of every job, in order: in-process with one worker, else on a spawn pool with at most
    ``2 * workers`` chunks in flight (memory stays bounded)."""
    if workers <= 1:
        for job in jobs:
            yield _build_chunk(job)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        inflight: deque = deque()
        for job in jobs:
            inflight.append(pool.apply_async(_build_chunk, (job,)))
            if len(inflight) >= 2 * workers:
                yield inflight.popleft().get()
        while inflight:
            yield inflight.popleft().get()


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
