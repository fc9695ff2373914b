"""Symbol-counting targets (task ``can``), byte-identical to the official tool.

Source: paper Sec. 3 (symbol counting, after CAN) and the official ``preprocess/make_unimumer_tree_data.py``: COUNTS = every
whitespace token except ``{`` and ``}``, counted, in first-seen order, joined as ``tok: n`` with ``", "``
(official ``get_symbol_counts`` / ``make_count_dict2str``). ``^``, ``_``, ``\\begin``, ``{cases}``, ``\\\\`` and
``&`` are counted. Linear time; never raises on a string.
"""

from __future__ import annotations

__all__ = ["build_count_target", "format_counts", "parse_counts", "symbol_counts"]

_NOT_COUNTED = ("{", "}")


def symbol_counts(latex: str) -> dict[str, int]:
    """``{token: count}`` over ``latex.split()`` in first-seen order, without ``{`` and ``}``."""
    counts: dict[str, int] = {}
    for tok in latex.split():
        counts[tok] = counts.get(tok, 0) + 1
    for tok in _NOT_COUNTED:
        counts.pop(tok, None)
    return counts


def format_counts(counts: dict[str, int]) -> str:
    """``"tok: n, tok: n"`` (official ``make_count_dict2str``)."""
    return ", ".join(f"{tok}: {n}" for tok, n in counts.items())


def parse_counts(text: str) -> dict[str, int]:
    """Inverse of :func:`format_counts` (tokens never hold whitespace, so ``", "`` and ``": "`` split safely).

    Raises ``ValueError`` when ``text`` is not a COUNTS line.
    """
    out: dict[str, int] = {}
    if not text:
        return out
    for item in text.split(", "):
        tok, sep, n = item.rpartition(": ")
        if not sep or not tok or not n.isdigit():
            raise ValueError(f"not a symbol-count item: {item!r}")
        out[tok] = int(n)
    return out


def build_count_target(latex: str) -> str:
    """The symbol-counting training target (task ``can``): ``COUNTS + "\\n" + latex`` (``latex`` as given)."""
    return f"{format_counts(symbol_counts(latex))}\n{latex}"
