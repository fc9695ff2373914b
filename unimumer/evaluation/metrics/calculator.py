"""The official Uni-MuMER text metrics: ExpRate, Error <= k, Mean Edit Score, BLEU-4 and the official "CER".

Input: records with string ``gt`` / ``pred`` (``str.split()`` tokens, no normalisation). Output: :func:`evaluate`
dicts with the official keys, values ``round(x, 4)``, equal to the released ``*_results.txt`` reports byte for byte.
Token distance: rapidfuzz Levenshtein (``editdistance``-identical); BLEU-4: NLTK ``corpus_bleu`` with method4
smoothing, computed bit-identically without importing NLTK. Definitions: docs/evaluation.md. Source: the official
``scripts/eval_metrics_calculator.py`` of BFlameSwift/Uni-MuMER.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InputError
from ...files import read_json

#: Keys of the official result dictionary, in the official order.
OFFICIAL_KEYS = (
    "total_samples",
    "mean_edit_score",
    "bleu4_score",
    "character_error_rate",
    "exact_match_rate",
    "error_le_1_rate",
    "error_le_2_rate",
    "error_le_3_rate",
    "error_threshold_stats",
)
#: Error thresholds of the official report (0 = exact match).
THRESHOLDS = (0, 1, 2, 3)
#: BLEU-4 n-gram orders and weights (official: ``weights=(0.25, 0.25, 0.25, 0.25)``).
BLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)

_JSON_TYPE = {type(None): "null", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def _json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------------- input
def validate_records(records: Any, *, gt_key: str = "gt", pred_key: str = "pred", source: str = "input") -> list:
    """Check that ``records`` is a non-empty list of objects holding string ``gt_key`` and ``pred_key`` values.

    Args:
        records: the decoded prediction file (official ``*_pred.json``: list of ``{"gt", "pred", ...}``).
        gt_key / pred_key: the keys to read (official defaults ``gt`` / ``pred``); other keys are ignored.
        source: how to name the input in error messages (a file path).

    Returns the list itself. Raises :class:`InputError` (one line, naming the record index) when it is not a list,
    is empty, a record is not an object, lacks a key, or a value is not a string. The official calculator only
    checked the first record; a bad record anywhere is reported here instead of crashing half-way.
    """
    if not isinstance(records, list):
        raise InputError(f"{source}: expected a JSON array of records, got {_json_type(records)}")
    if not records:
        raise InputError(f"{source}: the JSON array is empty (no records to score)")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise InputError(f"{source}: record {i} is not an object (got {_json_type(rec)})")
        for key in (gt_key, pred_key):
            if key not in rec:
                raise InputError(f"{source}: record {i} has no {key!r} key")
            if not isinstance(rec[key], str):
                raise InputError(f"{source}: record {i}: {key!r} must be a string, got {_json_type(rec[key])}")
    return records


def load_predictions(path: str | os.PathLike, *, gt_key: str = "gt", pred_key: str = "pred") -> list:
    """Read and validate a prediction file (JSON array of records with string ``gt_key`` / ``pred_key``).

    Raises :class:`InputError` when the file is missing, not UTF-8 JSON, not a non-empty array, or a record is
    malformed (see :func:`validate_records`).
    """
    data = read_json(path)
    return validate_records(data, gt_key=gt_key, pred_key=pred_key, source=str(path))


# --------------------------------------------------------------------------------------------------- pieces
def tokenize(text: str) -> list[str]:
    """The official tokenization: ``text.split()`` (whitespace; no LaTeX normalization)."""
    return text.split()


def token_distance(gt_tokens: Sequence[str], pred_tokens: Sequence[str]) -> int:
    """Levenshtein distance between two token lists (insert / delete / substitute cost 1).

    Equal to ``editdistance.eval(gt_tokens, pred_tokens)`` (the official library); computed with rapidfuzz,
    which is faster. Equal lists return 0 without calling the library.
    """
    if gt_tokens == pred_tokens:
        return 0
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(gt_tokens, pred_tokens)


def edit_score(distance: int, gt_len: int, pred_len: int) -> float:
    """Official per-record edit score in percent: ``(1 - d / max(len_gt, len_pred)) * 100``.

    Both token lists empty → 100.0; exactly one empty → 0.0 (official ``_compute_edit_score``).
    """
    if not gt_len and not pred_len:
        return 100.0
    if not gt_len or not pred_len:
        return 0.0
    return (1 - distance / max(gt_len, pred_len)) * 100


def _ngram_counts(gt: list[str], pred: list[str], same: bool, out_num: list[int], out_den: list[int]) -> None:
    """Add one sentence's clipped n-gram matches / hypothesis n-gram totals to the corpus sums (NLTK rules).

    NLTK ``modified_precision`` per sentence: numerator = sum over hypothesis n-grams of
    ``min(count_hyp, count_ref)``, denominator = ``max(1, number of hypothesis n-grams)``.
    """
    hl = len(pred)
    if same:  # identical token lists: every hypothesis n-gram is matched
        for i, n in enumerate((1, 2, 3, 4)):
            k = hl - n + 1
            if k > 0:
                out_num[i] += k
                out_den[i] += k
            else:
                out_den[i] += 1
        return
    gl = len(gt)
    for i, n in enumerate((1, 2, 3, 4)):
        k = hl - n + 1
        if k <= 0:
            out_den[i] += 1
            continue
        out_den[i] += k
        if gl - n + 1 <= 0:
            continue
        if n == 1:
            hyp = Counter(pred)
            ref = Counter(gt)
        else:
            hyp = Counter(zip(*(pred[j:] for j in range(n)), strict=False))
            ref = Counter(zip(*(gt[j:] for j in range(n)), strict=False))
        out_num[i] += sum(min(c, ref[g]) for g, c in hyp.items() if g in ref)


def _brevity_penalty(closest_ref_len: int, hyp_len: int) -> float:
    """NLTK ``brevity_penalty``: 1 if the hypothesis is longer, 0 if empty, else ``exp(1 - r / c)``."""
    if hyp_len > closest_ref_len:
        return 1
    if hyp_len == 0:
        return 0
    return math.exp(1 - closest_ref_len / hyp_len)


def _bleu_from_counts(p_num: list[int], p_den: list[int], hyp_len: int, ref_len: int) -> float:
    """Combine corpus n-gram sums exactly as NLTK ``corpus_bleu`` with ``SmoothingFunction().method4`` does.

    Same float operations in the same order as NLTK (3.8-3.9): ``float(Fraction(n, d))`` is the correctly rounded
    ``n / d``; method4 replaces a zero precision by ``1 / (2**incvnt * k / ln(hyp_len)) / d`` with ``k = 5``
    (Chen & Cherry 2014); BLEU = ``BP * exp(fsum(w_n * ln p_n for p_n > 0))``. The tests check bit-identity
    against the installed NLTK on every reference file and on random corpora. Returns ``0`` (int, like NLTK)
    when no unigram matches.
    """
    bp = _brevity_penalty(ref_len, hyp_len)
    if p_num[0] == 0:
        return 0
    k = 5  # SmoothingFunction(k=5) default
    p_n: list[float] = []
    incvnt = 1
    for num, den in zip(p_num, p_den, strict=True):
        if num == 0 and hyp_len > 1:
            numerator = 1 / (2**incvnt * k / math.log(hyp_len))
            p_n.append(numerator / den)
            incvnt += 1
        else:
            p_n.append(num / den)
    s = (w_i * math.log(p_i) for w_i, p_i in zip(BLEU_WEIGHTS, p_n, strict=True) if p_i > 0)
    return bp * math.exp(math.fsum(s))


def corpus_bleu4(gt_tokens: Sequence[Sequence[str]], pred_tokens: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (fraction, not percent), bit-identical to the official call
    ``nltk.translate.bleu_score.corpus_bleu([[g] for g in gt_tokens], pred_tokens, weights=(0.25,)*4,
    smoothing_function=SmoothingFunction().method4)``.

    Raises ``ValueError`` if the two sequences differ in length.
    """
    if len(gt_tokens) != len(pred_tokens):
        raise ValueError("gt_tokens and pred_tokens must have the same length")
    p_num, p_den = [0, 0, 0, 0], [0, 0, 0, 0]
    hyp_len = ref_len = 0
    for g, p in zip(gt_tokens, pred_tokens, strict=True):
        g, p = list(g), list(p)
        _ngram_counts(g, p, g == p, p_num, p_den)
        hyp_len += len(p)
        ref_len += len(g)
    return _bleu_from_counts(p_num, p_den, hyp_len, ref_len)


