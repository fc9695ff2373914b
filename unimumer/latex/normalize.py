"""LaTeX normalization: the record filters and rewrites R1-R10 behind the official ``*_normalized`` test sets.

Input: space-tokenized LaTeX (:func:`unimumer.latex.tokenize.tokenize_latex` first for raw LaTeX). Output:
normalised tokens, or :class:`LatexDropped` naming one of :data:`DROP_REASONS`. Iterative, linear in the tokens
(apart from R7's environment search). The rules were inferred by diffing raw and normalized ground truth (the
official cleaner is not public) and reproduce the CROHME 2023 pair (1,652 kept records identical); each rule with
its evidence: docs/data-building.md ("Normalization rules").
"""

from __future__ import annotations

from collections.abc import Sequence

from .categories import (
    BIG_OPERATOR_CMDS,
    DELETE_CHARS,
    NORM_BIG_OPERATORS,
    NORM_MATRIX_DELIMS,
    NORM_ONE_ARG_CMDS,
    NORM_OPERATOR_NAMES,
    NORM_TOKEN_MAP,
    NORM_TWO_ARG_CMDS,
    NORM_UNWRAP_CMDS,
)

__all__ = ["DROP_REASONS", "LatexDropped", "drop_reason", "normalize_latex", "normalize_tokens", "try_normalize"]

DROP_REASONS = ("delete_chars", "cjk", "unbalanced_braces", "unbalanced_brackets", "missing_argument")

_DELETE = frozenset(DELETE_CHARS)
_PAIRS = {")": "(", "]": "[", "}": "{"}
_SCRIPTS = ("^", "_")
_NOT_AN_ARGUMENT = frozenset({"^", "_", "&", "\\\\"})
_SQRT_LIKE = frozenset({"\\sqrt"})
_COLUMN_SPEC_ENVS = frozenset({"{array}", "{tabular}"})
_BIG_ALL = frozenset(BIG_OPERATOR_CMDS)


