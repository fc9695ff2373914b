"""Aggregates of the error analysis: ExpRate per bucket, confusions, letter–digit score, A vs B with McNemar.

Input: validated records (and two loaded files for a comparison). Output: the ``analysis.json`` dictionaries
(:func:`analyze_records`, :func:`compare_analyses`). Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InputError
from .features import (
    DEFAULT_LENGTH_EDGES,
    FAMILIES,
    PredFile,
    family_labels,
    letter_digit_pair,
    record_buckets,
    token_operations,
)

#: Discordant-pair count below which the McNemar test is the exact binomial test (``--mcnemar auto``).
EXACT_BELOW = 25
DEFAULT_TOP_K = 5


def _rate(k: int, n: int) -> float | None:
    return round(k / n * 100, 4) if n else None


def _bucket_rows(labels: Sequence[str], members: Mapping[str, list[int]], distances: Sequence[int]) -> list[dict]:
    rows = []
    for label in labels:
        idx = members.get(label, [])
        n = len(idx)
        exact = sum(1 for i in idx if distances[i] == 0)
        le1 = sum(1 for i in idx if distances[i] <= 1)
        le2 = sum(1 for i in idx if distances[i] <= 2)
        rows.append({"bucket": label, "n": n, "exact": exact, "le1": le1, "le2": le2,
                     "exprate": _rate(exact, n), "error_le_1_rate": _rate(le1, n), "error_le_2_rate": _rate(le2, n)})
    return rows


def compute_buckets(gts: Sequence[str], distances: Sequence[int],
                    edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> tuple[dict, list[dict]]:
    """Breakdowns of ExpRate / ≤1 / ≤2 per bucket family.

    Inputs: the gt strings and the official token distances (same order). Output: ``(buckets, memberships)`` with
    ``buckets[family]`` a list of rows ``{"bucket", "n", "exact", "le1", "le2", "exprate", "error_le_1_rate",
    "error_le_2_rate"}`` (rates in %, ``None`` for an empty bucket) and ``memberships[i]`` the labels of record i.
    """
    from tqdm import tqdm

    memberships = [record_buckets(g, edges) for g in tqdm(gts, desc="analysing", unit="rec", disable=None, leave=False)]
    buckets: dict[str, list[dict]] = {}
    for fam in FAMILIES:
        members: dict[str, list[int]] = {}
        for i, m in enumerate(memberships):
            for label in m[fam]:
                members.setdefault(label, []).append(i)
        buckets[fam] = _bucket_rows(family_labels(fam, set(members), edges), members, distances)
    return buckets, memberships


def confusion_score(subs: Counter, n_records: int, top_k: int = DEFAULT_TOP_K) -> dict:
    """The letter–digit confusion score (docs/analysis.md): pairs, per-100-records scores, top-k sum.

    Input: substitution counts ``{(gt, pred): n}`` and the number of records. Output: ``{"top_k", "score",
    "pairs": [{"pair": "digit↔letter", "count", "score"}, …] (all letter–digit pairs, highest first),
    "letter_digit_substitutions", "definition"}``.
    """
    pairs: Counter = Counter()
    for (g, p), c in subs.items():
        pair = letter_digit_pair(g, p)
        if pair is not None:
            pairs[pair] += c
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = [{"pair": f"{d}↔{letter}", "count": c, "score": round(c / n_records * 100, 4)}
            for (d, letter), c in ranked]
    score = round(sum(c for _, c in ranked[:top_k]) / n_records * 100, 4)
    return {
        "top_k": top_k,
        "score": score,
        "pairs": rows,
        "letter_digit_substitutions": sum(pairs.values()),
        "definition": (f"pair score = substitutions between a digit and a Latin letter (single-character tokens, "
                       f"both directions) per 100 records; score = sum of the {top_k} largest pair scores"),
    }


def _ranked(counter: Counter, keys: Sequence[str]) -> list[dict]:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    out = []
    for k, c in items:
        vals = k if isinstance(k, tuple) else (k,)
        out.append({**dict(zip(keys, vals, strict=True)), "count": c})
    return out


def analyze_records(records: Sequence[Mapping[str, Any]], *, top_k: int = DEFAULT_TOP_K,
                    length_edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> dict:
    """Analyse one prediction file's records.

    Input: validated records (``gt`` / ``pred`` strings). Output: the ``analysis.json`` dictionary: ``records``,
    ``metrics`` (the calculator's ExpRate / ≤1 / ≤2 / ≤3), ``edit_totals`` (substitutions, insertions, deletions,
    distance), ``confusions`` (``[{"gt", "pred", "count"}]``, most frequent first, ties by token), ``insertions``
    (``[{"pred", "count"}]``), ``deletions`` (``[{"gt", "count"}]``), ``confusion_score``, ``buckets``; plus the
    private ``_per_record`` list (distance, exact, bucket labels, substitutions) used by :func:`compare_analyses`
    and removed before writing.
    """
    from ..metrics.calculator import evaluate_with_distances

    metrics, distances = evaluate_with_distances(list(records))
    subs: Counter = Counter()
    ins: Counter = Counter()
    dels: Counter = Counter()
    per_record = []
    gts = [r["gt"] for r in records]
    buckets, memberships = compute_buckets(gts, distances, length_edges)
    for rec, d, m in zip(records, distances, memberships, strict=True):
        s, i_, dl = token_operations(rec["gt"].split(), rec["pred"].split()) if d else ([], [], [])
        subs.update(s)
        ins.update(i_)
        dels.update(dl)
        per_record.append({"distance": d, "buckets": m, "subs": s})
    n = len(records)
    return {
        "records": n,
        "metrics": {k: metrics[k] for k in ("exact_match_rate", "error_le_1_rate", "error_le_2_rate",
                                             "error_le_3_rate")},
        "edit_totals": {"substitutions": sum(subs.values()), "insertions": sum(ins.values()),
                        "deletions": sum(dels.values()), "distance": sum(distances)},
        "confusions": _ranked(subs, ("gt", "pred")),
        "insertions": _ranked(ins, ("pred",)),
        "deletions": _ranked(dels, ("gt",)),
        "confusion_score": confusion_score(subs, n, top_k),
        "buckets": buckets,
        "_per_record": per_record,
    }


def mcnemar(broken: int, fixed: int, method: str = "auto") -> dict:
    """McNemar's test on paired exact-match outcomes.

    Inputs: ``broken`` = b (A exact, B not), ``fixed`` = c (B exact, A not); ``method`` ``auto`` (exact binomial when
    ``b + c < 25``, else chi-square with continuity correction), ``exact`` or ``chi2``. Output: ``{"b", "c",
    "test", "statistic", "p_value"}``; ``p_value = 1.0`` when ``b + c == 0``. Uses scipy (``binomtest``,
    ``chi2.sf``). Raises ``ValueError`` for an unknown method.
    """
    if method not in ("auto", "exact", "chi2"):
        raise ValueError(f"unknown McNemar method {method!r}")
    b, c = broken, fixed
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "test": "none (no discordant pairs)", "statistic": None, "p_value": 1.0}
    from scipy import stats

    if method == "exact" or (method == "auto" and n < EXACT_BELOW):
        p = float(stats.binomtest(min(b, c), n, 0.5).pvalue)
        return {"b": b, "c": c, "test": "exact binomial (two-sided)", "statistic": min(b, c), "p_value": min(p, 1.0)}
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "test": "chi-square, continuity-corrected, 1 df", "statistic": chi2,
            "p_value": float(stats.chi2.sf(chi2, 1))}


def _index(pf: PredFile, role: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, key in enumerate(pf.keys):
        if key is None:
            raise InputError(f"{pf.path}: record {i} has neither 'img_id' nor 'image_path' ({role} of the "
                             "comparison needs them to pair records)")
        if key in index:
            raise InputError(f"{pf.path}: img_id {key!r} occurs twice (records {index[key]} and {i})")
        index[key] = i
    return index


def pair_files(a: PredFile, b: PredFile) -> list[tuple[int, int]]:
    """Pair the records of A and B by ``img_id``: ``[(index in A, index in B)]`` in A's order.

    Raises :class:`InputError` when a record lacks a key, a key repeats, the two ``img_id`` sets differ (the
    counts and an example are named) or a paired gt differs.
    """
    ia, ib = _index(a, "A"), _index(b, "B")
    only_a = [k for k in ia if k not in ib]
    only_b = [k for k in ib if k not in ia]
    if only_a or only_b:
        ex = (f"e.g. {only_a[0]!r} only in A" if only_a else f"e.g. {only_b[0]!r} only in B")
        raise InputError(f"{a.path} and {b.path} hold different img_ids ({len(only_a)} only in A, "
                         f"{len(only_b)} only in B; {ex})")
    pairs = [(i, ib[k]) for k, i in ia.items()]
    for i, j in pairs:
        if a.records[i]["gt"].split() != b.records[j]["gt"].split():
            raise InputError(f"img_id {a.keys[i]!r}: the gt differs between {a.path} and {b.path}")
    return pairs


def _diff(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else round(y - x, 4)


def compare_analyses(a: PredFile, an_a: dict, b: PredFile, an_b: dict, *, method: str = "auto") -> dict:
    """A vs B: buckets, confusions, confusion score, fixed / broken samples, McNemar.

    Inputs: the two loaded files and their :func:`analyze_records` results (B's records are re-ordered to A's by
    ``img_id``; buckets are the gt's, identical for both). Output: the ``"comparison"`` dictionary (every
    difference is B − A). Raises :class:`InputError` from :func:`pair_files`.
    """
    pairs = pair_files(a, b)
    pa, pb = an_a["_per_record"], an_b["_per_record"]
    fixed, broken = [], []
    for i, j in pairs:
        ea, eb = pa[i]["distance"] == 0, pb[j]["distance"] == 0
        if ea != eb:
            item = {"img_id": a.keys[i], "gt": a.records[i]["gt"], "pred_a": a.records[i]["pred"],
                    "pred_b": b.records[j]["pred"]}
            (fixed if eb else broken).append(item)
    buckets = {}
    for fam in FAMILIES:
        rows_b = {r["bucket"]: r for r in an_b["buckets"][fam]}
        rows = []
        for ra in an_a["buckets"][fam]:
            rb = rows_b.get(ra["bucket"], {})
            row = {"bucket": ra["bucket"], "n": ra["n"]}
            for key in ("exprate", "error_le_1_rate", "error_le_2_rate"):
                row[f"{key}_a"] = ra[key]
                row[f"{key}_b"] = rb.get(key)
                row[f"{key}_diff"] = _diff(ra[key], rb.get(key))
            rows.append(row)
        buckets[fam] = rows
    ca = {(r["gt"], r["pred"]): r["count"] for r in an_a["confusions"]}
    cb = {(r["gt"], r["pred"]): r["count"] for r in an_b["confusions"]}
    conf = [{"gt": g, "pred": p, "count_a": ca.get((g, p), 0), "count_b": cb.get((g, p), 0),
             "diff": cb.get((g, p), 0) - ca.get((g, p), 0)} for g, p in set(ca) | set(cb)]
    conf.sort(key=lambda r: (-(r["count_a"] + r["count_b"]), r["gt"], r["pred"]))
    sa, sb = an_a["confusion_score"], an_b["confusion_score"]
    pa_s = {r["pair"]: r["score"] for r in sa["pairs"]}
    pb_s = {r["pair"]: r["score"] for r in sb["pairs"]}
    top = [r["pair"] for r in sa["pairs"][: sa["top_k"]]]
    top += [r["pair"] for r in sb["pairs"][: sb["top_k"]] if r["pair"] not in top]
    score_pairs = [{"pair": p, "score_a": pa_s.get(p, 0.0), "score_b": pb_s.get(p, 0.0),
                    "diff": round(pb_s.get(p, 0.0) - pa_s.get(p, 0.0), 4)} for p in top]
    ma, mb = an_a["metrics"], an_b["metrics"]
    return {
        "against": str(b.path),
        "paired_records": len(pairs),
        "metrics": {k: {"a": ma[k], "b": mb[k], "diff": _diff(ma[k], mb[k])} for k in ma},
        "mcnemar": {**mcnemar(len(broken), len(fixed), method),
                    "both_exact": sum(1 for i, j in pairs if pa[i]["distance"] == 0 and pb[j]["distance"] == 0),
                    "neither_exact": sum(1 for i, j in pairs if pa[i]["distance"] and pb[j]["distance"])},
        "fixed": fixed,
        "broken": broken,
        "buckets": buckets,
        "confusions": conf,
        "confusion_score": {"score_a": sa["score"], "score_b": sb["score"], "diff": round(sb["score"] - sa["score"], 4),
                            "top_k": sa["top_k"], "pairs": score_pairs},
    }