# --------------------------------------------------------------------------------------------------- evaluate
def duplicate_ids(records: Sequence[Mapping[str, Any]], key: str = "img_id") -> tuple[int, list[str]]:
    """``(extra records, ids in first-repeat order)`` of the ``key`` values seen more than once (absent keys
    ignored). The official calculator scores every record, duplicates included; this only reports them."""
    seen: set = set()
    repeated: dict = {}
    extra = 0
    for rec in records:
        v = rec.get(key) if isinstance(rec, Mapping) else None
        if v is None or not isinstance(v, (str, int)):
            continue
        if v in seen:
            extra += 1
            repeated.setdefault(v, None)
        seen.add(v)
    return extra, [str(v) for v in repeated]


def evaluate_with_distances(
    records: Sequence[Mapping[str, Any]], *, gt_key: str = "gt", pred_key: str = "pred", progress: str | None = None
) -> tuple[dict, list[int]]:
    """Like :func:`evaluate`, also returning the per-record token edit distances (same order as ``records``).

    ``progress``: a label for a tqdm bar on stderr (shown on a terminal for files of 20,000 records or more).
    """
    if not isinstance(records, list) and not isinstance(records, (str, bytes, Mapping)):
        records = list(records)
    validate_records(records, gt_key=gt_key, pred_key=pred_key)
    from rapidfuzz.distance import Levenshtein

    lev = Levenshtein.distance
    total = len(records)
    distances: list[int] = []
    scores: list[float] = []
    p_num, p_den = [0, 0, 0, 0], [0, 0, 0, 0]
    hyp_len = ref_len = gt_chars = 0
    if progress is not None and total >= 20000:
        from tqdm import tqdm

        it = tqdm(records, desc=progress, unit="rec", disable=None, leave=False)
    else:
        it = records
    for rec in it:
        gt_s, pred_s = rec[gt_key], rec[pred_key]
        g, p = gt_s.split(), pred_s.split()
        same = g == p
        d = 0 if same else lev(g, p)
        distances.append(d)
        scores.append(edit_score(d, len(g), len(p)))
        _ngram_counts(g, p, same, p_num, p_den)
        hyp_len += len(p)
        ref_len += len(g)
        gt_chars += len(gt_s)

    # Same expressions, same order of float operations as the official calculator.
    mean_edit_score = sum(scores) / total
    bleu4 = _bleu_from_counts(p_num, p_den, hyp_len, ref_len) * 100
    cer = sum(distances) / gt_chars if gt_chars > 0 else 0.0
    counts = {k: 0 for k in THRESHOLDS}
    for d in distances:
        for k in THRESHOLDS:
            if d <= k:
                counts[k] += 1
    rates = {k: (c / total) * 100 for k, c in counts.items()}
    result = {
        "total_samples": total,
        "mean_edit_score": round(mean_edit_score, 4),
        "bleu4_score": round(bleu4, 4),
        "character_error_rate": round(cer, 4),
        "exact_match_rate": round(rates[0], 4),
        "error_le_1_rate": round(rates[1], 4),
        "error_le_2_rate": round(rates[2], 4),
        "error_le_3_rate": round(rates[3], 4),
        "error_threshold_stats": {
            f"errors_le_{k}": {"count": counts[k], "percentage": round(rates[k], 4)} for k in THRESHOLDS
        },
    }
    return result, distances


