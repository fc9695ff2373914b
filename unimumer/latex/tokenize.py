"""Tokenization of raw LaTeX (MathWriting / Im2LaTeXv2 style) into the space-tokenized form of the training data.

Source: the official prompt / training files of BFlameSwift/Uni-MuMER (one token per symbol, command, brace; ``\\begin {cases}`` is two tokens) and
the official ``*_normalized`` test sets (``\\frac{a}{b}`` → ``\\frac { a } { b }``, ``x_i`` → ``x _ { i }``).
The lexer is pylatexenc's :class:`~pylatexenc.latexwalker.LatexWalker` (``get_token``) with a context that knows
only ``&`` as a special, so ``--`` or ``''`` are never merged. On its tokens:

- a command is one token (``\\alpha``, ``\\\\``, ``\\{``); letters and digits are one token each (``12`` → ``1 2``);
- ``\\begin{env}`` / ``\\end{env}`` become ``\\begin`` ``{env}`` / ``\\end`` ``{env}``;
- a single-token script gets braces (``x_i`` → ``x _ { i }``, ``x^\\prime`` → ``x ^ { \\prime }``); only the first
  character is the script, as in TeX (``x^12`` → ``x ^ { 1 } 2``);
- math-mode delimiters (``$``, ``\\(`` …), comments and the control space ``\\ `` are dropped; nothing else is
  changed (``\\frac 1 2`` stays unbraced: bracing arguments is normalization rule R4).

Already tokenized input is a fixed point: ``tokenize_latex(tokenize_latex(x)) == tokenize_latex(x)`` and a
space-tokenized string comes back unchanged.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["LatexTokenizeError", "tokenize_latex", "tokenize_tokens"]

_SKIP_KINDS = frozenset({"comment", "mathmode_inline", "mathmode_display"})
_NO_SCRIPT_WRAP = frozenset({"{", "}", "^", "_", "&", "\\\\", "\\begin", "\\end"})


class LatexTokenizeError(ValueError):
    """pylatexenc could not lex the string (the message names the position)."""


@lru_cache(maxsize=1)
def _context():
    from pylatexenc import macrospec

    db = macrospec.LatexContextDb()
    db.add_context_category("unimumer", macros=[], environments=[], specials=[macrospec.SpecialsSpec("&")])
    return db


def _lex(latex: str) -> list[str]:
    from pylatexenc.latexwalker import LatexWalker, LatexWalkerEndOfStream, LatexWalkerError

    walker = LatexWalker(latex, latex_context=_context(), tolerant_parsing=True)
    out: list[str] = []
    pos = 0
    n = len(latex)
    while pos < n:
        try:
            tok = walker.get_token(pos, environments=True)
        except LatexWalkerEndOfStream:
            break
        except LatexWalkerError as exc:
            raise LatexTokenizeError(f"cannot tokenize LaTeX at position {pos}: {exc}") from None
        pos = tok.pos + tok.len
        kind = tok.tok
        if kind in _SKIP_KINDS:
            continue
        if kind == "macro":
            if tok.arg.strip():
                out.append("\\" + tok.arg)
        elif kind == "begin_environment":
            out += ["\\begin", "{" + tok.arg.strip() + "}"]
        elif kind == "end_environment":
            out += ["\\end", "{" + tok.arg.strip() + "}"]
        elif kind == "specials":
            out.append(tok.arg.specials_chars)
        else:  # char, brace_open, brace_close
            text = latex[tok.pos : tok.pos + tok.len] if kind == "char" else tok.arg
            out.extend(text.split())
    return out


def tokenize_tokens(latex: str) -> list[str]:
    """The token list of raw (or already tokenized) LaTeX ``latex``.

    Raises :class:`LatexTokenizeError` when pylatexenc cannot lex the string.
    """
    lexed = _lex(latex)
    out: list[str] = []
    i, n = 0, len(lexed)
    while i < n:
        tok = lexed[i]
        out.append(tok)
        i += 1
        if tok in ("^", "_") and i < n and lexed[i] not in _NO_SCRIPT_WRAP:
            out += ["{", lexed[i], "}"]
            i += 1
    return out


def tokenize_latex(latex: str) -> str:
    """Space-tokenized form of ``latex`` (tokens joined by single spaces); see the module docstring.

    Raises :class:`LatexTokenizeError` when pylatexenc cannot lex the string.
    """
    return " ".join(tokenize_tokens(latex))
