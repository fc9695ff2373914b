"""Vanilla prompt files and image conversion: CROHME-style folders or raw-LaTeX JSON/JSONL → ShareGPT JSON with
black-on-white images in the official layout.

Image paths (``path_style``): docs/data-building.md ("Image paths"). Sources: paper Sec. 4.1, the official ``data.zip`` layout.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..errors import InputError
from ..files import (
    read_caption_lines,
    read_json_or_jsonl,
    relative_file_name,
    sharegpt_record,
    write_json_stream,
)
from ..latex.normalize import try_normalize
from ..latex.tokenize import LatexTokenizeError, tokenize_latex
from ..paths import DATA_DIR
from ..tasks import TASKS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# ================================================================================ vanilla prompt files
def read_captions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``[(img_id, latex)]`` of a CROHME / MNE ``caption.txt`` (``img_id<TAB or space>tokens`` per line).

    The LaTeX is re-joined with single spaces. Raises :class:`InputError` for a missing file or a line without
    LaTeX (naming the line).
    """
    out = []
    for lineno, img_id, latex in read_caption_lines(path):
        if not latex:
            raise InputError(f"{path}:{lineno}: expected 'img_id<TAB>latex'")
        out.append((img_id, latex))
    return out


def _find_image(img_dir: Path, img_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = img_dir / f"{img_id}{suffix}"
        if p.is_file():
            return p
    return None


def _convert_image(job: tuple[str, str]) -> str | None:
    """Worker: load ``src`` black-on-white and save it to ``dst`` (skipped when ``dst`` exists: resume)."""
    from ..images import load_image, save_image

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
    from tqdm import tqdm

    stats: Counter = Counter(captions=len(captions))
    items = []
    for img_id, latex in tqdm(captions, desc=f"{dataset}/{split} captions", unit="rec", disable=None, leave=False):
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

    The LaTeX is tokenized (pylatexenc) and, with ``normalize``, normalized (official ``*_normalized`` sets); records
    that fail are dropped and counted by reason (``tokenize_error``, the normalizer's reasons, ``bad_record``,
    ``missing_image``, ``empty_latex``). ``image`` paths are relative to the input file's folder or absolute;
    ``img_id`` is the image file stem. Images and JSON as in :func:`build_prompts_from_crohme`.
    Returns ``(json_path, stats)``. Raises :class:`InputError` for an unreadable input or when nothing is left.
    """
    src = Path(src_json)
    records = read_json_or_jsonl(src)
    if limit is not None:
        records = records[:limit]
    from tqdm import tqdm

    stats: Counter = Counter(records=len(records))
    items = []
    for rec in tqdm(records, desc=f"{dataset}/{split} LaTeX", unit="rec", disable=None, leave=False):
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
