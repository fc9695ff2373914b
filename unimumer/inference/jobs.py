"""Inference jobs, engine-agnostic: prompt files → prediction records, image paths, sharding, device groups.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import read_json_list, sharegpt_fields
from ..layout import RUN_RECORD_SUFFIX
from ..tasks import Task, get_task, task_for_prompt

SYSTEM_MESSAGE = "You are a helpful assistant."
#: LLaMA-Factory ``image_max_pixels`` of every released training config (official ``train/*.yaml``).
TRAIN_MAX_PIXELS = 262144
#: LLaMA-Factory's default ``image_min_pixels`` (32 × 32), which the released configs keep.
TRAIN_MIN_PIXELS = 32 * 32


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
