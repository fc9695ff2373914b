"""``unimumer analyze``'s work: prediction files or folders in, ``analysis.json`` + ``report.md`` (+ PNGs) out.

Every input is analysed before anything is written; bad input raises :class:`InputError`. Definitions:
docs/analysis.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...files import atomic_write_text, write_json
from ...layout import find_predictions, stem_of
from .features import DEFAULT_LENGTH_EDGES, load_prediction_file
from .plots import write_plots
from .report import render_report
from .statistics import DEFAULT_TOP_K, analyze_records, compare_analyses


def _stem(path: Path) -> str:
    return stem_of(path)


def expand_input(path: str | os.PathLike) -> list[Path]:
    """A file → ``[file]``; a folder → its ``*_pred.json`` files, or its ``*.json`` files when it has none
    (the released ``paper_final/`` naming), sorted. Raises :class:`InputError` for a missing path or a folder
    without JSON files."""
    return find_predictions(path, any_json=True)


def analyze_file(path: Path, *, compare: Path | None = None, top_k: int = DEFAULT_TOP_K, method: str = "auto",
                 length_edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> dict:
    """Analyse one prediction file (and compare it with ``compare``); nothing is written.

    Returns the ``analysis.json`` dictionary: ``{"input": path, **analyze_records(...)}`` without the private
    per-record list, plus ``"comparison"`` (:func:`compare_analyses`) when ``compare`` is given. Raises
    :class:`InputError` for a bad file or a mismatched pair.
    """
    pf = load_prediction_file(path)
    an = analyze_records(pf.records, top_k=top_k, length_edges=length_edges)
    comp = None
    if compare is not None:
        pb = load_prediction_file(compare)
        an_b = analyze_records(pb.records, top_k=top_k, length_edges=length_edges)
        comp = compare_analyses(pf, an, pb, an_b, method=method)
    an.pop("_per_record")
    result = {"input": str(path), **an}
    if comp is not None:
        result["comparison"] = comp
    return result


def write_outputs(result: Mapping[str, Any], out_dir: Path, name: str, *, plot: bool = False, top: int = 20) -> Path:
    """Write ``analysis.json`` (indent 2), ``report.md`` and, with ``plot``, the two PNGs into ``out_dir``,
    each atomically. Returns the report path; raises :class:`InputError` when the folder cannot be written."""
    try:
        plots = write_plots(result, out_dir, name, top) if plot else []
        write_json(out_dir / "analysis.json", result, indent=2)
        return atomic_write_text(out_dir / "report.md", render_report(name, result, top=top, plots=plots))
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write ({exc.strerror or exc})") from None


def planned_files(inputs: Path, output_dir: Path, compare: Path | None = None, *, plot: bool = False) -> dict:
    """``{"inputs": [...], "outputs": [...]}`` of a run (for :func:`unimumer.files.check_outputs`): the prediction
    files read and every file :func:`run` would write (``analysis.json``, ``report.md``, with ``plot`` the PNGs)."""
    files = expand_input(inputs)
    single = not inputs.is_dir()
    names = ("analysis.json", "report.md") + (("breakdowns.png", "confusions.png") if plot else ())
    outs = [(output_dir if single else output_dir / _stem(f)) / n for f in files for n in names]
    ins = files + (expand_input(compare) if compare is not None and compare.exists() else [])
    return {"inputs": ins, "outputs": outs}


def run(inputs: Path, output_dir: Path, *, compare: Path | None = None, plot: bool = False, top: int = 20,
        **kw) -> list[tuple[Path, dict]]:
    """The CLI's work: one file → ``output_dir``; a folder → ``output_dir/<stem>/`` per file (``--compare`` must
    then be a folder holding a file of the same stem for each). Every file is analysed before anything is written,
    so a bad input anywhere writes nothing. ``kw`` goes to :func:`analyze_file`. Returns ``[(out_dir, analysis)]``.
    """
    files = expand_input(inputs)
    single = not Path(inputs).is_dir()
    partners: list[Path | None] = [None] * len(files)
    if compare is not None:
        if single != (not Path(compare).is_dir()):
            raise InputError(f"{compare}: --compare must be a {'file' if single else 'folder'} like --input")
        cfiles = expand_input(compare)
        if single:
            partners = [cfiles[0]]
        else:
            by_stem = {_stem(f): f for f in cfiles}
            missing = [_stem(f) for f in files if _stem(f) not in by_stem]
            if missing:
                raise InputError(f"{compare}: no prediction file for {', '.join(missing)}")
            partners = [by_stem[_stem(f)] for f in files]
    results = [analyze_file(f, compare=c, **kw) for f, c in zip(files, partners, strict=True)]
    out = []
    for f, c, res in zip(files, partners, results, strict=True):
        d = Path(output_dir) if single else Path(output_dir) / _stem(f)
        name = _stem(f) + (f" vs {_stem(c)}" if c is not None else "")
        write_outputs(res, d, name, plot=plot, top=top)
        out.append((d, res))
    return out
