"""Import the released training data (Hugging Face ``phxember/Uni-MuMER-Data``) under the official names.

Input: a local copy or the repository id of the parquet release, one config per dataset mapped by the explicit
table :data:`RELEASED_NAME_MAP` (unmapped configs are reported, never guessed). Output under ``--output``: the
layout of :mod:`unimumer.data.registry` (ShareGPT JSON, images, ``dataset_info.json``) and
``released_import_report.json``; existing datasets are kept unless ``--overwrite``; files are written atomically.
Accepted parquet layouts and image paths: docs/training.md ("1. Data").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import (
    IMAGE_TOKEN,
    atomic_write_bytes,
    dataset_info_entry,
    read_json,
    register_datasets,
    write_json,
    write_json_stream,
)
from .registry import ALL_DATASETS, TRAINING_DATASETS

#: released parquet config → official LLaMA-Factory dataset name (the 26 training datasets of train/*.yaml)
RELEASED_NAME_MAP: dict[str, str] = {
    "parquet_crohme2023": "crohme2023",
    "parquet_crohme2023_can": "crohme2023_can",
    "parquet_crohme2023_error_find": "crohme2023_error_find",
    "parquet_crohme2023_error_fix": "crohme2023_error_fix",
    "parquet_crohme2023_tree": "crohme2023_tree",
    "parquet_crohme_train": "crohme_train",
    "parquet_crohme_train_can": "crohme_train_can",
    "parquet_crohme_train_error_find": "crohme_train_error_find",
    "parquet_crohme_train_error_fix": "crohme_train_error_fix",
    "parquet_crohme_train_tree": "crohme_train_tree",
    "parquet_hme100k_error_find": "hme100k_error_find",
    "parquet_hme100k_error_fix": "hme100k_error_fix",
    "parquet_hme100k_train": "hme100k_train",
    "parquet_hme100k_train_can": "hme100k_train_can",
    "parquet_hme100k_train_tree": "hme100k_train_tree",
    "parquet_im2latex_v2_error_find": "im2latex_v2_error_find",
    "parquet_im2latex_v2_error_fix": "im2latex_v2_error_fix",
    "parquet_im2latex_v2_train": "im2latex_v2_train",
    "parquet_im2latex_v2_train_can": "im2latex_v2_train_can",
    "parquet_im2latex_v2_train_tree": "im2latex_v2_train_tree",
    "parquet_mathwriting_symbols": "mathwriting_symbols",
    "parquet_mathwriting_train": "mathwriting_train",
    "parquet_mathwriting_train_can": "mathwriting_train_can",
    "parquet_mathwriting_train_error_find": "mathwriting_train_error_find",
    "parquet_mathwriting_train_error_fix": "mathwriting_train_error_fix",
    "parquet_mathwriting_train_tree": "mathwriting_train_tree",
}
DEFAULT_REPO = "phxember/Uni-MuMER-Data"
MESSAGE_COLUMNS = ("messages", "conversations")
IMAGE_COLUMNS = ("images", "image")
_ROLE = {"user": "human", "human": "human", "assistant": "gpt", "gpt": "gpt", "system": "system",
         "observation": "observation", "function_call": "function_call", "tool": "observation"}
_SHARD = re.compile(r"(-\d{5}-of-\d{5})$")
_SPLIT_PREFIX = re.compile(r"^(train|validation|test)(-|$)")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class ImportReport:
    """What an import did: configs found / mapped / unmapped, and per dataset the counts written."""

    source: str
    output: str
    configs_found: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    missing_official: list[str] = field(default_factory=list)
    datasets: dict[str, dict] = field(default_factory=dict)

    def render(self) -> str:
        """Human-readable summary."""
        lines = [f"source {self.source}: {len(self.configs_found)} config(s) found, {len(self.mapped)} mapped, "
                 f"{len(self.unmapped)} unmapped"]
        for cfg, name in self.mapped.items():
            d = self.datasets.get(name, {})
            lines.append(f"  {cfg} -> {name}: {d.get('status', '?')}, {d.get('records', 0)} records, "
                         f"{d.get('images_written', 0)} new images -> {d.get('file', '')}")
        if self.unmapped:
            lines.append(f"  UNMAPPED (not converted; add --map CONFIG=NAME if intended): {', '.join(self.unmapped)}")
        if self.missing_official:
            lines.append(f"  official datasets absent from the source ({len(self.missing_official)}): "
                         f"{', '.join(self.missing_official)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- discovery
def _front_matter(readme: Path) -> dict:
    import yaml

    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _card_configs(source: Path) -> dict[str, list[Path]]:
    readme = source / "README.md"
    if not readme.is_file():
        return {}
    out: dict[str, list[Path]] = {}
    for cfg in _front_matter(readme).get("configs") or []:
        if not isinstance(cfg, dict) or "config_name" not in cfg:
            continue
        files = cfg.get("data_files") or []
        patterns: list[str] = []
        for item in files if isinstance(files, list) else [files]:
            if isinstance(item, str):
                patterns.append(item)
            elif isinstance(item, dict):
                p = item.get("path")
                patterns += p if isinstance(p, list) else [p] if isinstance(p, str) else []
        paths = sorted({q for pat in patterns for q in source.glob(pat) if q.suffix == ".parquet"})
        out[str(cfg["config_name"])] = paths
    return out


def _config_of(rel: Path) -> str:
    stem = _SHARD.sub("", rel.stem)
    for part in [*rel.parts[:-1], stem]:
        if part.startswith("parquet_") or part in RELEASED_NAME_MAP.values():
            return part
    stem = _SPLIT_PREFIX.sub("", stem) or stem
    return rel.parts[-2] if len(rel.parts) > 1 and rel.parts[-2] not in ("data", "train") else stem


def discover_configs(source: str | os.PathLike) -> dict[str, list[Path]]:
    """Map each config of a downloaded release folder to its parquet files.

    The dataset card's ``configs`` list (``README.md`` YAML front matter) wins; without one, each parquet file's
    config is the first folder or file stem starting with ``parquet_`` (shard suffixes ``-00000-of-00003`` removed),
    else its folder name. Output: ``{config: [parquet files]}`` sorted. Raises :class:`InputError` when the folder
    does not exist or holds no parquet file.
    """
    src = Path(source)
    if not src.is_dir():
        raise InputError(f"--source {src}: not a folder")
    found = {k: v for k, v in _card_configs(src).items() if v}
    if not found:
        for f in sorted(src.rglob("*.parquet")):
            if any(part.startswith(".") for part in f.relative_to(src).parts):
                continue
            found.setdefault(_config_of(f.relative_to(src)), []).append(f)
    if not found:
        raise InputError(f"--source {src}: no parquet files found (expected configs such as parquet_crohme_train)")
    return dict(sorted(found.items()))


def download_release(repo_id: str, local_dir: str | os.PathLike) -> Path:
    """Download a Hugging Face dataset repository with ``huggingface_hub.snapshot_download`` (explicit request only).

    Raises :class:`InputError` with a clear message when offline (``HF_HUB_OFFLINE=1`` or no network) or the
    repository cannot be fetched.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError("huggingface_hub is not installed; download the dataset elsewhere and pass the folder") from None
    hint = (f"download it on a machine with network access (huggingface-cli download --repo-type dataset {repo_id} "
            "--local-dir DIR) and pass --source DIR")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise InputError(f"cannot download {repo_id}: HF_HUB_OFFLINE is set (offline); {hint}")
    try:
        path = snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(local_dir))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise InputError(f"cannot download {repo_id} ({exc.__class__.__name__}: {first}); {hint}") from None
    return Path(path)


