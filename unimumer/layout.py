"""Names of the files a run writes beside its predictions, and the one prediction-file finder.

Layout (the official ``scripts/vllm_infer.py`` naming): ``<stem>_pred.json`` predictions, ``<stem>_results.txt``
text report, ``<stem>_cdm.json`` ExpRate@CDM, ``<stem><suffix>.run.json`` run record, and while running
``.<stem><suffix>.progress.jsonl``. The released ``paper_final/`` files are named ``<stem>.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

PRED_SUFFIX = "_pred"
RESULTS_SUFFIX = "_results.txt"
CDM_SUFFIX = "_cdm.json"
RUN_RECORD_SUFFIX = ".run.json"


def stem_of(path: str | os.PathLike) -> str:
    """The split stem of a prediction file: its name without ``.json`` and a trailing ``_pred``.

    ``crohme_2014_pred.json`` → ``crohme_2014``; ``crohme_2014.json`` (``paper_final/`` naming) → ``crohme_2014``.
    """
    name = Path(path).name
    stem = name[: -len(".json")] if name.lower().endswith(".json") else Path(name).stem
    return stem[: -len(PRED_SUFFIX)] if stem.endswith(PRED_SUFFIX) and len(stem) > len(PRED_SUFFIX) else stem


def run_record_path(final: str | os.PathLike) -> Path:
    """``<stem><suffix>.run.json`` next to the prediction file ``<stem><suffix>.json``."""
    final = Path(final)
    return final.with_name(final.stem + RUN_RECORD_SUFFIX)


def progress_path(output_dir: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``<output_dir>/.<stem><suffix>.progress.jsonl``."""
    return Path(output_dir) / f".{stem}{suffix}.progress.jsonl"


def find_predictions(path: str | os.PathLike, *, recursive: bool = False, any_json: bool = False) -> list[Path]:
    """The prediction files ``path`` names: a file → ``[file]``; a folder → its ``*_pred.json`` files, sorted
    (``recursive``: every one below it; ``any_json``: its ``*.json`` files when it holds no ``*_pred.json``, the
    ``paper_final/`` naming). Raises :class:`InputError` for a missing path or a folder without such files.

    Callers: ``eval`` (flat), ``summary`` (``recursive``, a data root), ``analyze`` (``any_json``).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_dir():
        return [p]
    pattern = f"*{PRED_SUFFIX}.json"
    files = sorted(f for f in (p.rglob(pattern) if recursive else p.glob(pattern)) if f.is_file())
    if not files and any_json:
        files = sorted(f for f in p.glob("*.json") if f.is_file())
    if not files:
        where = "below this folder" if recursive else "in this folder"
        raise InputError(f"{p}: no *{PRED_SUFFIX}.json{' / *.json' if any_json else ''} prediction files {where}")
    return files
