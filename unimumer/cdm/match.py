"""CDM matching of two renders: Hungarian assignment of token boxes, then spatial consistency (RANSAC).

Input: the boxes of the gt and of the pred render (``[[k, x0, y0, x1, y1], ...]`` in pixels, from
:mod:`unimumer.cdm.render`), their labels (canonical tokens, :mod:`unimumer.cdm.latex`) and image sizes.
Output (:func:`match_boxes`): ``(matched, n_gt, n_pred)``; recall = matched / n_gt, precision = matched / n_pred,
F1 = 2·matched / (n_gt + n_pred) (:func:`scores`).

Steps (CDM, UniMERNet arXiv 2409.03643, §3 "element matching"; our own implementation):

1. **Cost matrix** ``C[i, j] = W_TOKEN·[label_i ≠ label_j] + W_POSITION·‖b_i − b_j‖₁ + W_ORDER·|i/n − j/m|`` where
   ``b`` are pixel boxes divided by the larger width and height of the two renders (same font size and resolution,
   so one common frame) and ``i/n`` is the token's rank in reading
   (LaTeX) order. Assignment: :func:`scipy.optimize.linear_sum_assignment`. Only pairs with equal labels are
   candidates.
2. **Spatial consistency** (RANSAC over the candidate matches, deterministic and exhaustive). The model is
   ``pred = s·gt + t``, translation + isotropic scale, on both corners of every box in pixels, so a box that moves
   *or changes size* (a radical spanning one token more, a token moved into a script) is inconsistent. Both
   renders share font size and resolution, so hypotheses are the translations of every candidate (``s = 1``);
   the hypothesis with most inliers (largest corner distance < ``TAU_EM`` em) wins, ties go to the smaller
   residual sum. It is then refined by least squares (``s`` and ``t``) on its inliers until the inlier set is
   stable — so a model half-way between two placements cannot absorb a displacement of twice the threshold —
   and rejected if its own scale leaves ``[S_MIN, S_MAX]`` (a block moved into or out of a script is 30 %
   smaller or larger; it is rejected, never clipped). As in CDM the search is repeated on the remaining
   candidates so that parts shifted by an insertion or a deletion (a translated tail) still count: later groups
   need at least 2 members, the first group's scale (±10 %) and a vertical offset from it within
   ``SECONDARY_DY_EM`` — a block moved along the baseline counts, a block moved into or out of a script does not.
   The first group may be a single match.

Known difference from the official toolkit: it forgives a single token moved into a script when the formula has
only two tokens (``P a`` vs ``P _ { a }``: official F1 1.0, here 0.5); here ``x ^ { 2 }`` vs ``x _ { 2 }`` and
such moves always count as errors.
"""

from __future__ import annotations

import numpy as np

W_TOKEN = 1.0
W_POSITION = 0.05
W_ORDER = 0.15
#: inlier threshold, in em of the rendered 10 pt font (1 em = 10 pt).
TAU_EM = 0.2
S_MIN, S_MAX = 0.9, 1.1
#: later groups: scale within ±10 % of the first group's
SECONDARY_SCALE_TOL = 0.1
#: later groups: vertical offset from the first group's translation, in em (a baseline-level block stays within it;
#: \cdots vs \ldots dots are 0.2 em apart, a block moved into a script also changes scale by 30 %)
SECONDARY_DY_EM = 0.4


def em_pixels(dpi: int) -> float:
    """Pixels per em of the 10 pt render at ``dpi``."""
    return 10.0 * dpi / 72.27


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


def match_boxes(gt_boxes: list, gt_labels: list[str], gt_size, pred_boxes: list, pred_labels: list[str],
                pred_size, *, dpi: int) -> tuple[int, int, int]:
    """Match the gt and pred token boxes; returns ``(matched, n_gt, n_pred)``.

    ``*_boxes``: ``[[k, x0, y0, x1, y1], ...]`` (colour index ``k`` is 1-based into ``*_labels``);
    ``*_size``: ``(width, height)`` of the render; ``dpi``: render resolution (sets the inlier threshold).
    """
    n, m = len(gt_boxes), len(pred_boxes)
    if n == 0 or m == 0:
        return 0, n, m
    from scipy.optimize import linear_sum_assignment

    gb = np.array([b[1:] for b in gt_boxes], dtype=float)
    pb = np.array([b[1:] for b in pred_boxes], dtype=float)
    gl = [gt_labels[b[0] - 1] for b in gt_boxes]
    pl = [pred_labels[b[0] - 1] for b in pred_boxes]
    vocab = {lab: i for i, lab in enumerate(sorted(set(gl) | set(pl)))}
    gid = np.array([vocab[x] for x in gl])
    pid = np.array([vocab[x] for x in pl])
    token_cost = (gid[:, None] != pid[None, :]).astype(float)
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


def scores(matched: int, n_gt: int, n_pred: int) -> tuple[float, float, float]:
    """``(recall, precision, f1)`` from match counts; an empty side scores 0 (both empty: 1)."""
    if n_gt == 0 and n_pred == 0:
        return 1.0, 1.0, 1.0
    recall = matched / n_gt if n_gt else 0.0
    precision = matched / n_pred if n_pred else 0.0
    f1 = 2 * matched / (n_gt + n_pred)
    return recall, precision, f1
