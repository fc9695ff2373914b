"""Tree-CoT targets: the syntax tree of a space-tokenized LaTeX string, byte-identical to the official tool.

Input: tokens; output: the official ``format_syntax_tree`` lines (:func:`tree_lines`, :func:`build_tree_target`).
Iterative (explicit stack, linear in the output; the official recursion fails on a few hundred tokens), with the
official quirks kept. Malformed input raises :class:`TreeParseError` (the official ``AssertionError`` cases, or
more than ``max_nodes`` printed nodes). Source: paper Sec. 3 and the official
``preprocess/make_unimumer_tree_data.py``; how: docs/data-building.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from .categories import (
    BIG_OPERATOR_CMDS,
    DOUBLE_ARG_CMDS,
    OPTIONAL_BRACKET_SINGLE_ARG_CMDS,
    SINGLE_ARG_CMDS,
)

__all__ = [
    "DEFAULT_MAX_NODES",
    "TreeParseError",
    "build_tree_target",
    "latex_to_tree",
    "tree_lines",
]

#: Printed-node budget of one tree (a well-formed expression prints exactly one node per non-brace token).
DEFAULT_MAX_NODES = 1_000_000

_BIG = frozenset(BIG_OPERATOR_CMDS)
_ONE = frozenset(SINGLE_ARG_CMDS)
_OPT = frozenset(OPTIONAL_BRACKET_SINGLE_ARG_CMDS)
_TWO = frozenset(DOUBLE_ARG_CMDS)
_NEWLINE = "\\\\"


class TreeParseError(ValueError):
    """The documented Tree-CoT parse error: the record is skipped (counted) by the data builders unless strict."""


def _bracket_matches(tokens: Sequence[str], open_: str, close: str) -> list[int]:
    """``m[i]`` = index of the bracket closing the ``open_`` at ``i`` (same kind only), ``-1`` if none."""
    match = [-1] * len(tokens)
    stack: list[int] = []
    for i, tok in enumerate(tokens):
        if tok == open_:
            stack.append(i)
        elif tok == close and stack:
            match[stack.pop()] = i
    return match


def _env_matches(tokens: Sequence[str]) -> dict[int, int]:
    """For each ``\\begin`` at ``b`` (with a next token): the index of its matching ``\\end``, or ``-1``.

    Reproduces the official ``findendenv``: scanning from ``b + 2`` with depth 1, a pair ``\\begin K`` / ``\\end K``
    with ``K = "{" + tokens[b+1].strip("{}") + "}"`` adds / removes one level; the answer is the first ``\\end K``
    that brings the depth to 0. Answered offline: the depth from ``b + 2`` is a prefix balance per key ``K``.
    """
    n = len(tokens)
    queries: dict[int, list[tuple[int, str]]] = {}  # start position -> [(begin index, key)]
    answer: dict[int, int] = {}
    for b, tok in enumerate(tokens):
        if tok == "\\begin" and b + 1 < n:
            key = "{" + tokens[b + 1].strip("{}") + "}"
            answer[b] = -1
            queries.setdefault(b + 2, []).append((b, key))
    if not answer:
        return answer
    keys = {key for qs in queries.values() for _, key in qs}
    level: dict[str, int] = dict.fromkeys(keys, 0)
    pending: dict[str, dict[int, list[int]]] = {k: {} for k in keys}
    for x in range(n):
        for b, key in queries.get(x, ()):
            pending[key].setdefault(level[key] - 1, []).append(b)
        tok = tokens[x]
        if (tok == "\\begin" or tok == "\\end") and x + 1 < n:
            key = tokens[x + 1]
            if key in level:
                if tok == "\\begin":
                    level[key] += 1
                else:
                    level[key] -= 1
                    for b in pending[key].pop(level[key], ()):
                        answer[b] = x
    return answer


def _group(match: list[int], at: int, end: int, level: int, relation: str, groups: list) -> int:
    """Attach the bracket group opening at ``at`` (range end ``end``) to ``groups``; return the new cursor.

    Official quirk: without a closing bracket inside the range, the group is the rest ``[1:-1]`` and nothing is
    consumed (the cursor stays on the opening bracket).
    """
    m = match[at]
    if m != -1 and m < end:
        if m > at + 1:
            groups.append((at + 1, m, level + 1, relation))
        return m + 1
    if end - 1 > at + 1:
        groups.append((at + 1, end - 1, level + 1, relation))
    return at


def _script(tokens, curly, at: int, end: int, level: int, symbol: str, relation: str, groups: list) -> int:
    """Optional ``symbol { … }`` script at ``at``; raises :class:`TreeParseError` when ``{`` does not follow."""
    if at < end and tokens[at] == symbol:
        at += 1
        if at >= end or tokens[at] != "{":
            raise TreeParseError(f"{symbol} not with {{")
        return _group(curly, at, end, level, relation, groups)
    return at


def tree_lines(tokens: Sequence[str], *, max_nodes: int | None = DEFAULT_MAX_NODES) -> list[str]:
    """The Tree-CoT lines of a token list (official ``format_syntax_tree(latex2Tree(tokens))``).

    Input: the whitespace tokens of a space-tokenized LaTeX string. Output: one line per printed node, pre-order:
    the root is its bare token, every other node ``"\\t" * depth + f"{token} ({relation})"``; ``[]`` for no tokens.
    Raises :class:`TreeParseError` on the official parse errors (see the module docstring) or when more than
    ``max_nodes`` nodes would be printed (``None``: no limit). Iterative: no recursion limit, linear time in the
    output size.
    """
    n = len(tokens)
    curly = _bracket_matches(tokens, "{", "}")
    square = _bracket_matches(tokens, "[", "]") if "[" in tokens else None
    envs = _env_matches(tokens) if "\\begin" in tokens else {}
    out: list[str] = []
    limit = max_nodes if max_nodes is not None else -1
    # Work items: (start, end, depth, relation of the first node) for a token range, or a literal line (str).
    stack: list[tuple[int, int, int, str | None] | str] = [(0, n, 0, None)]

    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        pos, end, level, rel = item
        while pos < end:
            tok = tokens[pos]
            out.append("\t" * level + (f"{tok} ({rel})" if rel is not None else tok))
            if len(out) == limit + 1:
                raise TreeParseError(f"the tree exceeds {max_nodes} nodes (unmatched brackets duplicate content)")
            cur = pos + 1
            groups: list[tuple[int, int, int, str] | str] = []

            if tok == "\\begin":
                if cur >= end:
                    raise TreeParseError("\\begin missing environment name")
                name = tokens[cur].strip("{}")
                j = envs.get(pos, -1)
                if j == -1 or j + 1 >= end:
                    raise TreeParseError(f"missing matching \\end{{{name}}}")
                if j > cur + 1:
                    groups.append((cur + 1, j, level + 1, f"begin_{name}"))
                groups.append("\t" * (level + 1) + f"\\end (end_{name})")
                cur = j + 2
            elif tok in _BIG:
                cur = _script(tokens, curly, cur, end, level, "_", "below", groups)
                cur = _script(tokens, curly, cur, end, level, "^", "above", groups)
            elif tok in _ONE:
                if cur >= end or tokens[cur] != "{":
                    raise TreeParseError(f"{tok} not with {{")
                cur = _group(curly, cur, end, level, "above", groups)
            elif tok in _OPT:
                if cur < end and tokens[cur] == "[":
                    cur = _group(square, cur, end, level, "below", groups)  # type: ignore[arg-type]
                if cur >= end or tokens[cur] != "{":
                    raise TreeParseError(f"{tok} main param not with {{")
                cur = _group(curly, cur, end, level, "above", groups)
            elif tok in _TWO:
                if cur >= end or tokens[cur] != "{":
                    raise TreeParseError(f"{tok} above not with {{")
                cur = _group(curly, cur, end, level, "above", groups)
                if cur >= end or tokens[cur] != "{":
                    raise TreeParseError(f"{tok} below not with {{")
                cur = _group(curly, cur, end, level, "below", groups)
            elif cur < end and (tokens[cur] == "_" or tokens[cur] == "^"):  # the common case: no script, no call
                cur = _script(tokens, curly, cur, end, level, "_", "sub", groups)
                cur = _script(tokens, curly, cur, end, level, "^", "sup", groups)

            # The successor: a `right` sibling at the same depth, or a `nextline` child after a consumed `\\`.
            if cur < end and tokens[cur] == _NEWLINE:
                cur += 1
                next_level, next_rel = level + 1, "nextline"
            else:
                next_level, next_rel = level, "right"
            if groups:
                stack.append((cur, end, next_level, next_rel))
                stack.extend(reversed(groups))
                break
            pos, level, rel = cur, next_level, next_rel
    return out


def latex_to_tree(latex: str, *, max_nodes: int | None = DEFAULT_MAX_NODES) -> str:
    """The Tree-CoT string of a space-tokenized LaTeX string (official ``latex_to_tree_str``).

    Tokens are ``latex.strip().split()``; lines are joined with ``"\\n"`` (``""`` for an empty string).
    Raises :class:`TreeParseError` on malformed input (see :func:`tree_lines`).
    """
    return "\n".join(tree_lines(latex.strip().split(), max_nodes=max_nodes))


def build_tree_target(latex: str) -> str:
    """The Tree-CoT training target (task ``tree``): ``TREE + "\\n" + latex`` (``latex`` as given, unstripped).

    Source: the official ``make_tree_record`` (``preprocess/make_unimumer_tree_data.py``). Raises
    :class:`TreeParseError` on malformed input; the builders count such records as skipped.
    """
    return f"{latex_to_tree(latex)}\n{latex}"
