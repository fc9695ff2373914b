"""ExpRate@CDM over prediction records: render (cached, parallel), match, score; and the ``cdm_eval.py`` CLI.

Definition (paper Sec. 4, ExpRate@CDM; CDM = Character Detection Matching, UniMERNet
arXiv 2409.03643): per sample, F1 = 2·matched / (|gt boxes| + |pred boxes|) after colour-coded rendering and
spatially consistent matching; ExpRate@CDM = % of evaluated samples with F1 = 1. A sample whose gt fails to render
(or renders no visible token) is excluded and listed; a pred that fails to render scores F1 = 0.
Not part of the official Uni-MuMER code: this is a clean re-implementation that needs only Debian's TeX Live and
poppler (no ImageMagick, Node or KaTeX).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from ...errors import InputError
from ...files import atomic_write_text
from . import match as _match
from .latex import LatexError, colorize
from .render import DPI, RENDER_VERSION, check_tools, clip_to_page, render_sources
from .toolkit import get_toolkit

DEFAULT_TIMEOUT = 10.0


def default_cache_dir() -> Path:
    """``$UNIMUMER_CDM_CACHE`` or ``$XDG_CACHE_HOME/unimumer/cdm`` (default ``~/.cache/unimumer/cdm``)."""
    if os.environ.get("UNIMUMER_CDM_CACHE"):
        return Path(os.environ["UNIMUMER_CDM_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "unimumer" / "cdm"


def _cache_key(source: str, dpi: int) -> str:
    return hashlib.sha256(f"{RENDER_VERSION}\0{dpi}\0{source}".encode()).hexdigest()


def _cache_get(cache_dir: Path | None, key: str) -> dict | None:
    if cache_dir is None:
        return None
    path = cache_dir / key[:2] / f"{key}.json"
    try:
        hit = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(hit, dict) and isinstance(hit.get("ok"), bool) and isinstance(hit.get("boxes"), list)
    return hit if ok and isinstance(hit.get("size"), list) else None  # a damaged entry is rendered again


def _cache_put(cache_dir: Path | None, key: str, result: dict) -> None:
    if cache_dir is None or (result.get("error") or "").startswith("pdflatex timed out"):
        return  # time-outs may be transient: never cached
    try:
        atomic_write_text(cache_dir / key[:2] / f"{key}.json", json.dumps(result, separators=(",", ":")))
    except OSError:
        pass  # a read-only cache only costs speed


def _render_chunk(args: tuple[list[str], int, float]) -> list[dict]:
    sources, dpi, timeout = args
    return render_sources(sources, dpi=dpi, timeout=timeout)


def _validate(records: Iterable) -> list[dict]:
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("gt"), str) or not isinstance(rec.get("pred"), str):
            raise InputError(f"record {i}: expected an object with string 'gt' and 'pred'")
        out.append(rec)
    if not out:
        raise InputError("no records to evaluate")
    return out


def _render_all(sources: list[str], *, workers: int, timeout: float, dpi: int, cache_dir: Path | None,
                progress: bool) -> dict[str, dict]:
    """Render every distinct source once (cache first, then parallel batches). Returns ``{source: result}``."""
    results: dict[str, dict] = {}
    missing = []
    for src in sources:
        hit = _cache_get(cache_dir, _cache_key(src, dpi))
        if hit is not None:
            results[src] = hit
        else:
            missing.append(src)
    if not missing:
        return results
    check_tools()
    size = max(8, min(64, math.ceil(len(missing) / (workers * 4))))
    chunks = [missing[i:i + size] for i in range(0, len(missing), size)]
    from tqdm import tqdm

    bar = tqdm(total=len(missing), desc="CDM render", unit="expr", disable=not progress, leave=False)
    try:
        if workers <= 1 or len(chunks) == 1:
            outputs: Iterable = map(_render_chunk, ((c, dpi, timeout) for c in chunks))
            pool = None
        else:
            # the work runs in the pdflatex / pdftoppm child processes: threads drive ``workers`` of them at once
            # (no pickling, no ``if __name__ == "__main__"`` guard needed by callers)
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=min(workers, len(chunks)), thread_name_prefix="cdm-render")
            outputs = pool.map(_render_chunk, ((c, dpi, timeout) for c in chunks))
        try:
            for chunk, rendered in zip(chunks, outputs, strict=True):
                for src, res in zip(chunk, rendered, strict=True):
                    results[src] = res
                    _cache_put(cache_dir, _cache_key(src, dpi), res)
                bar.update(len(chunk))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return results


def evaluate_cdm(records: Iterable[dict], *, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 cache_dir: str | os.PathLike | None = None, progress: bool = False, use_cache: bool = True,
                 dpi: int = DPI, mode: str = "official", toolkit: str | None = None) -> dict:
    """ExpRate@CDM of prediction records.

    Inputs: ``records`` with string ``gt`` / ``pred`` (space-tokenized LaTeX) and optionally ``img_id``;
    ``workers`` pdflatex / pdftoppm pipelines (default: all cores); ``timeout`` seconds per expression;
    ``cache_dir`` / ``use_cache`` the render cache (default :func:`default_cache_dir`); ``progress`` a tqdm bar;
    ``mode`` ``"official"`` or ``"strict"`` (:mod:`.match`); ``toolkit`` ``"2025-09"`` or ``"2025-03"``.

    Output: ``{"exprate_cdm", "evaluated", "total", "excluded", "pred_render_failures", "mean_f1", "samples",
    "settings"}`` (keys and rounding: docs/evaluation.md); a sample counts when its F1 rounded to 3 decimals is 1,
    a gt that fails to render is excluded, a pred that fails scores 0. The same result for any ``workers`` and with
    or without cache.

    Raises :class:`ValueError` for an unknown ``mode`` or ``toolkit``, :class:`InputError` for malformed records or
    missing pdflatex / pdftoppm. Source: the Uni-MuMER paper (ExpRate@CDM) and the CDM paper.
    """
    if mode not in _match.MODES:
        raise ValueError(f"unknown CDM mode {mode!r} (expected one of {', '.join(_match.MODES)})")
    tk = get_toolkit(toolkit)
    recs = _validate(records)
    workers = max(1, int(workers)) if workers else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else os.cpu_count() or 1)
    cdir = None
    if use_cache:
        cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    colored = _colorize_all(recs, tk)
    sources = sorted({c.source for c in colored.values() if not isinstance(c, LatexError)})
    rendered = _render_all(sources, workers=workers, timeout=timeout, dpi=dpi, cache_dir=cdir, progress=progress)

    def outcome(expr: str) -> tuple[dict | None, object, str | None]:
        col = colored[expr]
        if isinstance(col, LatexError):
            return None, None, f"not renderable: {col}"
        res = rendered[col.source]
        if not res["ok"]:
            return None, col, f"render failed: {res['error']}"
        return clip_to_page(res, len(col.labels), dpi), col, None

    samples = [_score_sample(i, rec, outcome, dpi=dpi, mode=mode, tk=tk) for i, rec in enumerate(recs)]
    scored = [s for s in samples if s["status"] != "gt_error"]
    evaluated = len(scored)
    return {
        "exprate_cdm": round(100.0 * sum(s["f1"] == 1.0 for s in scored) / evaluated, 4) if evaluated else 0.0,
        "evaluated": evaluated,
        "total": len(recs),
        "excluded": [s["img_id"] for s in samples if s["status"] == "gt_error"],
        "pred_render_failures": sum(s["status"] == "pred_error" for s in samples),
        "mean_f1": round(sum(s["f1"] for s in scored) / evaluated, 4) if evaluated else 0.0,
        "samples": samples,
        "settings": _settings(mode, dpi, tk),
    }


def _colorize_all(recs: list[dict], tk) -> dict[str, object]:
    """Every distinct gt / pred expression → its colour-coded form, or the :class:`LatexError` it raised."""
    colored: dict[str, object] = {}
    for rec in recs:
        for expr in (rec["gt"], rec["pred"]):
            if expr not in colored:
                try:
                    colored[expr] = colorize(expr, tk)
                except LatexError as exc:
                    colored[expr] = exc
    return colored


def _score_sample(i: int, rec: dict, outcome, *, dpi: int, mode: str, tk) -> dict:
    """The per-sample result of record ``i`` (see :func:`evaluate_cdm`); ``outcome(expr)`` gives its render."""
    sample = {"img_id": rec.get("img_id", i), "gt": rec["gt"], "pred": rec["pred"], "recall": None,
              "precision": None, "f1": None, "status": "ok", "matched": 0, "n_gt": 0, "n_pred": 0, "error": None}
    g_res, g_col, g_err = outcome(rec["gt"])
    if g_err is None and not g_res["boxes"]:
        g_err = "gt renders no visible token"
    if g_err is not None:
        sample.update(status="gt_error", error=g_err)
        return sample
    p_res, p_col, p_err = outcome(rec["pred"])
    n_gt = len(g_res["boxes"])
    if p_err is not None:
        sample.update(status="pred_error", error=p_err, recall=0.0, precision=0.0, f1=0.0, n_gt=n_gt)
        return sample
    matched, n_gt, n_pred = _match.match_boxes(g_res["boxes"], g_col.labels, g_res["size"], p_res["boxes"],
                                               p_col.labels, p_res["size"], dpi=dpi, mode=mode,
                                               gt_spellings=g_col.spellings, pred_spellings=p_col.spellings,
                                               toolkit=tk)
    recall, precision, f1 = (round(x, 3) for x in _match.scores(matched, n_gt, n_pred))
    sample.update(recall=recall, precision=precision, f1=f1, matched=matched, n_gt=n_gt, n_pred=n_pred)
    return sample


def _settings(mode: str, dpi: int, tk) -> dict:
    weights = {"token": _match.W_TOKEN, "position": _match.W_POSITION, "order": _match.W_ORDER,
               "token_equivalent": tk.equivalent_cost if mode == "official" else 0.0}
    out = {"mode": mode, "toolkit": tk.settings(), "dpi": dpi, "render_version": RENDER_VERSION,
           "weights": weights}
    if mode == "official":
        out.update(order="longer list" if tk.order_by_longer else "own list",
                   ransac={"rounds": tk.ransac_rounds, "min_samples": tk.ransac_min_samples,
                           "residual_threshold_px": tk.ransac_threshold_px * dpi / _match.OFFICIAL_DPI,
                           "max_trials": tk.ransac_max_trials, "rng": _match.RANSAC_SEED})
    else:
        out.update(tau_em=_match.TAU_EM, scale_range=[_match.S_MIN, _match.S_MAX])
    return out


# --------------------------------------------------------------------------------------------------- CLI