class LatexDropped(ValueError):
    """The expression fails a record filter; ``reason`` is one of :data:`DROP_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class _Group(list):
    """A ``{ … }`` group: its children (tokens and nested groups)."""

    __slots__ = ()


def _is_cjk(tok: str) -> bool:
    for ch in tok:
        o = ord(ch)
        if (
            0x4E00 <= o <= 0x9FFF
            or 0x3400 <= o <= 0x4DBF
            or 0x20000 <= o <= 0x2FA1F
            or 0xF900 <= o <= 0xFAFF
            or 0x3000 <= o <= 0x303F
            or 0xFF00 <= o <= 0xFFEF
            or 0x3040 <= o <= 0x30FF
            or 0xAC00 <= o <= 0xD7AF
        ):
            return True
    return False


def drop_reason(tokens: Sequence[str], *, token_filters: bool = True) -> str | None:
    """The first record filter ``tokens`` fails (one of :data:`DROP_REASONS` except ``missing_argument``), or None.

    ``missing_argument`` needs the brace tree and is checked by :func:`normalize_tokens`. ``token_filters=False``
    skips the token-list filters (``delete_chars``, ``cjk``) and checks only the structure.
    """
    if token_filters and any(t in _DELETE for t in tokens):
        return "delete_chars"
    if token_filters and any(_is_cjk(t) for t in tokens):
        return "cjk"
    depth = 0
    for t in tokens:
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth < 0:
                return "unbalanced_braces"
    if depth:
        return "unbalanced_braces"
    stack: list[str] = []
    for t in tokens:
        if t in ("(", "[", "{"):
            stack.append(t)
        elif t in _PAIRS:
            if not stack or stack[-1] != _PAIRS[t]:
                return "unbalanced_brackets"
            stack.pop()
    if stack:
        return "unbalanced_brackets"
    return None


def _flat_rewrites(tokens: Sequence[str]) -> list[str]:
    """R1, R2 and R9 on the token list."""
    out: list[str] = []
    skip_dot = False
    n = len(tokens)
    skip = 0
    for k, t in enumerate(tokens):
        if skip:
            skip -= 1
            continue
        if t == "[" and out and out[-1] in _SQRT_LIKE and k + 1 < n and tokens[k + 1] == "]":
            skip = 1  # R9: \sqrt [ ] x → \sqrt x (empty index dropped)
            continue
        if t.startswith(("\\begin{", "\\end{")) and t.endswith("}"):
            # R7: a one-token environment (``\begin{matrix}``) as the two tokens of the tokenizer's spacing
            cmd, name = t.split("{", 1)
            if cmd in ("\\begin", "\\end") and name[:-1].isalpha():
                out.extend((cmd, "{" + name))
                continue
        if skip_dot:
            skip_dot = False
            if t == ".":
                continue
        if t in ("\\left", "\\right"):
            skip_dot = True
            continue
        out.append(NORM_TOKEN_MAP.get(t, t))
    return out


def _parse(tokens: Sequence[str]) -> tuple[_Group, list[_Group]]:
    """Brace tree of balanced tokens: (root, groups in opening order). Iterative."""
    root = _Group()
    groups = [root]
    stack = [root]
    for t in tokens:
        if t == "{":
            g = _Group()
            stack[-1].append(g)
            stack.append(g)
            groups.append(g)
        elif t == "}":
            stack.pop()
        else:
            stack[-1].append(t)
    return root, groups


def _serialize(root: _Group) -> list[str]:
    out: list[str] = []
    stack: list[object] = [iter(root)]
    while stack:
        item = next(stack[-1], _Group)  # the _Group class marks exhaustion
        if item is _Group:
            stack.pop()
            if stack:
                out.append("}")
        elif isinstance(item, _Group):
            out.append("{")
            stack.append(iter(item))
        else:
            out.append(item)
    return out


def _is_arg(item: object) -> bool:
    return isinstance(item, _Group) or (isinstance(item, str) and item not in _NOT_AN_ARGUMENT)


def _env_group_name(g: _Group) -> str | None:
    if g and all(isinstance(c, str) and c.isalpha() for c in g):
        return "".join(g)  # type: ignore[arg-type]
    return None


def _rename_pass(seq: list) -> list:
    """R3 (``\\mathrm`` unwrapped), R7 environment names, R8 operator names."""
    s: list = []
    i = 0
    while i < len(seq):
        it = seq[i]
        if isinstance(it, str) and it in NORM_UNWRAP_CMDS:
            if i + 1 < len(seq) and isinstance(seq[i + 1], _Group):
                s.extend(seq[i + 1])
                i += 2
            else:
                i += 1
            continue
        if it in ("\\begin", "\\end") and i + 1 < len(seq) and isinstance(seq[i + 1], _Group):
            name = _env_group_name(seq[i + 1])
            if name is not None:
                s.extend((it, "{" + name + "}"))
                i += 2
                continue
        if isinstance(it, _Group) and all(isinstance(c, str) and len(c) == 1 and c.isalpha() for c in it):
            word = "".join(it)
            if word in NORM_OPERATOR_NAMES:
                s.append(_Group(["\\" + word]))  # the group itself goes (or stays) by R5
                i += 1
                continue
        s.append(it)
        i += 1
    return s


def _argument_pass(s: list, use_only_c: bool) -> tuple[list, set[int]]:
    """R4 + missing-argument check: ``(items, ids of the groups that are structural arguments, kept by R5)``."""
    keep: set[int] = set()  # ids of groups to keep
    out: list = []
    i = 0
    n = len(s)
    while i < n:
        it = s[i]
        out.append(it)
        i += 1
        if not isinstance(it, str):
            continue
        nargs = 2 if it in NORM_TWO_ARG_CMDS else 1 if it in NORM_ONE_ARG_CMDS else 0
        if nargs:
            if it in _SQRT_LIKE and i < n and s[i] == "[":
                depth = 0
                while i < n:
                    out.append(s[i])
                    depth += s[i] == "["
                    depth -= s[i] == "]"
                    i += 1
                    if depth == 0:
                        break
            for _ in range(nargs):
                if i >= n or not _is_arg(s[i]):
                    raise LatexDropped("missing_argument", f"{it} without its argument")
                arg = s[i] if isinstance(s[i], _Group) else _Group([s[i]])
                keep.add(id(arg))
                out.append(arg)
                i += 1
        elif it in _SCRIPTS and i < n and isinstance(s[i], _Group):
            keep.add(id(s[i]))
        elif it in _COLUMN_SPEC_ENVS and out[-2:-1] == ["\\begin"] and i < n and _is_arg(s[i]):
            if not isinstance(s[i], _Group):  # R7: the column spec is braced (``\begin {array} c`` → ``{ c }``)
                s[i] = _Group([s[i]])
            keep.add(id(s[i]))
            if use_only_c:  # official --use-only-c: every column alignment becomes c
                s[i][:] = ["c" if c in ("l", "r") else c for c in s[i]]
        elif it in _BIG_ALL:
            # R5: a group right after a big operator, or after its scripts, is kept.
            j = i
            while j + 1 < n and s[j] in _SCRIPTS:
                j += 2
            if it in NORM_BIG_OPERATORS and j < n and isinstance(s[j], _Group):
                keep.add(id(s[j]))
    return out, keep


def _unwrap_groups(out: list, keep: set[int]) -> list:
    """R5: unwrap every group not in ``keep``."""
    s = []
    for it in out:
        if isinstance(it, _Group) and id(it) not in keep:
            s.extend(it)
        else:
            s.append(it)
    return s


def _swap_scripts(s: list) -> list:
    """R6: ``^ A _ B`` → ``_ B ^ A``, with R10 (prime superscripts merged) before and after it."""
    # ``^ { \prime } ^ { i } _ { j }`` → ``_ { j } ^ { \prime i }``;
    # ``^ { \prime } _ { k } ^ { 2 }`` → ``_ { k } ^ { \prime } ^ { 2 }`` → ``_ { k } ^ { \prime 2 }``.
    s = _merge_prime_superscripts(s)
    i = 0
    while i + 3 < len(s):
        if s[i] == "^" and s[i + 2] == "_" and _is_arg(s[i + 1]) and _is_arg(s[i + 3]):
            s[i], s[i + 1], s[i + 2], s[i + 3] = "_", s[i + 3], "^", s[i + 1]
            i += 4
        else:
            i += 1
    return _merge_prime_superscripts(s)


def _rewrite_siblings(seq: list, use_only_c: bool = True) -> list:
    """R3, R4, R7 (names), R8, missing-argument check, then R5, R6 + R10, R7 (folding) on one sibling sequence."""
    s = _swap_scripts(_unwrap_groups(*_argument_pass(_rename_pass(seq), use_only_c)))
    # R7: trailing \\ before \end, delimiters around a matrix.
    s = [it for k, it in enumerate(s) if not (it == "\\\\" and k + 1 < len(s) and s[k + 1] == "\\end")]
    if "\\begin" in s:
        s = _fold_matrix_delimiters(s)
    return s


def _is_prime_script(item: object) -> bool:
    """``\\prime`` or a group of nothing but ``\\prime`` tokens (``{ \\prime }``, ``{ \\prime \\prime }``)."""
    if item == "\\prime":
        return True
    return isinstance(item, _Group) and bool(item) and all(c == "\\prime" for c in item)


def _merge_prime_superscripts(s: list) -> list:
    """R10: ``^ P ^ B`` with ``P`` a prime script → ``^ { P… B… }`` (one superscript, as KaTeX reads it). Linear."""
    out: list = []
    for it in s:
        if len(out) >= 3 and out[-1] == "^" and out[-3] == "^" and _is_prime_script(out[-2]) and _is_arg(it):
            merged = out[-2] if isinstance(out[-2], _Group) else _Group([out[-2]])
            merged.extend(it if isinstance(it, _Group) else (it,))
            out[-2:] = [merged]  # ``^ {′} ^ {′} ^ {2}`` → ``^ {′ ′} ^ {2}`` → ``^ {′ ′ 2}``
        else:
            out.append(it)
    return out


def _fold_matrix_delimiters(s: list) -> list:
    for (left, right), env in NORM_MATRIX_DELIMS.items():
        i = 0
        while i + 2 < len(s):
            if s[i] == left and s[i + 1] == "\\begin" and s[i + 2] == "{matrix}":
                depth, j = 0, i + 1
                while j + 1 < len(s):
                    if s[j] in ("\\begin", "\\end") and s[j + 1] == "{matrix}":
                        depth += 1 if s[j] == "\\begin" else -1
                        if depth == 0:
                            break
                        j += 2
                        continue
                    j += 1
                if depth == 0 and j + 2 < len(s) and s[j + 2] == right:
                    s = s[:i] + ["\\begin", "{" + env + "}"] + s[i + 3 : j] + ["\\end", "{" + env + "}"] + s[j + 3 :]
            i += 1
    return s


def normalize_tokens(tokens: Sequence[str], *, use_only_c: bool = True, token_filters: bool = True) -> list[str]:
    """Normalize a token list (filters, then R1–R10; see the module docstring).

    ``use_only_c`` (official ``improve_tokens_unimumer.py --use-only-c``, default true): the ``l`` / ``r`` column
    alignments of an ``array`` / ``tabular`` spec become ``c``. ``token_filters=False`` (official ``--remove false``)
    keeps formulas with ``delete_chars`` / CJK tokens; structural failures still raise.

    Returns the normalized tokens. Raises :class:`LatexDropped` (``.reason`` in :data:`DROP_REASONS`) when the
    expression fails a record filter.
    """
    reason = drop_reason(tokens, token_filters=token_filters)
    if reason:
        raise LatexDropped(reason)
    root, groups = _parse(_flat_rewrites(tokens))
    for g in reversed(groups):  # children before parents: every group is rewritten after its subgroups
        g[:] = _rewrite_siblings(g, use_only_c)
    return _serialize(root)


def normalize_latex(latex: str, *, use_only_c: bool = True) -> str:
    """Normalize a space-tokenized LaTeX string; returns the tokens joined by single spaces.

    Raises :class:`LatexDropped` when the record must be dropped (see :func:`normalize_tokens`).
    """
    return " ".join(normalize_tokens(latex.split(), use_only_c=use_only_c))


def try_normalize(latex: str, *, use_only_c: bool = True) -> tuple[str | None, str | None]:
    """``(normalized, None)`` for a kept expression, ``(None, reason)`` for a dropped one. Never raises."""
    try:
        return normalize_latex(latex, use_only_c=use_only_c), None
    except LatexDropped as exc:
        return None, exc.reason
