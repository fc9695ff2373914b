"""Engine-agnostic inference plumbing: prompt files → prediction records, sharding, resumable progress.

Everything here is pure Python (no torch, no vLLM) so it is shared by both engines, by the data-parallel parent
process and by the tests.

Prediction record (official layout of ``scripts/vllm_infer.py`` in the Uni-MuMER repository, key order kept)::

    {"gt": ..., "pred": ..., "image_path": ..., "img_id": ...}

``gt`` is the stripped gpt turn of the prompt record, ``image_path`` the path exactly as written in the prompt
file, ``img_id`` its file stem, ``pred`` the final LaTeX extracted from the model output (``Task.extract_answer``).
Records that could not be produced normally carry one extra key, ``"error"`` (a one-line reason: image not
found, unreadable image, empty output, engine failure); their ``pred`` is ``""`` so the official metrics score
them as wrong. A generation cut by the token limit carries ``"truncated": true``. With ``raw=True`` the untouched
model output is kept under ``"output"``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import read_json_list, sharegpt_fields, write_json
from ..layout import RUN_RECORD_SUFFIX, progress_path  # noqa: F401  (progress_path: re-exported)
from ..tasks import Task, get_task, task_for_prompt

SYSTEM_MESSAGE = "You are a helpful assistant."
#: LLaMA-Factory ``image_max_pixels`` of every released training config (official ``train/*.yaml``).
TRAIN_MAX_PIXELS = 262144
#: LLaMA-Factory's default ``image_min_pixels`` (32 × 32), which the released configs keep.
TRAIN_MIN_PIXELS = 32 * 32
PROGRESS_VERSION = 1


@dataclass(frozen=True)
class PromptItem:
    """One inference request read from a prompt file.

    Attributes:
        index: position in the prompt file (0-based); output records keep this order.
        image_path: the image path exactly as written in the file (copied to the output record).
        prompt: the human-turn text without ``<image>``, stripped (as the official script strips it).
        gt: the stripped gpt turn (ground truth).
        task: the task whose answer extractor turns the model output into ``pred``.
    """

    index: int
    image_path: str
    prompt: str
    gt: str
    task: Task


def img_id(image_path: str) -> str:
    """The official ``img_id``: the image file stem (``./data/CROHME/2014/images/18_em_0.jpg`` → ``18_em_0``)."""
    return Path(image_path).stem


def read_prompt_file(path: str | os.PathLike, task: str | None = None) -> list[PromptItem]:
    """Read an official prompt file (ShareGPT JSON array, official ``data.zip``) into :class:`PromptItem` s.

    Args:
        path: the ``*.json`` prompt file.
        task: a registered task name forcing the answer extractor; ``None`` picks it per record from the prompt
            (:func:`unimumer.tasks.task_for_prompt`).

    Raises :class:`InputError` naming the file and record when the file is missing / not JSON / not an array,
    a record is not a ShareGPT record, or (``task=None``) a prompt matches no registered task.
    """
    p = Path(path)
    records = read_json_list(p)
    forced = get_task(task) if task else None
    items = []
    for i, rec in enumerate(records):
        try:
            image, prompt, gt = sharegpt_fields(rec, i)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from None
        prompt = prompt.strip()
        if forced is not None:
            t = forced
        else:
            try:
                t = task_for_prompt(prompt)
            except InputError as exc:
                raise InputError(f"{p}: record {i}: {exc} (pass --task)") from None
        items.append(PromptItem(i, image, prompt, gt.strip(), t))
    return items


def list_prompt_files(input_dir: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """The ``*.json`` files directly inside ``input_dir``, sorted by name (the official order).

    With ``suffix`` (the run's prediction suffix, ``_pred``), this tool's own outputs of an earlier run into the same
    folder are left out (:func:`is_own_output`); :func:`own_outputs` lists them.
    Raises :class:`InputError` when the folder does not exist or holds no (other) ``*.json`` file.
    """
    d = Path(input_dir)
    if not d.is_dir():
        raise InputError(f"{d}: input folder not found")
    files = sorted(f for f in d.glob("*.json") if f.is_file())
    if suffix is not None:
        files = [f for f in files if not is_own_output(f, suffix)]
    if not files:
        raise InputError(f"{d}: no *.json prompt file in the input folder"
                         + (" (besides this tool's own outputs)" if suffix is not None else ""))
    return files


def is_own_output(path: Path, suffix: str) -> bool:
    """Whether ``path`` is an output of ``scripts/vllm_infer.py``: ``<stem><suffix>.json``, a run record
    ``*.run.json``, or a prediction file with its run record beside it (made with another ``--suffix``)."""
    name = path.name
    return (name.endswith(f"{suffix}.json") or name.endswith(RUN_RECORD_SUFFIX)
            or path.with_name(path.stem + RUN_RECORD_SUFFIX).is_file())


def own_outputs(input_dir: str | os.PathLike, suffix: str) -> list[Path]:
    """The ``*.json`` files of ``input_dir`` that :func:`list_prompt_files` leaves out as this tool's outputs."""
    return sorted(f for f in Path(input_dir).glob("*.json") if f.is_file() and is_own_output(f, suffix))


def resolve_image(image_path: str, image_root: str | os.PathLike | None) -> Path:
    """Where an image of a prompt file lives on disk.

    Absolute paths are kept; relative ones are joined to ``image_root`` (``None`` → the current directory, the
    official behaviour: prompt files say ``./data/CROHME/...`` and the scripts run from the repository root).
    """
    p = Path(image_path)
    if p.is_absolute() or image_root is None:
        return p
    return Path(image_root) / p


def make_record(
    item: PromptItem, output: str | None, error: str | None = None, *, raw: bool = False, truncated: bool = False
) -> dict:
    """The official prediction record of ``item`` for the model ``output``.

    ``pred`` = ``item.task.extract_answer(output)``. When ``error`` is given, or the output (or the extracted
    answer) is empty, ``pred`` is ``""`` and the record gets an ``"error"`` key (``"empty output"`` for the
    latter). ``truncated=True`` (generation stopped by the token limit) adds ``"truncated": true``; the key is
    absent otherwise. ``raw=True`` adds the untouched output under ``"output"``. Returns a new dict with keys in
    the official order ``gt, pred, image_path, img_id`` (then ``error`` / ``truncated`` / ``output``).
    """
    pred = ""
    if error is None:
        pred = item.task.extract_answer(output or "")
        if not pred:
            error = "empty output"
    rec = {"gt": item.gt, "pred": pred, "image_path": item.image_path, "img_id": img_id(item.image_path)}
    if error is not None:
        rec["error"] = error
    if truncated:
        rec["truncated"] = True
    if raw:
        rec["output"] = output if output is not None else ""
    return rec


def shard(indices: Sequence[int], n_shards: int, k: int) -> list[int]:
    """Shard ``k`` of ``n_shards`` of ``indices``, interleaved (``indices[k::n]``).

    Interleaving keeps the shards balanced when a file is ordered by difficulty or length. Raises
    :class:`InputError` on an invalid ``n_shards`` / ``k``.
    """
    if n_shards < 1 or not 0 <= k < n_shards:
        raise InputError(f"invalid shard {k} of {n_shards}")
    return list(indices[k::n_shards])


def visible_devices(env: dict | None = None, device_count: int | None = None) -> list[str] | None:
    """The accelerator ids this process may use, as strings.

    - ``CUDA_VISIBLE_DEVICES`` set → its comma-separated entries (``""`` → ``[]``: no GPU, e.g. CPU runs);
    - unset → ``["0", ..., str(device_count - 1)]`` when ``device_count`` is given, else ``None`` (unknown).
    """
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return [d.strip() for d in value.split(",") if d.strip()]
    if device_count is None:
        return None
    return [str(i) for i in range(device_count)]


def device_groups(devices: list[str] | None, data_parallel: int, tensor_parallel: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each data-parallel worker.

    Worker ``k`` gets the contiguous slice ``devices[k*tp:(k+1)*tp]`` of the user's own selection (the value is
    only ever subset, never replaced by other ids). With no accelerator (``devices == []``, CPU) every worker gets
    ``""``; ``None`` (unknown) leaves the variable untouched. Raises :class:`InputError` when fewer than
    ``data_parallel × tensor_parallel`` devices are visible.
    """
    if data_parallel < 1 or tensor_parallel < 1:
        raise InputError("--data-parallel-size and --tensor-parallel-size must be >= 1")
    if devices is None:
        return [None] * data_parallel
    if not devices:
        return [""] * data_parallel
    need = data_parallel * tensor_parallel
    if len(devices) < need:
        raise InputError(
            f"--data-parallel-size {data_parallel} x --tensor-parallel-size {tensor_parallel} needs {need} GPUs, "
            f"only {len(devices)} visible ({','.join(devices)})"
        )
    return [",".join(devices[k * tensor_parallel:(k + 1) * tensor_parallel]) for k in range(data_parallel)]


# --------------------------------------------------------------------------------------------------- progress
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
