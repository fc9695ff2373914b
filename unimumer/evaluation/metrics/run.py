"""The library side of ``unimumer eval`` / ``scripts/eval_metrics_calculator.py`` (parser and flow:
:mod:`unimumer.commands.eval`): input expansion, report writing, ExpRate@CDM (reusing an up-to-date
``<stem>_cdm.json``) and canonical-form results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import InputError
from ...files import atomic_write_text, read_json, write_json
from ...layout import find_predictions
from .calculator import evaluate


def expand_inputs(paths: Sequence[str]) -> list[tuple[Path, bool]]:
    """``(file, from_directory)`` for every ``--input``: a folder gives its ``*_pred.json`` files
    (:func:`unimumer.layout.find_predictions`), a file is kept as given."""
    return [(f, Path(raw).is_dir()) for raw in paths for f in find_predictions(raw)]


def write_report(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _cdm_settings_current(settings, toolkit: str) -> bool:
    """Whether a saved ``<stem>_cdm.json`` was computed by the current official-mode CDM (same render version)
    reproducing the CDM toolkit version ``toolkit`` (with that version's current parameters)."""
    try:
        from ..cdm.render import RENDER_VERSION
        from ..cdm.toolkit import get_toolkit
    except ImportError:
        return False
    return isinstance(settings, dict) and settings.get("mode") == "official" \
        and settings.get("render_version") == RENDER_VERSION \
        and settings.get("toolkit") == get_toolkit(toolkit).settings()


def cdm_result(records: list, pred_path: Path, cdm_path: Path | None, args) -> dict:
    """ExpRate@CDM of ``records`` via ``unimumer.evaluation.cdm.evaluate_cdm`` (reusing an up-to-date ``cdm_path``)."""
    if cdm_path is not None and cdm_path.is_file() and not args.force:
        if cdm_path.stat().st_mtime >= pred_path.stat().st_mtime:
            cached = read_json(cdm_path)
            if isinstance(cached, dict) and isinstance(cached.get("exprate_cdm"), (int, float)) \
                    and _cdm_settings_current(cached.get("settings"), args.cdm_toolkit):
                return cached
    try:
        from ..cdm import evaluate_cdm
    except ImportError as exc:
        raise InputError(f"--cdm needs unimumer.evaluation.cdm.evaluate_cdm, which cannot be imported ({exc})") from None
    pairs = []
    for r in records:
        item = {"gt": r[args.gt_key], "pred": r[args.pred_key]}
        if "img_id" in r:
            item["img_id"] = r["img_id"]
        pairs.append(item)
    import inspect

    kwargs = {"workers": args.cdm_workers, "toolkit": args.cdm_toolkit}
    if "progress" in inspect.signature(evaluate_cdm).parameters:
        kwargs["progress"] = True  # a tqdm bar on stderr: CDM renders every expression (minutes)
    result = evaluate_cdm(pairs, **kwargs)
    if cdm_path is not None:
        write_json(cdm_path, result, indent=2)
    return result


def canonical_records(records: Sequence[dict], *, gt_key: str = "gt", pred_key: str = "pred") -> list[dict]:
    """``records`` with ``gt`` / ``pred`` replaced by their canonical forms (:mod:`unimumer.latex.canonical`: the gt
    canonicalised as is, the prediction after formula extraction), the original prediction kept as ``raw_pred``
    and every other key (``image_path``, ``img_id``, ``error`` …) unchanged."""
    from ...latex.canonical import canonical_latex

    out = []
    for r in records:
        rec = {k: v for k, v in r.items() if k not in (gt_key, pred_key)}
        out.append({"gt": canonical_latex(r[gt_key]), "pred": canonical_latex(r[pred_key], extract=True),
                    **rec, "raw_pred": r[pred_key]})
    return out


def canonical_results(records: Sequence[dict], *, gt_key: str = "gt", pred_key: str = "pred") -> dict:
    """The official metrics of :func:`canonical_records` of ``records`` (the official result dictionary)."""

    return evaluate(canonical_records(records, gt_key=gt_key, pred_key=pred_key))
