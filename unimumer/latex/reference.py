"""A straightforward recursive implementation of the Tree-CoT spec, for tests and benchmarks only.

It follows the official ``preprocess/unimumer_tree/latex2tree.py`` (BFlameSwift/Uni-MuMER) literally, the way the official tool is written: one recursive call per
token, token lists copied for every group and consumed with ``pop(0)``. It is quadratic in time and raises
``RecursionError`` on long expressions, which is why :mod:`unimumer.latex.tree` exists; the test-suite checks
that both agree on random token streams and the benchmark compares their throughput.
"""

from __future__ import annotations

import sys

from .categories import BIG_OPERATOR_CMDS, DOUBLE_ARG_CMDS, OPTIONAL_BRACKET_SINGLE_ARG_CMDS, SINGLE_ARG_CMDS
from .tree import TreeParseError

__all__ = ["reference_tree"]


def _close_index(toks: list[str], open_: str, close: str) -> int:
    depth = 0
    for i, t in enumerate(toks):
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _end_index(toks: list[str], name: str) -> int:
    key, depth, i = "{" + name + "}", 1, 0
    while i < len(toks):
        if toks[i] in ("\\begin", "\\end") and i + 1 < len(toks) and toks[i + 1] == key:
            depth += 1 if toks[i] == "\\begin" else -1
            if depth == 0:
                return i
            i += 2
            continue
        i += 1
    return -1


def _take_group(toks: list[str], open_: str, close: str) -> list[str]:
    j = _close_index(toks, open_, close)
    inner = toks[1:j]
    del toks[: j + 1]
    return inner


def _parse(toks: list[str]) -> tuple | None:
    """Node = (token, [(relation, child)]); consumes ``toks`` entirely; ``None`` for no tokens."""
    if not toks:
        return None
    tok = toks.pop(0)
    kids: list[tuple[str, tuple | None]] = []

    def script(symbol: str, relation: str) -> None:
        if toks and toks[0] == symbol:
            toks.pop(0)
            if not toks or toks[0] != "{":
                raise TreeParseError(f"{symbol} not with {{")
            kids.append((relation, _parse(_take_group(toks, "{", "}"))))

    def required(relation: str) -> None:
        if not toks or toks[0] != "{":
            raise TreeParseError(f"{tok} not with {{")
        kids.append((relation, _parse(_take_group(toks, "{", "}"))))

    if tok == "\\begin":
        if not toks:
            raise TreeParseError("\\begin missing environment name")
        name = toks.pop(0).strip("{}")
        j = _end_index(toks, name)
        if j == -1:
            raise TreeParseError(f"missing matching \\end{{{name}}}")
        kids.append((f"begin_{name}", _parse(toks[:j])))
        kids.append((f"end_{name}", ("\\end", [])))
        del toks[: j + 2]
    elif tok in BIG_OPERATOR_CMDS:
        script("_", "below")
        script("^", "above")
    elif tok in SINGLE_ARG_CMDS:
        required("above")
    elif tok in OPTIONAL_BRACKET_SINGLE_ARG_CMDS:
        if toks and toks[0] == "[":
            kids.append(("below", _parse(_take_group(toks, "[", "]"))))
        required("above")
    elif tok in DOUBLE_ARG_CMDS:
        required("above")
        required("below")
    else:
        script("_", "sub")
        script("^", "sup")
    relation = "right"
    if toks and toks[0] == "\\\\":
        toks.pop(0)
        relation = "nextline"
    kids.append((relation, _parse(toks)))
    return (tok, kids)


def _lines(node: tuple, depth: int, relation: str | None, out: list[str]) -> None:
    tok, kids = node
    out.append("\t" * depth + (f"{tok} ({relation})" if relation else tok))
    for rel, kid in kids:
        if kid is not None:
            _lines(kid, depth if rel == "right" else depth + 1, rel, out)


def reference_tree(latex: str, recursion_limit: int | None = None) -> str:
    """Tree-CoT string of ``latex`` by plain recursion (``RecursionError`` on long input, like the official tool).

    ``recursion_limit`` temporarily raises ``sys.setrecursionlimit`` (benchmarks on long expressions).
    Raises :class:`~unimumer.latex.tree.TreeParseError` on the documented parse errors.
    """
    old = sys.getrecursionlimit()
    if recursion_limit:
        sys.setrecursionlimit(max(old, recursion_limit))
    try:
        root = _parse(latex.strip().split())
        out: list[str] = []
        if root is not None:
            _lines(root, 0, None, out)
        return "\n".join(out)
    finally:
        sys.setrecursionlimit(old)