# --------------------------------------------------------------------------------------------------- rows
def _pick(columns: Sequence[str], choices: Sequence[str], what: str, where: str) -> str:
    for c in choices:
        if c in columns:
            return c
    raise InputError(f"{where}: no {what} column (looked for {', '.join(choices)}; columns: {', '.join(columns)})")


def normalize_messages(value: Any, where: str) -> list[dict]:
    """Released messages → ShareGPT turns ``[{"from": "human"|"gpt"|…, "value": str}, …]``.

    Accepts ``from``/``value`` or ``role``/``content`` turns, or a JSON string of them. Raises :class:`InputError`
    naming ``where`` on any other structure or an unknown role.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{where}: messages is a string but not JSON") from None
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: messages must be a non-empty list of turns")
    out = []
    for turn in value:
        if not isinstance(turn, dict):
            raise InputError(f"{where}: a turn is not an object")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if role not in _ROLE or not isinstance(text, str):
            raise InputError(f"{where}: turn without a known from/role ({role!r}) and a string value/content")
        out.append({"from": _ROLE[role], "value": text})
    if not any(t["from"] == "human" for t in out) or not any(t["from"] == "gpt" for t in out):
        raise InputError(f"{where}: messages need a human (user) and a gpt (assistant) turn")
    return out


def _image_items(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _ext_of(data: bytes) -> str:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "PNG").lower()
    except (UnidentifiedImageError, OSError):
        raise InputError("image bytes are not a readable image") from None
    return {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "gif": ".gif", "webp": ".webp", "tiff": ".tif"}.get(fmt, ".png")


class _ImageStore:
    """Writes image bytes into one folder, once per (name, content); tracks names already taken this run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written = 0
        self.reused = 0

    def store(self, data: bytes, name: str) -> Path:
        target = self.folder / name
        if target.exists():
            if target.stat().st_size == len(data) and target.read_bytes() == data:
                self.reused += 1
                return target
            digest = hashlib.sha1(data).hexdigest()[:10]
            target = target.with_name(f"{target.stem}_{digest}{target.suffix}")
            if target.exists():
                self.reused += 1
                return target
        atomic_write_bytes(target, data)
        self.written += 1
        return target


