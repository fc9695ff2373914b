"""``scripts/check_config.py``: validate LLaMA-Factory training configs before a run (no GPU, no model download).

Per config (with ``key=value`` overrides): LLaMA-Factory's own ``get_train_args`` as rank 0 of a one-process
torchrun launch (on CPU, ``bf16`` is parsed with ``use_cpu``), the template name, the model folder, and every
dataset resolved with LLaMA-Factory's ``get_dataset_list`` (optionally every record and image). Output: a report
per config; relative paths resolve against the working directory, as in LLaMA-Factory. Details: docs/training.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import dataset_names, load_config

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DatasetStatus:
    """Resolution of one dataset name of a config.

    ``status``: ``ok`` (registered, file or folder present), ``registered`` (file not checked: registry-only mode),
    ``unregistered`` (not in ``dataset_info.json``),
    ``missing`` (registered, file absent), ``remote`` (hub / script / cloud entry, not checked offline) or
    ``bad_records`` (``check_records`` found unreadable records or missing images; ``detail`` says which).
    """

    name: str
    role: str
    status: str
    path: str | None = None
    detail: str = ""
    records: int | None = None


@dataclass
class ConfigCheck:
    """The result of checking one config: parser error, other errors, notes and the dataset statuses."""

    config: str
    overrides: list[str]
    args_error: str | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    datasets: list[DatasetStatus] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the parser accepted the config, no other error was found and every dataset resolved."""
        return self.args_error is None and not self.errors and all(
            d.status in ("ok", "registered", "remote") for d in self.datasets
        )

    def failing(self, status: str) -> list[DatasetStatus]:
        """The datasets with the given status."""
        return [d for d in self.datasets if d.status == status]

    def render(self) -> str:
        """Human-readable report (first line ``CONFIG: OK`` or ``CONFIG: INVALID``)."""
        head = f"{self.config}{' ' + ' '.join(self.overrides) if self.overrides else ''}: {'OK' if self.ok else 'INVALID'}"
        lines = [head]
        if self.args_error:
            lines.append(f"  LLaMA-Factory argument parser: FAILED: {self.args_error}")
        else:
            lines.append("  LLaMA-Factory argument parser: OK")
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  note: {n}" for n in self.notes]
        n_ok, n_reg = len(self.failing("ok")), len(self.failing("registered"))
        found = f"{n_reg} registered (files not checked)" if n_reg else f"{n_ok} found"
        lines.append(f"  datasets: {len(self.datasets)} named, {found}"
                     + (f", {len(self.failing('remote'))} remote (not checked)" if self.failing("remote") else ""))
        unreg = self.failing("unregistered")
        if unreg:
            lines.append(f"  not registered in dataset_info.json ({len(unreg)}): {', '.join(d.name for d in unreg)}")
        missing = self.failing("missing")
        if missing:
            lines.append(f"  registered but the file is missing ({len(missing)}):")
            lines += [f"    {d.name}: {d.path}" for d in missing]
            lines.append("  hint: build the datasets (preprocess/, docs/training.md) or import the released data with "
                         "scripts/prepare_released_data.py --source DIR --output data/")
        bad = self.failing("bad_records")
        if bad:
            lines.append(f"  files with bad records ({len(bad)}):")
            lines += [f"    {d.name}: {d.path}: {d.detail}" for d in bad]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _single_process_torchrun_env() -> Iterator[bool]:
    """Set the environment of rank 0 of a one-process torchrun launch (unless already under torchrun).

    Yields whether it did; restores the environment and tears down the process group it caused afterwards.
    """
    if "LOCAL_RANK" in os.environ:
        yield False
        return
    saved = {k: os.environ.get(k) for k in _TORCHRUN_ENV}
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    try:
        yield True
    finally:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
            from accelerate.state import AcceleratorState, PartialState

            AcceleratorState._reset_state(reset_partial_state=True)
            PartialState._reset_state()
        except Exception:  # pragma: no cover - best-effort cleanup
            pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _chdir(path: str | os.PathLike | None) -> Iterator[None]:
    """``contextlib.chdir`` (Python >= 3.11) that also accepts ``None`` (stay)."""
    if path is None:
        yield
        return
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _import_llamafactory():
    # quiet LLaMA-Factory's INFO logs while its loggers are created, without leaking the setting into the
    # environment of this process (training subprocesses launched later would inherit it and lose their logs)
    saved = os.environ.get("LLAMAFACTORY_VERBOSITY")
    os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")
    try:
        from llamafactory.data.parser import get_dataset_list
        from llamafactory.data.template import TEMPLATES
        from llamafactory.extras.env import VERSION
        from llamafactory.hparams import get_train_args
    except ImportError as exc:
        first = (str(exc).strip().splitlines() or ["import failed"])[0]
        raise InputError(
            f"cannot import LLaMA-Factory ({first}); install requirements_training.txt "
            "(on the CPU environment set DISABLE_VERSION_CHECK=1)"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("LLAMAFACTORY_VERBOSITY", None)
        else:
            os.environ["LLAMAFACTORY_VERBOSITY"] = saved
    return get_train_args, get_dataset_list, TEMPLATES, VERSION


def _gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _parse_with_llamafactory(cfg: dict[str, Any], get_train_args, notes: list[str]) -> str | None:
    """Run LLaMA-Factory's ``get_train_args`` on ``cfg``; returns the error line or ``None``. Appends notes."""
    args = dict(cfg)
    precision = [k for k in ("bf16", "fp16") if args.get(k)]
    if precision and not args.get("use_cpu") and not _gpu_available():
        args["use_cpu"] = True
        notes.append(f"{', '.join(f'{k}: true' for k in precision)} needs a GPU; none here, so the arguments were "
                     "parsed with use_cpu=true added (precision support itself is not checked)")
    with _single_process_torchrun_env() as simulated:
        try:
            model_args, data_args, training_args, finetuning_args, _ = get_train_args(args)
        except SystemExit as exc:  # HfArgumentParser may exit on --help-like input
            return f"argument parser exited ({exc.code})"
        except Exception as exc:
            return _first_line(exc)
    if simulated:
        notes.append("parsed as rank 0 of a one-process torchrun launch (scripts/train.sh launches through torchrun)")
    per_gpu = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    batch = f"effective batch = GPUs x {training_args.per_device_train_batch_size} per device x " \
            f"{training_args.gradient_accumulation_steps} grad-accum = {per_gpu} per GPU"
    if per_gpu and 512 % per_gpu == 0:
        batch += f" (512, the paper's, on {512 // per_gpu} GPUs in total)"
    notes.append(batch)
    return None


def _check_model(cfg: dict[str, Any], errors: list[str], notes: list[str]) -> None:
    model = cfg.get("model_name_or_path")
    if not model:
        errors.append("model_name_or_path is not set")
        return
    p = Path(str(model))
    if p.exists():
        if not (p / "config.json").is_file():
            errors.append(f"model_name_or_path {model}: local folder without config.json")
        return
    if _HUB_ID.match(str(model)) and not str(model).startswith((".", "/")):
        notes.append(f"model {model}: not a local folder, so a Hugging Face Hub id (downloaded at training time; "
                     "not checked here)")
    else:
        errors.append(f"model_name_or_path {model}: no such local folder and not a Hub id")


def _check_files(cfg: dict[str, Any], errors: list[str]) -> None:
    ds = cfg.get("deepspeed")
    if isinstance(ds, str) and not Path(ds).is_file():
        errors.append(f"deepspeed: {ds} not found (relative to the working directory {os.getcwd()})")
    media = cfg.get("media_dir")
    if media and not Path(str(media)).is_dir():
        errors.append(f"media_dir: {media} is not a folder")


def _check_adapters(cfg: dict[str, Any], check_files: bool, errors: list[str], notes: list[str]) -> None:
    """LoRA settings: ``adapter_name_or_path`` (stage 2 of the two-stage recipe continues stage 1's adapter) and
    the QLoRA keys. A local adapter folder must hold a PEFT adapter trained on ``model_name_or_path``
    (:func:`unimumer.inference.adapters.check_adapter`); an adapter that does not exist yet is an error when files are
    checked (train the earlier stage first) and a note with ``--registry-only``."""
    if cfg.get("finetuning_type") in ("lora", "oft"):
        notes.append(f"{cfg['finetuning_type']}: rank {cfg.get('lora_rank', 8)}, alpha "
                     f"{cfg.get('lora_alpha') or 2 * int(cfg.get('lora_rank', 8))}, target {cfg.get('lora_target', 'all')}")
    if cfg.get("quantization_bit"):
        notes.append(f"QLoRA: base weights in {cfg['quantization_bit']}-bit ({cfg.get('quantization_method', 'bnb')}"
                     f"{', ' + str(cfg['quantization_type']) if cfg.get('quantization_type') else ''}); training needs "
                     "a CUDA GPU and bitsandbytes (not checked here)")
    adapters = cfg.get("adapter_name_or_path")
    if not adapters:
        return
    names = [s.strip() for s in str(adapters).split(",") if s.strip()] if isinstance(adapters, str) else \
        [str(a) for a in adapters]
    model = str(cfg.get("model_name_or_path") or "")
    for name in names:
        p = Path(name)
        if p.is_dir():
            from ..inference.adapters import check_adapter

            try:
                info = check_adapter(p, model)
            except InputError as exc:
                errors.append(f"adapter_name_or_path: {str(exc).removeprefix('--lora ')}")
                continue
            notes.append(f"adapter {name}: LoRA rank {info.rank}, trained on {info.base_model or '?'}; training "
                         "continues this adapter")
            notes += [f"adapter {name}: {w}" for w in info.warnings]
        elif _HUB_ID.match(name) and not name.startswith((".", "/", "saves")):
            notes.append(f"adapter {name}: not a local folder, so a Hub id (not checked here)")
        elif check_files:
            errors.append(f"adapter_name_or_path: {name} not found (train the previous stage first, e.g. stage 1 of "
                          "train/lora/two-stage/)")
        else:
            notes.append(f"adapter {name}: not present yet (written by the previous stage; not checked)")


def _image_count(messages: Any) -> int | None:
    if not isinstance(messages, list):
        return None
    n = 0
    for m in messages:
        if not isinstance(m, dict):
            return None
        text = m.get("value", m.get("content"))
        if not isinstance(text, str):
            return None
        n += text.count("<image>")
    return n


def _check_records(path: Path, entry: dict, media_dir: str) -> tuple[int, str]:
    """Read every record of a ShareGPT file; returns ``(records, problem summary or "")``."""
    from ..files import read_json_or_jsonl

    try:
        records = read_json_or_jsonl(path)
    except InputError as exc:
        return 0, str(exc)
    cols = entry.get("columns") or {}
    mcol, icol = cols.get("messages", "conversations"), cols.get("images")
    problems: list[str] = []
    n_bad = 0
    for i, rec in enumerate(records):
        msg = None
        if not isinstance(rec, dict):
            msg = "not an object"
        else:
            n_tok = _image_count(rec.get(mcol))
            images = rec.get(icol, []) if icol else []
            images = [images] if isinstance(images, str) else images
            if n_tok is None:
                msg = f"no {mcol!r} list of from/value turns"
            elif not isinstance(images, list) or n_tok != len(images):
                msg = f"{n_tok} <image> token(s) but {len(images) if isinstance(images, list) else '?'} image(s)"
            else:
                for img in images:
                    if not isinstance(img, str) or not (
                        os.path.isfile(os.path.join(media_dir, img)) or os.path.isfile(img)
                    ):
                        msg = f"image not found: {img}"
                        break
        if msg:
            n_bad += 1
            if len(problems) < 3:
                problems.append(f"record {i}: {msg}")
    if n_bad:
        return len(records), f"{n_bad} bad record(s), e.g. " + "; ".join(problems)
    return len(records), ""


def _check_datasets(cfg: dict[str, Any], get_dataset_list, check_files: bool, check_records: bool,
                    errors: list[str]) -> list[DatasetStatus]:
    dataset_dir = str(cfg.get("dataset_dir") or "data")
    media_dir = str(cfg.get("media_dir") or dataset_dir)
    named = [(n, "dataset") for n in dataset_names(cfg.get("dataset"))]
    named += [(n, "eval_dataset") for n in dataset_names(cfg.get("eval_dataset"))]
    if not named:
        errors.append("no dataset named (dataset: is empty)")
        return []
    if dataset_dir == "ONLINE" or dataset_dir.startswith("REMOTE:"):
        return [DatasetStatus(n, r, "remote", detail=f"dataset_dir {dataset_dir}") for n, r in named]
    info_path = Path(dataset_dir) / "dataset_info.json"
    if not info_path.is_file():
        errors.append(f"dataset_dir {dataset_dir}: no dataset_info.json there")
        return [DatasetStatus(n, r, "unregistered") for n, r in named]
    from ..files import read_json

    info = read_json(info_path)
    if not isinstance(info, dict):
        errors.append(f"{info_path}: not a JSON object")
        return [DatasetStatus(n, r, "unregistered") for n, r in named]
    out = []
    for name, role in named:
        try:
            (attr,) = get_dataset_list([name], dataset_dir)
        except ValueError as exc:
            out.append(DatasetStatus(name, role, "unregistered", detail=_first_line(exc)))
            continue
        if attr.load_from != "file":
            out.append(DatasetStatus(name, role, "remote", attr.dataset_name, detail=attr.load_from))
            continue
        path = Path(dataset_dir) / attr.dataset_name
        if not check_files:
            out.append(DatasetStatus(name, role, "registered", str(path)))
        elif not path.exists():
            out.append(DatasetStatus(name, role, "missing", str(path)))
        elif check_records and path.is_file():
            n, problem = _check_records(path, info[name], media_dir)
            out.append(DatasetStatus(name, role, "bad_records" if problem else "ok", str(path), problem, n))
        else:
            out.append(DatasetStatus(name, role, "ok", str(path)))
    return out


# --------------------------------------------------------------------------------------------------- API
def check_configs(
    configs: Sequence[str | os.PathLike],
    overrides: Sequence[str] = (),
    *,
    check_files: bool = True,
    check_records: bool = False,
    workdir: str | os.PathLike | None = None,
) -> list[ConfigCheck]:
    """Check LLaMA-Factory training configs (all in one process: LLaMA-Factory is imported once).

    Inputs: config paths, ``key=value`` overrides applied to each (as ``llamafactory-cli train CONFIG k=v``),
    ``check_files`` (False: only that names are registered), ``check_records`` (read every record, check images),
    ``workdir`` (folder relative paths are resolved against; default the current directory, as LLaMA-Factory).
    Output: one :class:`ConfigCheck` per config (``.ok``, ``.render()``).
    Raises :class:`InputError` when a config cannot be read, an override is malformed, ``workdir`` does not exist or
    LLaMA-Factory cannot be imported. Follows LLaMA-Factory 0.9.5 (``get_train_args``, ``get_dataset_list``).
    """
    if not configs:
        raise InputError("no config given")
    loaded = [(str(c), load_config(c, overrides)) for c in configs]
    if workdir is not None and not Path(workdir).is_dir():
        raise InputError(f"--workdir {workdir}: not a folder")
    get_train_args, get_dataset_list, templates, version = _import_llamafactory()
    results = []
    with _chdir(workdir):
        for path, cfg in loaded:
            res = ConfigCheck(path, list(overrides))
            _check_files(cfg, res.errors)
            _check_model(cfg, res.errors, res.notes)
            _check_adapters(cfg, check_files, res.errors, res.notes)
            template = cfg.get("template")
            if not template:
                res.errors.append("template is not set (qwen2_vl / qwen3_vl_nothink / qwen3_5_nothink)")
            elif template not in templates:
                res.errors.append(f"template {template!r} is not a LLaMA-Factory {version} template")
            if not any(e.startswith("deepspeed:") for e in res.errors):
                res.args_error = _parse_with_llamafactory(cfg, get_train_args, res.notes)
            else:
                res.args_error = "not run (the DeepSpeed config is missing)"
            res.datasets = _check_datasets(cfg, get_dataset_list, check_files, check_records, res.errors)
            results.append(res)
    return results
