"""Input expansion and output naming of the Tree-CoT / counting command (``unimumer tree``, the official
``preprocess/make_unimumer_tree_data.py``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .records import TREE_TASKS


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
