"""Canonical forms for fair scoring of free-form answers (``unimumer eval --canonicalize``).

Input: a gt or a prediction (free-form text, e.g. "The expression is $$...$$."). Output: :func:`canonical_tokens`,
one CROHME-style token list per formula: the formula extracted (prediction only, :func:`extract_formula`),
tokenized with pylatexenc, spellings that render the same glyphs unified (:data:`TOKEN_EQUIVALENTS`,
:data:`DROPPED`, :data:`OPERATOR_COMMANDS`) and normalised with rules R1-R10; a wrong formula stays wrong.
Every rule: docs/analysis.md ("Canonical scoring").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["DROPPED", "OPERATOR_COMMANDS", "TOKEN_EQUIVALENTS", "canonical_latex", "canonical_tokens",
           "extract_formula"]

#: Step 3: tokens spelled differently that render the same glyph.
TOKEN_EQUIVALENTS: dict[str, str] = {
    "\\dfrac": "\\frac", "\\tfrac": "\\frac",
    "\\lbrace": "\\{", "\\rbrace": "\\}", "\\lbrack": "[", "\\rbrack": "]", "\\lparen": "(", "\\rparen": ")",
    "\\vert": "|", "\\lvert": "|", "\\rvert": "|", "\\Vert": "\\|", "\\lVert": "\\|", "\\rVert": "\\|",
    "\\ne": "\\neq", "\\to": "\\rightarrow", "\\gets": "\\leftarrow",
    "\\land": "\\wedge", "\\lor": "\\vee", "\\lnot": "\\neg",
}
#: Step 3: delimiter-size commands (their delimiter is kept; a ``.`` null delimiter after one is dropped too).
SIZING: frozenset[str] = frozenset(
    {"\\left", "\\right", "\\middle"}
    | {f"\\{b}{s}" for b in ("big", "Big", "bigg", "Bigg") for s in ("", "l", "r", "m")}
)
#: Step 3: tokens that only change size or spacing, dropped.
DROPPED: frozenset[str] = frozenset({"\\displaystyle", "\\textstyle", "\\,", "\\;", "\\:", "\\!", "\\quad",
                                     "\\qquad"})
#: Step 3: LaTeX's predefined operator names; ``\\operatorname{NAME}`` renders as ``\\NAME``.
OPERATOR_COMMANDS: frozenset[str] = frozenset({
    "arccos", "arcsin", "arctan", "arg", "cos", "cosh", "cot", "coth", "csc", "deg", "det", "dim", "exp", "gcd",
    "hom", "inf", "ker", "lg", "lim", "liminf", "limsup", "ln", "log", "max", "min", "Pr", "sec", "sin", "sinh",
    "sup", "tan", "tanh",
})

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$|\\\((.+?)\\\)", re.S)
_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z'’,.!?\- ]*?)\s*:\s+(?=\S)")
_WRAPPERS = ("equation*", "equation", "displaymath", "math")


def extract_formula(text: str) -> str:
    """The formula part of a free-form answer (step 1 of the module docstring); ``text`` itself when it holds
    no delimiters, fences or prose label. Never raises."""
    text = text.strip()
    fences = _FENCE.findall(text)
    if fences:
        text = fences[-1].strip()
    displays = [m.group(1) or m.group(2) for m in _DISPLAY.finditer(text)]
    if displays:
        text = displays[-1]
    else:
        inline = [m.group(1) or m.group(2) for m in _INLINE.finditer(text)]
        if inline:
            text = max(inline, key=len)  # first of the longest
        else:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            text = lines[-1] if lines else ""
    m = _LABEL.match(text)
    if m and len(m.group(1).split()) >= 2:
        text = text[m.end():]
    text = text.strip()
    for env in _WRAPPERS:
        begin, end = f"\\begin{{{env}}}", f"\\end{{{env}}}"
        if text.startswith(begin) and text.endswith(end):
            text = text[len(begin):-len(end)].strip()
            break
    return text


def _equivalences(tokens: Sequence[str]) -> list[str]:
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if tok in SIZING:
            i += 2 if i + 1 < n and tokens[i + 1] == "." else 1
            continue
        if tok in DROPPED:
            i += 1
            continue
        if tok == "\\operatorname" and i + 1 < n and tokens[i + 1] == "{":
            j = i + 2
            while j < n and len(tokens[j]) == 1 and tokens[j].isalpha():
                j += 1
            name = "".join(tokens[i + 2:j])
            if j < n and tokens[j] == "}" and name in OPERATOR_COMMANDS:
                out.append("\\" + name)
                i = j + 1
                continue
        out.append(TOKEN_EQUIVALENTS.get(tok, tok))
        i += 1
    return out


def canonical_tokens(latex: str, *, extract: bool = False) -> list[str]:
    """The canonical token list of ``latex`` (steps 2–4 of the module docstring; step 1 first when ``extract``,
    for a prediction). Never raises: text pylatexenc cannot lex is split on spaces, a formula the normalisation
    refuses keeps its step-3 tokens."""
    from .normalize import LatexDropped, normalize_tokens
    from .tokenize import LatexTokenizeError, tokenize_tokens

    if extract:
        latex = extract_formula(latex)
    try:
        tokens = tokenize_tokens(latex)
    except LatexTokenizeError:
        tokens = latex.split()
    tokens = _equivalences(tokens)
    try:
        return normalize_tokens(tokens, token_filters=False)
    except LatexDropped:
        return tokens


def canonical_latex(latex: str, *, extract: bool = False) -> str:
    """:func:`canonical_tokens` joined by single spaces."""
    return " ".join(canonical_tokens(latex, extract=extract))
