"""Error-driven learning (EDL): ``error_find`` / ``error_fix`` training data from (gt, wrong prediction) pairs.

The official Uni-MuMER release has no code for the two error tasks (paper Sec. 3.3, "Error-Driven Learning");
this module implements the format fixed in docs/edl.md (paper Sec. 3.3):

1. the ground truth ``gt`` and the candidate ``pred`` are space-tokenized (``str.split``, the LaTeX of every
   Uni-MuMER file is already space-tokenized) and aligned with a minimal Levenshtein alignment, rapidfuzz's
   ``Levenshtein.opcodes(pred_tokens, gt_tokens)`` (its tie-breaking is the reference);
2. each maximal run of non-``equal`` opcodes becomes one :class:`Edit` -- ``replace`` (pred tokens → gt tokens),
   ``delete`` (extra pred tokens) or ``insert`` (missing gt tokens);
3. the **marked expression** (the ``error_find`` target) is the pred tokens with every replace / delete span
   wrapped in ``<error_start> … <error_end>`` and a ``<deleted>`` token at every insertion point;
4. the **correction target** (``error_fix``) is one log line per edit, left to right (``REPLACE: old -> new``,
   ``DELETE: old``, ``INSERT: new``), then the gt on the last line.

:func:`apply_corrections` is the inverse: it applies a correction log to a marked expression and returns the
corrected LaTeX (the invariant ``apply_corrections(marked, log) == gt`` is tested on every wrong official
prediction; it also scores a model's own ``error_fix`` outputs). :func:`make_edl_records` turns prediction files
(``gt``, ``pred``, ``image_path``) into the two ShareGPT datasets, and :func:`main` is the CLI
``preprocess/make_error_data.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..files import (
    read_json_list,
    register_datasets,
    relative_file_name,
    sharegpt_record,
    write_json,
)
from ..tasks import TASKS, check_dataset_base_name, dataset_name

ERROR_START = "<error_start>"
ERROR_END = "<error_end>"
DELETED = "<deleted>"
#: Tokens with a meaning in a marked expression; a gt / pred containing one cannot be marked unambiguously.
MARKERS = (ERROR_START, ERROR_END, DELETED)
REPLACE, DELETE, INSERT = "REPLACE", "DELETE", "INSERT"
_ARROW = "->"


# --------------------------------------------------------------------------------------------------- edits
@dataclass(frozen=True)
class Edit:
    """One merged edit of the alignment pred → gt.

    Attributes:
        kind: ``"replace"`` (``old`` and ``new`` non-empty), ``"delete"`` (only ``old``) or ``"insert"`` (only ``new``).
        pred_start, pred_end: the span ``pred_tokens[pred_start:pred_end]`` (== ``old``; empty for an insert).
        gt_start, gt_end: the span ``gt_tokens[gt_start:gt_end]`` (== ``new``; empty for a delete).
        old: the pred tokens the edit removes.
        new: the gt tokens the edit puts in their place.
    """

    kind: str
    pred_start: int
    pred_end: int
    gt_start: int
    gt_end: int
    old: tuple[str, ...] = field(default=())
    new: tuple[str, ...] = field(default=())

    def log_line(self) -> str:
        """The correction-log line: ``REPLACE: old -> new`` / ``DELETE: old`` / ``INSERT: new`` (tokens joined by spaces)."""
        if self.kind == "replace":
            return f"{REPLACE}: {' '.join(self.old)} {_ARROW} {' '.join(self.new)}"
        if self.kind == "delete":
            return f"{DELETE}: {' '.join(self.old)}"
        return f"{INSERT}: {' '.join(self.new)}"


def tokenize(latex: str) -> list[str]:
    """The token list of a space-tokenized LaTeX string (``latex.split()``: one token per symbol)."""
    return latex.split()


def _check_markers(tokens: Sequence[str], what: str) -> None:
    bad = sorted({t for t in tokens if t in MARKERS})
    if bad:
        raise InputError(f"{what} contains the EDL marker token(s) {' '.join(bad)}; it cannot be marked unambiguously")


def alignment_opcodes(gt_tokens: Sequence[str], pred_tokens: Sequence[str]) -> list:
    """The token alignment every EDL edit (and the error analysis, :mod:`unimumer.evaluation.analysis`) is built from.

    Returns ``rapidfuzz.distance.Levenshtein.opcodes(pred_tokens, gt_tokens)`` as a list of opcodes (``tag`` in
    ``equal`` / ``replace`` / ``delete`` / ``insert``; ``src_*`` index the pred tokens, ``dest_*`` the gt tokens).
    A minimal alignment: the non-``equal`` opcodes cost exactly the token Levenshtein distance.
    """
    from rapidfuzz.distance import Levenshtein

    return list(Levenshtein.opcodes(list(pred_tokens), list(gt_tokens)))


def align_edits(gt_tokens: Sequence[str], pred_tokens: Sequence[str]) -> list[Edit]:
    """The merged edits that turn ``pred_tokens`` into ``gt_tokens``, left to right.

    Input: two token lists (any hashable tokens; normally ``str.split()`` of space-tokenized LaTeX).
    Output: a list of :class:`Edit` (empty when the lists are equal). Adjacent edits never touch: each maximal run
    of non-``equal`` opcodes of ``rapidfuzz.distance.Levenshtein.opcodes(pred_tokens, gt_tokens)`` is merged into
    one edit, so an edit is always preceded and followed by an ``equal`` block or an end of the sequence.
    Source: docs/edl.md (rapidfuzz's alignment and tie-breaking are the
    reference). Raises nothing on well-typed input.
    """
    pred = list(pred_tokens)
    gt = list(gt_tokens)
    edits: list[Edit] = []
    run: list | None = None  # [pred_start, pred_end, gt_start, gt_end] of the current non-equal run

    def close() -> None:
        ps, pe, gs, ge = run
        old, new = tuple(pred[ps:pe]), tuple(gt[gs:ge])
        kind = "replace" if old and new else ("delete" if old else "insert")
        edits.append(Edit(kind, ps, pe, gs, ge, old, new))

    for op in alignment_opcodes(gt, pred):
        if op.tag == "equal":
            if run is not None:
                close()
                run = None
            continue
        if run is None:
            run = [op.src_start, op.src_end, op.dest_start, op.dest_end]
        else:  # opcodes are contiguous: extend the run
            run[1], run[3] = op.src_end, op.dest_end
    if run is not None:
        close()
    return edits


def mark(pred_tokens: Sequence[str], edits: Sequence[Edit]) -> str:
    """The marked expression: ``pred_tokens`` with each edit replaced by its markup, joined by single spaces.

    replace / delete → ``<error_start> old <error_end>``; insert → ``<deleted>`` at its position (docs/edl.md).
    Inputs: the pred tokens and the edits of :func:`align_edits` for them (sorted, non-overlapping).
    Output: the ``error_find`` target string. Raises :class:`InputError` when an edit does not fit the tokens.
    """
    out: list[str] = []
    pos = 0
    for e in edits:
        if e.pred_start < pos or e.pred_end > len(pred_tokens) or tuple(pred_tokens[e.pred_start:e.pred_end]) != e.old:
            raise InputError(f"edit {e.log_line()!r} does not match the prediction tokens at {e.pred_start}")
        out.extend(pred_tokens[pos:e.pred_start])
        if e.kind == "insert":
            out.append(DELETED)
        else:
            out.extend((ERROR_START, *e.old, ERROR_END))
        pos = e.pred_end
    out.extend(pred_tokens[pos:])
    return " ".join(out)


def correction_log(edits: Iterable[Edit]) -> list[str]:
    """The correction-log lines of ``edits``, in order (see :meth:`Edit.log_line`)."""
    return [e.log_line() for e in edits]


def _prepare(gt: str, pred: str) -> tuple[list[str], list[str], list[Edit]] | None:
    if not isinstance(gt, str) or not isinstance(pred, str):
        raise InputError("gt and pred must be strings")
    gt_tokens, pred_tokens = tokenize(gt), tokenize(pred)
    if not gt_tokens:
        raise InputError("the ground truth is empty")
    if gt_tokens == pred_tokens:
        return None
    _check_markers(gt_tokens, "the ground truth")
    _check_markers(pred_tokens, "the prediction")
    return gt_tokens, pred_tokens, align_edits(gt_tokens, pred_tokens)


def build_error_find(gt: str, pred: str) -> tuple[str, str] | None:
    """The ``error_find`` (error detection) example of a wrong prediction.

    Inputs: the ground-truth LaTeX and the candidate LaTeX (space-tokenized strings).
    Output: ``(prompt, target)`` with ``prompt = TASKS["error_find"].prompt(candidate=<pred tokens joined by single
    spaces>)`` (no ``<image>``) and ``target`` the marked expression; ``None`` when the token lists are equal.
    Raises :class:`InputError` when the gt is empty or a side contains an EDL marker token.
    Source: the official prompts (:mod:`unimumer.tasks`) and docs/edl.md.
    """
    prep = _prepare(gt, pred)
    if prep is None:
        return None
    _, pred_tokens, edits = prep
    return TASKS["error_find"].prompt(candidate=" ".join(pred_tokens)), mark(pred_tokens, edits)


def build_error_fix(gt: str, pred: str) -> tuple[str, str] | None:
    """The ``error_fix`` (error correction) example of a wrong prediction.

    Inputs: the ground-truth LaTeX and the candidate LaTeX (space-tokenized strings).
    Output: ``(prompt, target)`` with ``prompt = TASKS["error_fix"].prompt(marked=<marked expression>)`` and
    ``target`` = the correction-log lines, then the gt (tokens joined by single spaces) on the last line;
    ``None`` when the token lists are equal. Raises :class:`InputError` like :func:`build_error_find`.
    Source: docs/edl.md.
    """
    prep = _prepare(gt, pred)
    if prep is None:
        return None
    gt_tokens, pred_tokens, edits = prep
    marked = mark(pred_tokens, edits)
    return TASKS["error_fix"].prompt(marked=marked), "\n".join([*correction_log(edits), " ".join(gt_tokens)])


# --------------------------------------------------------------------------------------------------- inverse
def _parse_marked(marked: str) -> list:
    """Split a marked expression into plain tokens (``str``) and markup spans (``("span", old)`` / ``("ins",)``)."""
    items: list = []
    toks = tokenize(marked)
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == DELETED:
            items.append(("ins",))
            i += 1
        elif t == ERROR_START:
            try:
                j = toks.index(ERROR_END, i + 1)
            except ValueError:
                raise InputError(f"marked expression: {ERROR_START} at token {i} has no {ERROR_END}") from None
            old = toks[i + 1:j]
            if not old or any(x in MARKERS for x in old):
                raise InputError(f"marked expression: the span at token {i} is empty or holds another marker")
            items.append(("span", tuple(old)))
            i = j + 1
        elif t == ERROR_END:
            raise InputError(f"marked expression: {ERROR_END} at token {i} without {ERROR_START}")
        else:
            items.append(t)
            i += 1
    return items


def split_fix_output(output: str) -> tuple[list[str], str]:
    """Split an ``error_fix`` target / model output into ``(log_lines, latex)``.

    ``log_lines`` are the non-empty lines that start with ``REPLACE:``, ``DELETE:`` or ``INSERT:``; ``latex`` is the
    last non-empty line that is not a log line (the task's ``last_line`` answer), ``""`` if none.
    """
    log: list[str] = []
    latex = ""
    for ln in output.splitlines():
        ln = ln.strip()
        if not ln:
            continue
        if ":" in ln and ln.split(":", 1)[0] in (REPLACE, DELETE, INSERT):
            log.append(ln)
        else:
            latex = ln
    return log, latex


def apply_corrections(marked: str, log: str | Sequence[str]) -> str:
    """Apply a correction log to a marked expression and return the corrected LaTeX (the inverse of EDL building).

    Inputs: ``marked`` -- a marked expression (``<error_start> … <error_end>`` spans and ``<deleted>`` points);
    ``log`` -- the log lines, as a sequence or one string with one line per operation (blank lines ignored; a
    full ``error_fix`` target may be passed: its last line, the LaTeX, is ignored when it is not an operation).
    The i-th markup item takes the i-th operation: a span takes ``REPLACE: old -> new`` (its ``old`` must equal
    the span's tokens) or ``DELETE: old``; a ``<deleted>`` point takes ``INSERT: new``. Whitespace between
    tokens is not significant.
    Output: the corrected token sequence joined by single spaces.
    Raises :class:`InputError` (one line) when the marked expression is malformed, the numbers of markup items and
    operations differ, or an operation does not fit its item. Source: docs/edl.md invariant.
    """
    if isinstance(log, str):
        ops, _ = split_fix_output(log)
    else:
        ops = [ln.strip() for ln in log if ln.strip()]
    items = _parse_marked(marked)
    marks = [it for it in items if isinstance(it, tuple)]
    if len(marks) != len(ops):
        raise InputError(f"the marked expression has {len(marks)} marked place(s) but the log has {len(ops)} operation(s)")
    out: list[str] = []
    k = 0
    for it in items:
        if isinstance(it, str):
            out.append(it)
            continue
        line = ops[k]
        k += 1
        head, _, body = line.partition(":")
        head = head.strip()
        body_tokens = body.split()
        if it[0] == "ins":
            if head != INSERT or not body_tokens:
                raise InputError(f"log line {k} {line!r}: expected 'INSERT: <tokens>' for a {DELETED} mark")
            out.extend(body_tokens)
            continue
        old = list(it[1])
        if head == DELETE:
            if body_tokens != old:
                raise InputError(f"log line {k} {line!r}: DELETE does not name the marked tokens {' '.join(old)!r}")
        elif head == REPLACE:
            n = len(old)
            if body_tokens[:n] != old or len(body_tokens) < n + 2 or body_tokens[n] != _ARROW:
                raise InputError(f"log line {k} {line!r}: expected 'REPLACE: {' '.join(old)} -> <tokens>'")
            out.extend(body_tokens[n + 1:])
        else:
            raise InputError(f"log line {k} {line!r}: expected REPLACE or DELETE for a marked span")
    return " ".join(out)


# --------------------------------------------------------------------------------------------------- datasets
@dataclass
class EdlStats:
    """Counts of one EDL build: records read, wrong predictions, records written per task, duplicates, skipped."""

    records_in: int = 0
    correct: int = 0
    wrong: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    written: int = 0
    edits: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for the CLI."""
        kinds = ", ".join(f"{k} {self.edits[k]}" for k in ("replace", "delete", "insert"))
        return (f"records in {self.records_in}, correct {self.correct}, wrong {self.wrong}, "
                f"duplicates {self.duplicates}, skipped {self.skipped}, written {self.written} per task "
                f"(edits: {kinds}); failed predictions (records with an error) {self.failed}")


def _field(rec, key: str, where: str) -> str:
    try:
        value = rec[key]
    except (KeyError, TypeError):
        raise InputError(f"{where}: missing key {key!r} (prediction records need gt, pred, image_path)") from None
    if not isinstance(value, str):
        raise InputError(f"{where}: {key!r} must be a string")
    return value


def make_edl_records(
    records: Iterable[tuple[str, dict]], stats: EdlStats | None = None
) -> tuple[list[dict], list[dict], EdlStats]:
    """Build the ``error_find`` and ``error_fix`` ShareGPT records of prediction records.

    Input: ``(where, record)`` pairs, ``where`` naming the record in messages (e.g. ``"x_pred.json record 3"``),
    each record a prediction-file object with string ``gt``, ``pred`` and ``image_path`` (official ``*_pred.json``,
    prediction files). Records whose token lists are equal are counted as correct and yield nothing; a repeated
    (``image_path``, pred tokens) pair is written once (counted in ``duplicates``); a wrong record whose gt is empty
    or whose gt / pred contains an EDL marker token is skipped (counted). A record with a non-empty ``error`` key
    (inference could not predict: unreadable image, engine error; its ``pred`` is not a model output) never becomes
    an EDL example (counted in ``failed``). The image path is kept as written.
    Output: ``(error_find_records, error_fix_records, stats)``, the two lists aligned (same order).
    Raises :class:`InputError` naming the record when a key is missing or not a string.
    """
    stats = stats or EdlStats()
    seen: set = set()
    find_out: list[dict] = []
    fix_out: list[dict] = []
    for where, rec in records:
        stats.records_in += 1
        if isinstance(rec, dict) and rec.get("error"):
            stats.failed += 1  # EDL learns from real predictions only
            continue
        gt, pred, image = (_field(rec, k, where) for k in ("gt", "pred", "image_path"))
        gt_tokens, pred_tokens = tokenize(gt), tokenize(pred)
        if gt_tokens == pred_tokens:
            stats.correct += 1
            continue
        stats.wrong += 1
        key = (image, tuple(pred_tokens))
        if key in seen:
            stats.duplicates += 1
            continue
        seen.add(key)
        try:
            prep = _prepare(gt, pred)
        except InputError:
            stats.skipped += 1
            continue
        _, _, edits = prep
        marked = mark(pred_tokens, edits)
        stats.edits.update(e.kind for e in edits)
        find_out.append(sharegpt_record(image, TASKS["error_find"].prompt(candidate=" ".join(pred_tokens)), marked))
        fix_target = "\n".join([*correction_log(edits), " ".join(gt_tokens)])
        fix_out.append(sharegpt_record(image, TASKS["error_fix"].prompt(marked=marked), fix_target))
        stats.written += 1
    return find_out, fix_out, stats


def iter_prediction_files(paths: Sequence[str | Path], *, allow_empty: bool = True) -> Iterable[tuple[str, dict]]:
    """Yield ``(where, record)`` for every record of the given prediction files (JSON arrays, ``*_pred.json``).

    Raises :class:`InputError` when a file is missing, not JSON, not an array (or, unless ``allow_empty``, an
    empty one), or a record is not an object.
    """
    for path in paths:
        data = read_json_list(path, allow_empty=allow_empty)
        for i, rec in enumerate(data):
            where = f"{path} record {i}"
            if not isinstance(rec, dict):
                raise InputError(f"{where}: expected a JSON object")
            yield where, rec


def write_edl_datasets(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    name: str,
    dataset_info: str | Path | None,
    *,
    allow_empty: bool = True,
) -> tuple[dict[str, Path], EdlStats]:
    """Read prediction files, write ``<name>_error_find.json`` / ``<name>_error_fix.json`` and register them.

    Inputs: prediction files (``gt``, ``pred``, ``image_path``), the output folder, the base dataset name and the
    ``dataset_info.json`` to update (``None``: do not register). The file and dataset names are
    :func:`unimumer.tasks.dataset_name` of ``name`` (``crohme_train`` → ``crohme_train_error_find``; the official
    exceptions such as ``hme100k_train`` → ``hme100k_error_find`` are kept). Files are ShareGPT arrays written
    atomically (``indent=4``); ``file_name`` is relative to the ``dataset_info.json`` folder when inside it.
    Output: ``({task: path}, stats)``. Raises :class:`InputError` on bad input (nothing is written then), also
    for an empty prediction file unless ``allow_empty`` (the error corpus may collect no wrong sample).
    """
    check_dataset_base_name(name)
    find_recs, fix_recs, stats = make_edl_records(iter_prediction_files(inputs, allow_empty=allow_empty))
    out_dir = Path(output_dir)
    paths: dict[str, Path] = {}
    for task, recs in (("error_find", find_recs), ("error_fix", fix_recs)):
        paths[task] = write_json(out_dir / f"{dataset_name(name, task)}.json", recs, indent=4)
    if dataset_info is not None:
        info = Path(dataset_info)
        register_datasets(info, {dataset_name(name, t): relative_file_name(p, info.parent) for t, p in paths.items()})
    return paths, stats
