"""Tokenization of raw LaTeX into the space-tokenized form of the training data (one token per symbol,
command or brace; scripts braced; delimiters and comments dropped).

Input: a LaTeX string; output: tokens (:func:`tokenize_tokens`) or their space-joined string
(:func:`tokenize_latex`); tokenized input is a fixed point. Raises :class:`LatexTokenizeError` for text pylatexenc
cannot lex. Lexer: pylatexenc ``LatexWalker``. Rules: docs/data-building.md ("Tokenization"). Source: the official
training files and ``*_normalized`` test sets of BFlameSwift/Uni-MuMER.
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
