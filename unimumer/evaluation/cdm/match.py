"""CDM matching of two renders: Hungarian assignment of token boxes, then the spatial check (RANSAC).

Input: the boxes of the gt and of the pred render (``[[k, x0, y0, x1, y1], ...]`` in pixels, from
:mod:`unimumer.evaluation.cdm.render`), their labels (canonical tokens, :mod:`unimumer.evaluation.cdm.latex`) and image sizes.
Output (:func:`match_boxes`): ``(matched, n_gt, n_pred)``; recall = matched / n_gt, precision = matched / n_pred,
F1 = 2·matched / (n_gt + n_pred) (:func:`scores`, rounded to 3 decimals like the official toolkit).
``mode="official"`` (default) reproduces the official toolkit version ``toolkit=`` names; ``"strict"`` is a
layout-aware variant for analysis. Cost matrix, RANSAC rounds and the strict variant: docs/cdm.md, "Matching".
"""

from __future__ import annotations

import numpy as np

MODES = ("official", "strict")
W_TOKEN = 1.0
W_POSITION = 0.05
W_ORDER = 0.15
#: official spatial check: RANSAC seed (rounds, min_samples, threshold, trials: :class:`unimumer.evaluation.cdm.toolkit.Toolkit`)
RANSAC_SEED = 42
OFFICIAL_DPI = 200
#: font size of the render (``\documentclass[12pt]``), in pt
FONT_PT = 12.0
#: strict mode: inlier threshold, in em of the rendered font.
TAU_EM = 0.2
S_MIN, S_MAX = 0.9, 1.1
#: later groups: scale within ±10 % of the first group's
SECONDARY_SCALE_TOL = 0.1
#: later groups: vertical offset from the first group's translation, in em (a baseline-level block stays within it;
#: \cdots vs \ldots dots are 0.2 em apart, a block moved into a script also changes scale by 30 %)
SECONDARY_DY_EM = 0.4


def em_pixels(dpi: int) -> float:
    """Pixels per em of the :data:`FONT_PT` render at ``dpi``."""
    return FONT_PT * dpi / 72.27


