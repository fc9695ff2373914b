"""Error analysis of prediction files: where a model fails, and what changed between two models.

Input: prediction files in the official layout (``{"gt", "pred", "image_path", "img_id"}`` records; the released
``paper_final/*.json`` fit too). Output: :func:`analyze_records` / :func:`compare_analyses` dicts (token
confusions by the EDL alignment, letter–digit confusion score per 100 records, ExpRate / ≤ 1 / ≤ 2 by gt length,
Tree-CoT depth, structure kind and symbol repetition, McNemar's test of A vs B), :func:`render_report` Markdown,
:func:`write_plots` PNGs, :func:`run` all of it for files or folders. Definitions: docs/analysis.md and the
``unimumer analyze --help`` text (:mod:`unimumer.commands.analyze`).
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .files import atomic_write_bytes, atomic_write_text, read_json, write_json
from .layout import find_predictions, stem_of

# --------------------------------------------------------------------------------------------------- constants
#: Upper edges (inclusive) of the gt-length buckets in tokens; the last bucket is "> last edge".
DEFAULT_LENGTH_EDGES = (5, 10, 20, 30, 50)
#: Depth buckets 0 … DEPTH_CAP - 1, then "≥ DEPTH_CAP".
DEPTH_CAP = 4
#: Maximum-repetition buckets (label, lowest count, highest count or None).
REPETITION_BUCKETS = (("1", 1, 1), ("2–4", 2, 4), ("≥5", 5, None))
#: Structure kinds and the gt tokens that mark them.
STRUCTURE_KINDS = {
    "fraction": frozenset({"\\frac", "\\dfrac", "\\tfrac", "\\cfrac"}),
    "root": frozenset({"\\sqrt"}),
    "scripts": frozenset({"^", "_"}),
    "matrix": frozenset({"\\begin"}),  # any \begin {env}: matrix, pmatrix, bmatrix, array, cases ...
    "big operator": None,  # filled from the Tree-CoT categories (lazy import below)
}
NO_STRUCTURE = "none of these"
UNPARSABLE = "unparsable"
FAMILIES = ("gt_length", "depth", "structure", "repetition")
FAMILY_TITLES = {
    "gt_length": "gt length (tokens)",
    "depth": "structural depth (Tree-CoT)",
    "structure": "structure kinds present (overlapping)",
    "repetition": "max symbol repetition",
}
#: Discordant-pair count below which the McNemar test is the exact binomial test (``--mcnemar auto``).
EXACT_BELOW = 25
DEFAULT_TOP_K = 5
#: Bound on Tree-CoT nodes when computing the depth of one gt (a well-formed gt prints one node per token).
_TREE_MAX_NODES = 100_000


def _big_operators() -> frozenset:
    from .latex.categories import BIG_OPERATOR_CMDS

    return frozenset(BIG_OPERATOR_CMDS)


# --------------------------------------------------------------------------------------------------- input
@dataclass
class PredFile:
    """One validated prediction file: its path, records and per-record keys (``img_id``, or the image stem)."""

    path: Path
    records: list
    keys: list[str | None]


def load_prediction_file(path: str | os.PathLike) -> PredFile:
    """Read and validate one prediction file (official layout: JSON array of objects with string ``gt``/``pred``).

    The key of a record is its ``img_id`` (a string), else the stem of its ``image_path``, else ``None`` (only a
    comparison needs keys). Raises :class:`InputError` for a missing file, non-JSON, a non-array / empty array or a
    record without string ``gt`` / ``pred`` (index named).
    """
    from .metrics.calculator import validate_records

    p = Path(path)
    records = validate_records(read_json(p), source=str(p))
    keys: list[str | None] = []
    for i, rec in enumerate(records):
        key = rec.get("img_id")
        if key is None and isinstance(rec.get("image_path"), str):
            key = Path(rec["image_path"]).stem
        if key is not None and not isinstance(key, str):
            raise InputError(f"{p}: record {i}: 'img_id' must be a string")
        keys.append(key)
    return PredFile(p, records, keys)


# --------------------------------------------------------------------------------------------------- per record
def token_operations(gt_tokens: Sequence[str], pred_tokens: Sequence[str]) -> tuple[list, list, list]:
    """The aligned errors of one record: ``(substitutions, insertions, deletions)``.

    ``substitutions``: ``(gt_token, pred_token)`` per aligned replaced position; ``insertions``: pred tokens the
    gt does not have (extra); ``deletions``: gt tokens the pred lacks (missing). Alignment:
    :func:`unimumer.edl.alignment_opcodes` (the EDL builder's). The three lengths sum to the token distance.
    """
    from .edl import alignment_opcodes

    subs: list[tuple[str, str]] = []
    ins: list[str] = []
    dels: list[str] = []
    if list(gt_tokens) == list(pred_tokens):
        return subs, ins, dels
    for op in alignment_opcodes(gt_tokens, pred_tokens):
        p_span = pred_tokens[op.src_start:op.src_end]
        g_span = gt_tokens[op.dest_start:op.dest_end]
        if op.tag == "replace":  # one pred token for one gt token per position (Levenshtein editops merged)
            n = min(len(p_span), len(g_span))
            subs.extend(zip(g_span[:n], p_span[:n], strict=True))
            ins.extend(p_span[n:])
            dels.extend(g_span[n:])
        elif op.tag == "delete":
            ins.extend(p_span)
        elif op.tag == "insert":
            dels.extend(g_span)
    return subs, ins, dels


def length_label(n: int, edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> str:
    """The gt-length bucket of ``n`` tokens: ``"≤5"``, ``"6–10"``, …, ``">50"`` for the default edges."""
    lo = 0
    for i, hi in enumerate(edges):
        if n <= hi:
            return f"≤{hi}" if i == 0 else f"{lo + 1}–{hi}"
        lo = hi
    return f">{edges[-1]}"


def length_labels(edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> list[str]:
    """All gt-length bucket labels, in order."""
    out, lo = [], 0
    for i, hi in enumerate(edges):
        out.append(f"≤{hi}" if i == 0 else f"{lo + 1}–{hi}")
        lo = hi
    return [*out, f">{edges[-1]}"]


def tree_depth(gt_tokens: Sequence[str]) -> int | None:
    """Largest nesting level of the gt's Tree-CoT tree (leading tabs of :func:`tree_lines`); ``None`` if the
    official parser rejects the tokens (:class:`TreeParseError`)."""
    from .latex.tree import TreeParseError, tree_lines

    try:
        lines = tree_lines(list(gt_tokens), max_nodes=_TREE_MAX_NODES)
    except TreeParseError:
        return None
    return max((len(ln) - len(ln.lstrip("\t")) for ln in lines), default=0)


def depth_label(depth: int | None) -> str:
    """``"0"`` … ``"3"``, ``"≥4"``, or ``"unparsable"``."""
    if depth is None:
        return UNPARSABLE
    return str(depth) if depth < DEPTH_CAP else f"≥{DEPTH_CAP}"


def structure_kinds(gt_tokens: Sequence[str]) -> list[str]:
    """The structure kinds present in the gt tokens (see :data:`STRUCTURE_KINDS`), or ``["none of these"]``."""
    toks = set(gt_tokens)
    big = _big_operators()
    kinds = [k for k, marks in STRUCTURE_KINDS.items() if toks & (big if marks is None else marks)]
    return kinds or [NO_STRUCTURE]


def max_repetition(gt: str) -> int:
    """Largest per-symbol count of the symbol-counting target of ``gt`` (every token except ``{`` ``}``); 0 if none."""
    from .latex.counting import symbol_counts

    return max(symbol_counts(gt).values(), default=0)


def repetition_label(m: int) -> str:
    """``"1"``, ``"2–4"``, ``"≥5"`` (``"0"`` for a gt without countable symbols)."""
    for label, lo, hi in REPETITION_BUCKETS:
        if m >= lo and (hi is None or m <= hi):
            return label
    return "0"


def _is_letter(t: str) -> bool:
    return len(t) == 1 and t.isascii() and t.isalpha()


def _is_digit(t: str) -> bool:
    return len(t) == 1 and t.isascii() and t.isdigit()


def letter_digit_pair(gt_tok: str, pred_tok: str) -> tuple[str, str] | None:
    """``(digit, letter)`` when one token is a Latin letter and the other a digit (single characters), else ``None``."""
    if _is_digit(gt_tok) and _is_letter(pred_tok):
        return gt_tok, pred_tok
    if _is_letter(gt_tok) and _is_digit(pred_tok):
        return pred_tok, gt_tok
    return None


# --------------------------------------------------------------------------------------------------- analysis
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


def record_buckets(gt: str, edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> dict[str, list[str]]:
    """The bucket labels of one gt per family: ``{"gt_length": [..], "depth": [..], "structure": [..],
    "repetition": [..]}`` (one label each, several for ``structure``)."""
    toks = gt.split()
    return {
        "gt_length": [length_label(len(toks), edges)],
        "depth": [depth_label(tree_depth(toks))],
        "structure": structure_kinds(toks),
        "repetition": [repetition_label(max_repetition(gt))],
    }


def _family_labels(family: str, present: set[str], edges: Sequence[int]) -> list[str]:
    if family == "gt_length":
        base = length_labels(edges)
    elif family == "depth":
        base = [*(str(d) for d in range(DEPTH_CAP)), f"≥{DEPTH_CAP}"]
    elif family == "structure":
        base = [*STRUCTURE_KINDS, NO_STRUCTURE]
    else:
        base = [label for label, _, _ in REPETITION_BUCKETS]
    extra = sorted(present - set(base))  # "unparsable", repetition "0"
    return base + extra


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
        buckets[fam] = _bucket_rows(_family_labels(fam, set(members), edges), members, distances)
    return buckets, memberships


def confusion_score(subs: Counter, n_records: int, top_k: int = DEFAULT_TOP_K) -> dict:
    """The letter–digit confusion score (module docstring): pairs, per-100-records scores, top-k sum.

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
    from .metrics.calculator import evaluate_with_distances

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


# --------------------------------------------------------------------------------------------------- comparison
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


# --------------------------------------------------------------------------------------------------- report
def _f(x: Any, fmt: str = ".2f") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return format(x, fmt)
    return str(x)


def _signed(x: Any) -> str:
    return "–" if x is None else f"{x:+.2f}"


def _md_tok(t: str) -> str:
    return "`" + t.replace("|", "\\|") + "`"


def _md_text(t: str, limit: int = 80) -> str:
    t = t if len(t) <= limit else t[: limit - 1] + "…"
    return "`" + t.replace("`", "'").replace("|", "\\|") + "`"


def render_report(name: str, analysis: Mapping[str, Any], *, top: int = 20, plots: Sequence[str] = ()) -> str:
    """The Markdown report of one analysis (and its comparison, when present). ``plots`` are PNG file names
    (relative to the report) to embed."""
    m = analysis["metrics"]
    out = [f"# Error analysis: {name}", "",
           f"Input: `{analysis['input']}` — {analysis['records']} records. ExpRate {_f(m['exact_match_rate'])} %, "
           f"≤1 {_f(m['error_le_1_rate'])} %, ≤2 {_f(m['error_le_2_rate'])} % (official calculator).", ""]
    et = analysis["edit_totals"]
    out += [f"Token errors (EDL alignment): {et['substitutions']} substitutions, {et['insertions']} insertions "
            f"(extra pred tokens), {et['deletions']} deletions (missing gt tokens); total = summed token edit "
            f"distance {et['distance']}.", ""]
    comp = analysis.get("comparison")
    if comp:
        mc = comp["mcnemar"]
        cm = comp["metrics"]
        out += ["## Comparison", "",
                f"A = `{analysis['input']}`, B = `{comp['against']}` ({comp['paired_records']} records paired by "
                "img_id). Differences are B − A.", "",
                "| metric | A | B | B − A |", "|---|---:|---:|---:|"]
        for k, label in (("exact_match_rate", "ExpRate"), ("error_le_1_rate", "≤1"), ("error_le_2_rate", "≤2")):
            out.append(f"| {label} | {_f(cm[k]['a'])} | {_f(cm[k]['b'])} | {_signed(cm[k]['diff'])} |")
        out += ["", f"Fixed by B: **{len(comp['fixed'])}**, broken by B: **{len(comp['broken'])}**, both exact "
                f"{mc['both_exact']}, neither {mc['neither_exact']}. McNemar ({mc['test']}): "
                f"p = {mc['p_value']:.4g}.", ""]
    out += ["## Breakdowns", "", "Buckets are computed on the gt; rates in %.", ""]
    for fam in FAMILIES:
        out += [f"### {FAMILY_TITLES[fam]}", ""]
        if comp:
            out += ["| bucket | n | ExpRate A | ExpRate B | Δ | ≤1 A | ≤1 B | ≤2 A | ≤2 B |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in comp["buckets"][fam]:
                out.append(f"| {r['bucket']} | {r['n']} | {_f(r['exprate_a'])} | {_f(r['exprate_b'])} | "
                           f"{_signed(r['exprate_diff'])} | {_f(r['error_le_1_rate_a'])} | "
                           f"{_f(r['error_le_1_rate_b'])} | {_f(r['error_le_2_rate_a'])} | "
                           f"{_f(r['error_le_2_rate_b'])} |")
        else:
            out += ["| bucket | n | exact | ExpRate | ≤1 | ≤2 |", "|---|---:|---:|---:|---:|---:|"]
            for r in analysis["buckets"][fam]:
                out.append(f"| {r['bucket']} | {r['n']} | {r['exact']} | {_f(r['exprate'])} | "
                           f"{_f(r['error_le_1_rate'])} | {_f(r['error_le_2_rate'])} |")
        out.append("")
    cs = analysis["confusion_score"]
    out += ["## Confusions", "", f"Top {top} aligned substitutions (gt → pred):", "",
            "| gt | pred | count |", "|---|---|---:|"]
    out += [f"| {_md_tok(r['gt'])} | {_md_tok(r['pred'])} | {r['count']} |" for r in analysis["confusions"][:top]]
    out += ["", "Most frequent insertions (extra pred tokens): "
            + (", ".join(f"{_md_tok(r['pred'])} {r['count']}" for r in analysis["insertions"][:10]) or "none") + ".",
            "", "Most frequent deletions (missing gt tokens): "
            + (", ".join(f"{_md_tok(r['gt'])} {r['count']}" for r in analysis["deletions"][:10]) or "none") + ".",
            "", f"**Letter–digit confusion score (top {cs['top_k']}): {cs['score']:.2f}** — {cs['definition']}. "
            "Pairs: " + (", ".join(f"{r['pair']} {r['score']:.2f} ({r['count']})" for r in cs["pairs"][: cs["top_k"]])
                         or "none") + ".", ""]
    if comp:
        ccs = comp["confusion_score"]
        out += [f"Confusion score A {ccs['score_a']:.2f} → B {ccs['score_b']:.2f} ({_signed(ccs['diff'])}); pairs: "
                + (", ".join(f"{r['pair']} {_signed(r['diff'])}" for r in ccs["pairs"]) or "none") + ".", "",
                f"Confusions that changed most (top {top} by |B − A|):", "",
                "| gt | pred | A | B | B − A |", "|---|---|---:|---:|---:|"]
        changed = sorted((r for r in comp["confusions"] if r["diff"]),
                         key=lambda r: (-abs(r["diff"]), r["gt"], r["pred"]))[:top]
        out += [f"| {_md_tok(r['gt'])} | {_md_tok(r['pred'])} | {r['count_a']} | {r['count_b']} | {r['diff']:+d} |"
                for r in changed]
        out.append("")
        for title, items in (("Fixed by B", comp["fixed"]), ("Broken by B", comp["broken"])):
            out += [f"### {title} ({len(items)}; first {min(len(items), top)}, all in analysis.json)", ""]
            if items:
                out += ["| img_id | gt | pred A | pred B |", "|---|---|---|---|"]
                out += [f"| {r['img_id']} | {_md_text(r['gt'])} | {_md_text(r['pred_a'])} | {_md_text(r['pred_b'])} |"
                        for r in items[:top]]
            out.append("")
    if plots:
        out += ["## Charts", ""] + [f"![{p}]({p})" for p in plots] + [""]
    out += ["## Definitions", "", DEFINITIONS_MD]
    return "\n".join(out)


DEFINITIONS_MD = """\
- Tokens, distance, exact match, ≤ k: the official calculator's (`str.split()` tokens, token Levenshtein distance d;
  exact = d = 0). Bucket exact counts add up to the calculator's ExpRate numerator.
- Confusions: rapidfuzz `Levenshtein.opcodes(pred, gt)` on the tokens, the EDL builder's alignment; each aligned
  replaced position is one substitution gt → pred; insertions are extra pred tokens (EDL DELETE), deletions missing
  gt tokens (EDL INSERT).
- Letter–digit confusion score: substitutions between a digit and a Latin letter (single-character tokens, both
  directions) per 100 records, summed over the top-k pairs (our reading of the paper's "top-5 confusion score").
- gt length: tokens of the gt. Depth: deepest level of the gt's Tree-CoT tree (0 = flat; unparsable = rejected by the
  official parser). Structure kinds (overlapping): fraction (`\\frac` `\\dfrac` `\\tfrac` `\\cfrac`), root (`\\sqrt`),
  scripts (`^` `_`), matrix (any `\\begin` environment), big operator (`\\sum` `\\lim` `\\int` `\\iint` `\\oint`
  `\\prod` `\\coprod`). Max symbol repetition: largest count in the gt's symbol-counting target (every token but
  `{` `}`).
- Comparison: records paired by img_id (same gt required); fixed = exact only in B, broken = exact only in A;
  McNemar: exact two-sided binomial test when fixed + broken < 25, else chi-square with continuity correction (1 df).
"""


# --------------------------------------------------------------------------------------------------- plots
def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def render_breakdown_png(analysis: Mapping[str, Any], name: str) -> bytes:
    """PNG bytes: one panel per bucket family, ExpRate per bucket (A and B bars with a comparison), n on the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = analysis.get("comparison")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, fam in zip(axes.flat, FAMILIES, strict=True):
        rows = comp["buckets"][fam] if comp else analysis["buckets"][fam]
        labels = [f"{r['bucket'].replace(' ', chr(10))}\n(n={r['n']})" for r in rows]
        xs = list(range(len(rows)))
        if comp:
            ya = [r["exprate_a"] if r["exprate_a"] is not None else math.nan for r in rows]
            yb = [r["exprate_b"] if r["exprate_b"] is not None else math.nan for r in rows]
            ax.bar([x - 0.2 for x in xs], ya, 0.4, label="A")
            ax.bar([x + 0.2 for x in xs], yb, 0.4, label="B")
            ax.legend(fontsize="small")
        else:
            ax.bar(xs, [r["exprate"] if r["exprate"] is not None else math.nan for r in rows], 0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_ylabel("ExpRate (%)")
        ax.set_title(FAMILY_TITLES[fam], fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"ExpRate by bucket: {name}")
    return _png(fig)


def render_confusions_png(analysis: Mapping[str, Any], name: str, top: int = 20) -> bytes:
    """PNG bytes: horizontal bars of the ``top`` most frequent substitutions gt → pred (A and B with a comparison)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = analysis.get("comparison")
    rows = comp["confusions"][:top] if comp else analysis["confusions"][:top]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.32 * len(rows) + 1.2)))
    labels = [f"{r['gt']} → {r['pred']}" for r in rows]
    ys = list(range(len(rows)))[::-1]
    if comp:
        ax.barh([y + 0.2 for y in ys], [r["count_a"] for r in rows], 0.4, label="A")
        ax.barh([y - 0.2 for y in ys], [r["count_b"] for r in rows], 0.4, label="B")
        ax.legend(fontsize="small")
    else:
        ax.barh(ys, [r["count"] for r in rows], 0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel("substitutions")
    ax.set_title(f"Top {len(rows)} confusions (gt → pred): {name}", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def write_plots(analysis: Mapping[str, Any], out_dir: Path, name: str, top: int = 20) -> list[str]:
    """Write ``breakdowns.png`` and ``confusions.png`` into ``out_dir`` (atomically); returns the file names."""
    atomic_write_bytes(out_dir / "breakdowns.png", render_breakdown_png(analysis, name))
    atomic_write_bytes(out_dir / "confusions.png", render_confusions_png(analysis, name, top))
    return ["breakdowns.png", "confusions.png"]


# --------------------------------------------------------------------------------------------------- driver
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