PATH_STYLES = ("dataset_dir", "repo", "absolute")


def _image_ref(path: Path, output: Path, style: str) -> str:
    p = path.resolve()
    if style == "absolute":
        return str(p)
    base = output.resolve() if style == "dataset_dir" else Path.cwd().resolve()
    try:
        rel = p.relative_to(base).as_posix()
    except ValueError:
        return str(p)
    return rel if style == "dataset_dir" else "./" + rel


def _iter_rows(files: Sequence[Path], where: str) -> Iterator[tuple[str, Any, Any]]:
    import pyarrow.parquet as pq

    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except Exception as exc:
            raise InputError(f"{f}: not a readable parquet file ({exc.__class__.__name__})") from None
        cols = pf.schema_arrow.names
        mcol = _pick(cols, MESSAGE_COLUMNS, "messages", f"{where} ({f.name})")
        icol = next((c for c in IMAGE_COLUMNS if c in cols), None)
        row = 0
        for batch in pf.iter_batches(batch_size=256, columns=[mcol] + ([icol] if icol else [])):
            for rec in batch.to_pylist():
                yield f"{where} {f.name} row {row}", rec[mcol], rec.get(icol) if icol else None
                row += 1


def convert_config(
    name: str,
    files: Sequence[Path],
    source: Path,
    output: Path,
    path_style: str,
    images: _ImageStore,
    stats: dict,
) -> Iterator[dict]:
    """Yield the ShareGPT records of one released config, writing its images through ``images``.

    Inputs: the official dataset name, its parquet files, the source folder (for image path strings), the output
    data root, the image path style (:data:`PATH_STYLES`), the image store and a stats dict (``records`` is
    counted). Raises :class:`InputError` naming the file and row on a malformed row.
    """
    for where, messages, image_value in _iter_rows(files, name):
        turns = normalize_messages(messages, where)
        refs = []
        for k, item in enumerate(_image_items(image_value)):
            data, orig = None, None
            if isinstance(item, dict):
                data, orig = item.get("bytes"), item.get("path")
            elif isinstance(item, (bytes, bytearray)):
                data = bytes(item)
            elif isinstance(item, str):
                orig = item
            else:
                raise InputError(f"{where}: image {k} is neither a struct, bytes nor a path")
            if data is None:
                if not orig:
                    raise InputError(f"{where}: image {k} has neither bytes nor a path")
                cand = [Path(orig), source / orig, source / Path(orig).name]
                found = next((c for c in cand if c.is_file()), None)
                if found is None:
                    raise InputError(f"{where}: image {orig} not found (no bytes in the parquet, not under the source)")
                data = found.read_bytes()
            try:
                ext = _ext_of(data)
            except InputError:
                raise InputError(f"{where}: image {k} bytes are not a readable image") from None
            base = Path(orig).name if orig else ""
            fname = base if base and Path(base).suffix else f"{name}_{stats['records']}_{k}{ext}"
            refs.append(_image_ref(images.store(data, fname), output, path_style))
        n_tokens = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
        if n_tokens == 0 and len(refs) == 1:
            first = next(t for t in turns if t["from"] == "human")
            first["value"] = IMAGE_TOKEN + first["value"]
        elif n_tokens != len(refs):
            raise InputError(f"{where}: {n_tokens} <image> token(s) but {len(refs)} image(s)")
        stats["records"] += 1
        yield {"images": refs, "messages": turns} if refs else {"messages": turns}