def evaluate(records: Sequence[Mapping[str, Any]], *, gt_key: str = "gt", pred_key: str = "pred") -> dict:
    """Score prediction records with the official Uni-MuMER metrics.

    Args:
        records: list of mappings holding string ``gt_key`` (ground-truth LaTeX) and ``pred_key`` (prediction);
            other keys are ignored (the official ``*_pred.json`` layout).
        gt_key / pred_key: the keys to read (default ``gt`` / ``pred``).

    Returns the official result dictionary (keys :data:`OFFICIAL_KEYS`, in that order): ``total_samples``,
    ``mean_edit_score``, ``bleu4_score``, ``character_error_rate``, ``exact_match_rate`` (ExpRate),
    ``error_le_{1,2,3}_rate`` (all percentages except the CER, rounded to 4 decimals) and
    ``error_threshold_stats`` = ``{"errors_le_k": {"count", "percentage"}}`` for k = 0..3.

    Raises :class:`InputError` for an empty list or a malformed record (index named). Follows the official
    ``TextEvaluator.evaluate`` (see the module docstring) and never imports torch.
    """
    return evaluate_with_distances(records, gt_key=gt_key, pred_key=pred_key)[0]


def evaluate_file(path: str | os.PathLike, *, gt_key: str = "gt", pred_key: str = "pred") -> dict:
    """Load ``path`` with :func:`load_predictions` and return :func:`evaluate` of its records."""
    return evaluate(load_predictions(path, gt_key=gt_key, pred_key=pred_key), gt_key=gt_key, pred_key=pred_key)
