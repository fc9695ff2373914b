"""Resumable progress of a batch run: the locked, append-only progress file, the prediction file writer, counts.

Pure Python (no torch, no vLLM); records are those of :mod:`unimumer.inference.jobs`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import write_json
from ..layout import progress_path  # noqa: F401  (re-exported for the runner)
from .jobs import PromptItem

PROGRESS_VERSION = 1


class ProgressFile:
    """Append-only record of finished predictions, so that a killed run restarts where it stopped.

    Layout (JSON lines): a header ``{"unimumer_progress": 1, "prompt_file": NAME, "records": N,
    "settings": {...}}`` then one ``{"index": i, "record": {...}}`` line per finished record. Several worker
    processes may append to the same file: each batch is written with one ``write`` under an exclusive
    ``flock`` and flushed to disk. A line cut short by a kill is ignored when the file is read back.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        #: set by :meth:`load` when the file was written with other settings but holds no finished record
        self.stale = False

    def header(self, prompt_file: str, n_records: int, settings: dict) -> dict:
        """The header line written for a new file."""
        return {
            "unimumer_progress": PROGRESS_VERSION,
            "prompt_file": prompt_file,
            "records": n_records,
            "settings": settings,
        }

    def load(self, items: Sequence[PromptItem], prompt_file: str, settings: dict) -> dict[int, dict]:
        """Stored records ``{index: record}`` of an existing progress file (``{}`` when there is none); for an
        index written twice (a failed record retried) the later line wins. Records with an ``error`` key are not
        finished work (:func:`is_finished`): the caller redoes them.

        A file written with other ``settings`` that holds no finished record (e.g. every image was missing) has
        nothing worth keeping: ``{}`` is returned and :attr:`stale` set (:meth:`resume` then starts it again).
        Raises :class:`InputError` when the file was written for another prompt file / record count, for other
        settings and holds finished records, or when a stored record does not belong to the prompt record of the
        same index (its ``image_path``).
        """
        self.stale = False
        if not self.path.exists():
            return {}
        done: dict[int, dict] = {}
        header = None
        settings_error = None
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if header is None:
                    header = obj
                    self._check_header(obj, prompt_file, len(items), None)
                    try:
                        self._check_header(obj, prompt_file, len(items), settings)
                    except InputError as exc:
                        settings_error = exc
                    continue
                if not isinstance(obj, dict) or "index" not in obj or "record" not in obj:
                    continue
                i, rec = obj["index"], obj["record"]
                if not isinstance(i, int) or not 0 <= i < len(items) or not isinstance(rec, dict):
                    raise InputError(f"{self.path}: record index {i!r} out of range; delete the progress file")
                if rec.get("image_path") != items[i].image_path:
                    raise InputError(
                        f"{self.path}: record {i} is for {rec.get('image_path')!r}, the prompt file says "
                        f"{items[i].image_path!r}; delete the progress file (or pass --overwrite)"
                    )
                done[i] = rec
        if settings_error is not None:
            if any(is_finished(r) for r in done.values()):
                raise settings_error
            self.stale = True
            return {}
        return done

    def resume(self, items: Sequence[PromptItem], prompt_file: str, settings: dict) -> dict[int, dict]:
        """:meth:`load`, then :meth:`create` the file when it is missing or :attr:`stale`. Returns the stored
        records (finished or failed); raises as :meth:`load`."""
        done = self.load(items, prompt_file, settings)
        if self.stale or not self.path.exists():
            self.create(prompt_file, len(items), settings)
        return done

    def _check_header(self, obj: Any, prompt_file: str, n: int, settings: dict | None) -> None:
        if not isinstance(obj, dict) or obj.get("unimumer_progress") != PROGRESS_VERSION:
            raise InputError(f"{self.path}: not a unimumer progress file; delete it (or pass --overwrite)")
        if obj.get("prompt_file") != prompt_file or obj.get("records") != n:
            raise InputError(
                f"{self.path}: written for {obj.get('prompt_file')!r} with {obj.get('records')} records, "
                f"not {prompt_file!r} with {n}; delete it (or pass --overwrite)"
            )
        if settings is None:
            return
        old = obj.get("settings") or {}
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise InputError(
                f"{self.path}: the unfinished run used other settings ({shown}); rerun with the same settings "
                "to resume, or pass --overwrite to start again"
            )

    def create(self, prompt_file: str, n_records: int, settings: dict) -> None:
        """Start a new progress file holding only the header (replaces an existing one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(self.header(prompt_file, n_records, settings), ensure_ascii=False) + "\n"
        with self.path.open("w", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, finished: Iterable[tuple[int, dict]]) -> None:
        """Append ``(index, record)`` pairs as one locked, flushed and fsync'ed write.

        If the file ends in a line cut short by a kill, the new lines start on a fresh line (the cut one stays
        unreadable and is ignored by :meth:`load`).
        """
        text = "".join(
            json.dumps({"index": i, "record": rec}, ensure_ascii=False) + "\n" for i, rec in finished
        )
        if not text:
            return
        data = text.encode("utf-8")
        with self.path.open("a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                end = fh.seek(0, os.SEEK_END)
                if end > 0:
                    fh.seek(end - 1)
                    if fh.read(1) != b"\n":
                        data = b"\n" + data
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def remove(self) -> None:
        """Delete the progress file (after the final output is written)."""
        self.path.unlink(missing_ok=True)


def write_predictions(path: str | os.PathLike, records: Sequence[dict]) -> Path:
    """Write a prediction file exactly like the official script (``ensure_ascii=False, indent=2``), atomically."""
    return write_json(path, list(records), indent=2)


def is_finished(record: dict) -> bool:
    """Whether a stored record is finished work: it has no ``error`` key. A failed record (missing image, engine
    error, empty output) is redone when the run is resumed or rerun."""
    return "error" not in record


def error_summary(records: Iterable[dict]) -> dict[str, int]:
    """Count records by ``error`` reason (the text before the first ``:``), e.g. ``{"image not found": 2}``."""
    counts: dict[str, int] = {}
    for rec in records:
        err = rec.get("error")
        if err:
            key = err.split(":", 1)[0]
            counts[key] = counts.get(key, 0) + 1
    return counts