def import_release(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    extra_map: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
    path_style: str = "dataset_dir",
    overwrite: bool = False,
    download_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ImportReport:
    """Convert a released parquet dataset into the project's data layout under the official names.

    Inputs: ``source`` (a local folder, or a Hub repo id such as ``phxember/Uni-MuMER-Data`` which is then
    downloaded with :func:`download_release` into ``download_dir``, default ``<output>/.released``), the output data
    root, ``extra_map`` (additional ``config → official name`` pairs, names from the registry), ``only`` (official
    names to convert), ``path_style`` (image paths relative to the data root, ``repo`` = to the current directory,
    or ``absolute``), ``overwrite`` (re-convert existing files).
    Output: the :class:`ImportReport`, also written to ``<output>/released_import_report.json``; datasets are
    registered in ``<output>/dataset_info.json``.
    Raises :class:`InputError` on a missing source, an unknown name in ``extra_map`` / ``only``, or a malformed row.
    """
    from tqdm import tqdm

    out = Path(output)
    src_str = str(source)
    if not Path(src_str).exists() and _HUB_ID.match(src_str):
        src = download_release(src_str, download_dir or out / ".released" / src_str.replace("/", "__"))
    else:
        src = Path(src_str)
    name_map = dict(RELEASED_NAME_MAP)
    for cfg, name in (extra_map or {}).items():
        if name not in ALL_DATASETS:
            raise InputError(f"--map {cfg}={name}: {name!r} is not a registered dataset name")
        name_map[cfg] = name
    for name in only or ():
        if name not in ALL_DATASETS:
            raise InputError(f"--only {name}: not a registered dataset name")
    if path_style not in PATH_STYLES:
        raise InputError(f"--path-style {path_style}: choose from {', '.join(PATH_STYLES)}")
    configs = discover_configs(src)
    report = ImportReport(str(src), str(out), configs_found=list(configs))
    for cfg in configs:
        if cfg in name_map:
            report.mapped[cfg] = name_map[cfg]
        elif cfg in ALL_DATASETS:  # already an official name (a re-export without the parquet_ prefix)
            report.mapped[cfg] = cfg
        else:
            report.unmapped.append(cfg)
    present = set(report.mapped.values())
    report.missing_official = [n for n in TRAINING_DATASETS if n not in present]
    stores: dict[str, _ImageStore] = {}
    info_path = out / "dataset_info.json"
    for cfg, name in report.mapped.items():
        if only and name not in only:
            continue
        spec = ALL_DATASETS[name]
        target = out / spec.file_name
        if target.exists() and not overwrite:
            report.datasets[name] = {"status": "exists, skipped", "file": str(target), "records": None}
            current = read_json(info_path) if info_path.is_file() else {}
            if not isinstance(current, dict) or current.get(name) != dataset_info_entry(spec.file_name):
                register_datasets(info_path, {name: spec.file_name})
            continue
        img_dir = out / Path(spec.file_name).parent / "images"
        store = stores.setdefault(str(img_dir), _ImageStore(img_dir))
        before = store.written
        stats = {"records": 0}
        rows = convert_config(name, configs[cfg], src, out, path_style, store, stats)
        if progress:
            rows = tqdm(rows, desc=f"{cfg} -> {name}", unit="rec", leave=False)
        write_json_stream(target, rows, indent=4)
        register_datasets(info_path, {name: spec.file_name})
        report.datasets[name] = {"status": "written", "file": str(target), "records": stats["records"],
                                 "images_written": store.written - before}
    write_json(out / "released_import_report.json", asdict(report), indent=2)
    return report


def read_report(output: str | os.PathLike) -> dict:
    """The ``released_import_report.json`` of a previous import (``InputError`` when absent)."""
    return read_json(Path(output) / "released_import_report.json")