def _normalised(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    w, h = max(width, 1), max(height, 1)
    return boxes / np.array([w, h, w, h], dtype=float)


def _fit(g: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares ``p ≈ s·g + t`` over all box corners (``(K, 2, 2)`` arrays); ``s`` is not clipped."""
    g2, p2 = g.reshape(-1, 2), p.reshape(-1, 2)
    gm, pm = g2.mean(axis=0), p2.mean(axis=0)
    gc, pc = g2 - gm, p2 - pm
    denom = float((gc * gc).sum())
    s = float((gc * pc).sum()) / denom if denom > 1e-9 else 1.0
    return s, pm - s * gm


def _residuals(s, t, g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Largest corner distance of each box under ``p ≈ s·g + t`` (boxes as ``(K, 2, 2)`` corner arrays)."""
    return np.linalg.norm(s * g + t - p, axis=-1).max(axis=-1)


def _best_group(g: np.ndarray, p: np.ndarray, thr: float,
                ref: tuple[float, np.ndarray] | None = None, dy_max: float = 0.0) -> tuple[np.ndarray, float, np.ndarray]:
    """Largest spatially consistent subset of the box pairs ``g[k] → p[k]`` (``(K, 2, 2)`` corners):
    ``(indices, s, t)``.

    With ``ref = (s0, t0)`` (the first group's model) only models with ``|s − s0| ≤ SECONDARY_SCALE_TOL·s0`` and a
    vertical translation within ``dy_max`` of ``t0`` qualify: later groups may only be shifted along the baseline.
    """
    k = len(g)
    if k == 1:
        return np.array([0]), 1.0, (p[0] - g[0]).mean(axis=0)
    # hypotheses: the translation of every candidate (both renders share font size and resolution, so a
    # consistent part differs by a translation); the scale is then refined by least squares on the inliers
    t = (p - g).mean(axis=1)  # (H = K, 2)
    res = np.linalg.norm(g[None] + t[:, None, None, :] - p[None], axis=3).max(axis=2)  # (H, K)
    inl = res < thr
    if ref is not None:
        allowed = (abs(1.0 - ref[0]) <= SECONDARY_SCALE_TOL * ref[0]) & (np.abs(t[:, 1] - ref[1][1]) <= dy_max)
        inl &= allowed[:, None]
    count = inl.sum(axis=1)
    cost = np.where(inl, res, 0.0).sum(axis=1)
    best = int(np.lexsort((cost, -count))[0])
    members = np.flatnonzero(inl[best])
    if len(members) < 2:
        return (np.array([best]) if ref is None else np.array([], dtype=int)), 1.0, t[best]
    # local optimisation: least-squares (s, t) refit on the inliers until the inlier set is stable, so that a
    # model half-way between two placements (absorbing a displacement of up to twice the threshold) is not kept;
    # a group whose own least-squares scale is out of range (a block moved into or out of a script) is rejected
    fallback = (np.array([best]) if ref is None else np.array([], dtype=int)), 1.0, t[best]
    for _ in range(10):
        s2, t2 = _fit(g[members], p[members])
        if not S_MIN <= s2 <= S_MAX or (ref is not None and not (
                abs(s2 - ref[0]) <= SECONDARY_SCALE_TOL * ref[0] and abs(t2[1] - ref[1][1]) <= dy_max)):
            return fallback
        refined = np.flatnonzero(_residuals(s2, t2, g, p) < thr)
        if len(refined) < 2 or np.array_equal(refined, members):
            break
        members = refined
    return members, s2, t2


def consistent_matches(g: np.ndarray, p: np.ndarray, thr: float, dy_max: float | None = None) -> int:
    """Number of matches kept by the iterated RANSAC of the module docstring (``g``/``p``: (K, 2, 2) box corners)."""
    if len(g) == 0:
        return 0
    dy_max = 2 * thr if dy_max is None else dy_max
    group, s0, t0 = _best_group(g, p, thr)
    kept = len(group)
    remaining = np.delete(np.arange(len(g)), group)
    while len(remaining) >= 2:
        group, _, _ = _best_group(g[remaining], p[remaining], thr, ref=(s0, t0), dy_max=dy_max)
        if len(group) < 2:
            break
        kept += len(group)
        remaining = np.delete(remaining, group)
    return kept


def _box_arrays(gt_boxes: list, gt_labels: list[str], pred_boxes: list, pred_labels: list[str]):
    """Both modes' inputs as arrays: box coordinates ``(n, 4)`` / ``(m, 4)`` (``float``), the token ids of each
    box's label in one shared vocabulary, and the ``(n, m)`` token cost (0 same label, 1 otherwise)."""
    gb = np.array([b[1:] for b in gt_boxes], dtype=float)
    pb = np.array([b[1:] for b in pred_boxes], dtype=float)
    gl = [gt_labels[b[0] - 1] for b in gt_boxes]
    pl = [pred_labels[b[0] - 1] for b in pred_boxes]
    vocab = {lab: i for i, lab in enumerate(sorted(set(gl) | set(pl)))}
    gid = np.array([vocab[x] for x in gl])
    pid = np.array([vocab[x] for x in pl])
    return gb, pb, gid, pid, (gid[:, None] != pid[None, :]).astype(float)


def _match_strict(gt_boxes: list, gt_labels: list[str], gt_size, pred_boxes: list, pred_labels: list[str],
                  pred_size, *, dpi: int) -> tuple[int, int, int]:
    """The ``strict`` mode of :func:`match_boxes` (module docstring)."""
    n, m = len(gt_boxes), len(pred_boxes)
    if n == 0 or m == 0:
        return 0, n, m
    from scipy.optimize import linear_sum_assignment

    gb, pb, gid, pid, token_cost = _box_arrays(gt_boxes, gt_labels, pred_boxes, pred_labels)
    # both renders share font size and resolution: one common frame (the larger width / height) keeps the
    # positions comparable when one side has extra tokens at its end
    width, height = max(gt_size[0], pred_size[0]), max(gt_size[1], pred_size[1])
    gn, pn = _normalised(gb, width, height), _normalised(pb, width, height)
    pos_cost = np.abs(gn[:, None, :] - pn[None, :, :]).sum(axis=2)
    order_cost = np.abs(np.arange(n)[:, None] / n - np.arange(m)[None, :] / m)
    cost = W_TOKEN * token_cost + W_POSITION * pos_cost + W_ORDER * order_cost
    rows, cols = linear_sum_assignment(cost)
    same = gid[rows] == pid[cols]
    rows, cols = rows[same], cols[same]
    if len(rows) == 0:
        return 0, n, m
    gc = gb[rows].reshape(-1, 2, 2)  # (K, corner, xy)
    pc = pb[cols].reshape(-1, 2, 2)
    kept = consistent_matches(gc, pc, TAU_EM * em_pixels(dpi), SECONDARY_DY_EM * em_pixels(dpi))
    return kept, n, m


class TranslationScale:
    """Translation + isotropic scale for :func:`skimage.measure.ransac` (the official toolkit's model).

    :meth:`estimate` sets the translation to the difference of the centroids and the scale to the ratio of the mean
    distances to the centroids; applying it scales the given points about *their own* centroid, then translates.
    Points are ``(K, 2)`` arrays of ``(y, x)`` pixels.
    """

    def __init__(self) -> None:
        self.translation = np.zeros(2)
        self.scale = 1.0

    def estimate(self, src: np.ndarray, dst: np.ndarray) -> bool:
        src_c, dst_c = src.mean(axis=0), dst.mean(axis=0)
        self.translation = dst_c - src_c
        spread = float(np.linalg.norm(src - src_c, axis=1).mean())
        self.scale = float(np.linalg.norm(dst - dst_c, axis=1).mean()) / (spread + 1e-10)
        return True

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        centre = coords.mean(axis=0)
        return self.scale * (coords - centre) + centre + self.translation

    def residuals(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self(src) - dst, axis=1)


def spatial_inliers(src: np.ndarray, dst: np.ndarray, *, toolkit=None, dpi: int = OFFICIAL_DPI) -> np.ndarray:
    """Official iterative spatial check: boolean inlier mask of the pairs ``src[k] → dst[k]`` (``(K, 2)`` box centres
    ``(y, x)`` in pixels at ``dpi``). With ``min_samples`` = ``toolkit.ransac_min_samples`` (default toolkit:
    :func:`unimumer.evaluation.cdm.toolkit.get_toolkit`): ≤ min_samples pairs are all accepted; else up to
    ``toolkit.ransac_rounds`` RANSAC rounds on the pairs not yet accepted (each with its own translation + scale,
    threshold ``toolkit.ransac_threshold_px`` at 200 dpi), stopping when ≤ min_samples remain, a round finds none
    or all are in."""
    from .toolkit import get_toolkit

    tk = get_toolkit(toolkit)
    min_samples, threshold = tk.ransac_min_samples, tk.ransac_threshold_px * dpi / OFFICIAL_DPI
    k = len(src)
    if k <= min_samples:
        return np.ones(k, dtype=bool)
    import warnings

    from skimage.measure import ransac

    accepted = np.zeros(k, dtype=bool)
    for _ in range(tk.ransac_rounds):
        rest = np.flatnonzero(~accepted)
        if len(rest) <= min_samples:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No inliers found" is an outcome here, not a problem
            _, inl = ransac((src[rest], dst[rest]), TranslationScale, min_samples=min_samples,
                            residual_threshold=threshold, max_trials=tk.ransac_max_trials, rng=RANSAC_SEED)
        if inl is None or not np.any(inl):
            break
        accepted[rest[np.asarray(inl, dtype=bool)]] = True
        if accepted.all():
            break
    return accepted


def _match_official(gt_boxes: list, gt_labels: list[str], gt_size, pred_boxes: list, pred_labels: list[str],
                    pred_size, *, dpi: int, gt_spellings: list[str] | None = None,
                    pred_spellings: list[str] | None = None, toolkit=None) -> tuple[int, int, int]:
    """The ``official`` mode of :func:`match_boxes` (module docstring)."""
    n, m = len(gt_boxes), len(pred_boxes)
    if n == 0 or m == 0:
        return 0, n, m
    from scipy.optimize import linear_sum_assignment

    from .toolkit import get_toolkit

    tk = get_toolkit(toolkit)

    gb, pb, gid, pid, token_cost = _box_arrays(gt_boxes, gt_labels, pred_boxes, pred_labels)
    if gt_spellings is not None and pred_spellings is not None:
        gs = [gt_spellings[b[0] - 1] for b in gt_boxes]
        ps = [pred_spellings[b[0] - 1] for b in pred_boxes]
        spell = {tok: i for i, tok in enumerate(sorted(set(gs) | set(ps)))}
        differ = np.array([spell[x] for x in gs])[:, None] != np.array([spell[x] for x in ps])[None, :]
        token_cost[differ & (token_cost == 0)] = tk.equivalent_cost
    gn, pn = _normalised(gb, *gt_size), _normalised(pb, *pred_size)
    pos_cost = np.abs(gn[:, None, :] - pn[None, :, :]).sum(axis=2) / 4.0
    n_order, m_order = (max(n, m),) * 2 if tk.order_by_longer else (n, m)
    order_cost = np.abs(np.arange(n)[:, None] / n_order - np.arange(m)[None, :] / m_order)
    cost = W_TOKEN * token_cost + W_POSITION * pos_cost + W_ORDER * order_cost
    rows, cols = linear_sum_assignment(cost)
    centre = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=float) / 2.0  # (x0, y0, x1, y1) -> (y, x) centre
    src = (gb[rows] @ centre)[:, ::-1]
    dst = (pb[cols] @ centre)[:, ::-1]
    inliers = spatial_inliers(src, dst, toolkit=tk, dpi=dpi)
    kept = int(np.count_nonzero(inliers & (token_cost[rows, cols] < 1.0)))
    return kept, n, m


def match_boxes(gt_boxes: list, gt_labels: list[str], gt_size, pred_boxes: list, pred_labels: list[str],
                pred_size, *, dpi: int, mode: str = "official", gt_spellings: list[str] | None = None,
                pred_spellings: list[str] | None = None, toolkit=None) -> tuple[int, int, int]:
    """Match the gt and pred token boxes; returns ``(matched, n_gt, n_pred)``.

    ``*_boxes``: ``[[k, x0, y0, x1, y1], ...]`` (colour index ``k`` is 1-based into ``*_labels``);
    ``*_size``: ``(width, height)`` of the render; ``dpi``: render resolution (scales the inlier threshold);
    ``mode``: ``"official"`` (the official toolkit's decisions, default) or ``"strict"`` (module docstring);
    ``*_spellings``: the tokens as written, parallel to ``*_labels`` (official mode: equal labels but different
    spellings cost ``toolkit.equivalent_cost`` instead of 0); ``toolkit``: official mode's toolkit version
    (:func:`unimumer.evaluation.cdm.toolkit.get_toolkit`, default ``2025-09``). Raises ``ValueError`` for an unknown mode.
    """
    if mode == "official":
        return _match_official(gt_boxes, gt_labels, gt_size, pred_boxes, pred_labels, pred_size, dpi=dpi,
                               gt_spellings=gt_spellings, pred_spellings=pred_spellings, toolkit=toolkit)
    if mode == "strict":
        return _match_strict(gt_boxes, gt_labels, gt_size, pred_boxes, pred_labels, pred_size, dpi=dpi)
    raise ValueError(f"unknown CDM mode {mode!r} (expected one of {', '.join(MODES)})")


def scores(matched: int, n_gt: int, n_pred: int) -> tuple[float, float, float]:
    """``(recall, precision, f1)`` from match counts, unrounded; an empty side scores 0 (both empty: 1)."""
    if n_gt == 0 and n_pred == 0:
        return 1.0, 1.0, 1.0
    recall = matched / n_gt if n_gt else 0.0
    precision = matched / n_pred if n_pred else 0.0
    f1 = 2 * matched / (n_gt + n_pred)
    return recall, precision, f1
