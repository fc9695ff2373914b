"""Per-record features of the error analysis: a prediction file's records, token errors and bucket labels.

Input: official prediction files (JSON array of ``{"gt", "pred", "image_path", "img_id"}``). Output: per-record
values (aligned substitutions / insertions / deletions, gt length, Tree-CoT depth, structure kinds, symbol
repetition). Definitions: docs/analysis.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...files import read_json

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
#: Bound on Tree-CoT nodes when computing the depth of one gt (a well-formed gt prints one node per token).
_TREE_MAX_NODES = 100_000


def _big_operators() -> frozenset:
    from ...latex.categories import BIG_OPERATOR_CMDS

    return frozenset(BIG_OPERATOR_CMDS)


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
    from ..metrics.calculator import validate_records

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


def token_operations(gt_tokens: Sequence[str], pred_tokens: Sequence[str]) -> tuple[list, list, list]:
    """The aligned errors of one record: ``(substitutions, insertions, deletions)``.

    ``substitutions``: ``(gt_token, pred_token)`` per aligned replaced position; ``insertions``: pred tokens the
    gt does not have (extra); ``deletions``: gt tokens the pred lacks (missing). Alignment:
    :func:`unimumer.edl.alignment_opcodes` (the EDL builder's). The three lengths sum to the token distance.
    """
    from ...edl.marking import alignment_opcodes

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
    from ...latex.tree import TreeParseError, tree_lines

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
    from ...latex.counting import symbol_counts

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


def family_labels(family: str, present: set[str], edges: Sequence[int]) -> list[str]:
    """The bucket labels of a family in report order; labels seen but not in the base list (``unparsable``) last."""
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
