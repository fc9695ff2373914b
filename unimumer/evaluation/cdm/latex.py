"""Colour-coding of LaTeX for Character Detection Matching: tokens → one LaTeX page with one colour per visible token.

Input: a LaTeX math string as the HMER data sets write it (space-tokenized, e.g. ``\\frac { 1 } { x ^ { 2 } }``);
a whitespace chunk that is not one LaTeX token is split with ``pylatexenc``. Output (:func:`colorize`): a
:class:`ColoredLatex`, the math-mode source with every visible token in its own exact RGB colour (token ``k`` →
base-31 digits of ``k`` times 8) and the canonical label of each colour. Unsafe or unrenderable input raises
:class:`LatexError`. The token rules (visible tokens, arguments, operator names, math classes, equivalent
spellings, version-dependent tokens): docs/cdm.md, "Colour-coding".
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------------- tables
#: spelling → canonical label (CDM's equivalence table: different LaTeX, same glyph).
EQUIVALENT = {
    r"\le": r"\leq", r"\ge": r"\geq", r"\ne": r"\neq", r"\neq": r"\neq", r"\to": r"\rightarrow",
    r"\gets": r"\leftarrow", r"\lbrace": r"\{", r"\rbrace": r"\}", r"\lvert": "|", r"\rvert": "|", r"\vert": "|",
    r"\mid": "|", r"\lVert": r"\|", r"\rVert": r"\|", r"\Vert": r"\|", r"\dots": r"\ldots", r"\dotsc": r"\ldots",
    r"\dotso": r"\ldots", r"\dotsb": r"\ldots", r"\dotsm": r"\ldots", r"\cdots": r"\ldots", r"\land": r"\wedge", r"\lor": r"\vee",
    r"\lnot": r"\neg", r"\dfrac": r"\frac", r"\tfrac": r"\frac", r"\cfrac": r"\frac", r"\dbinom": r"\binom",
    r"\tbinom": r"\binom", "'": r"\prime", r"\ast": "*", r"\colon": ":", r"\owns": r"\ni", r"\gt": ">",
    r"\lt": "<", r"\implies": r"\Longrightarrow", r"\impliedby": r"\Longleftarrow", r"\iff": r"\Longleftrightarrow",
    r"\varnothing": r"\emptyset", r"\textbackslash": r"\backslash", r"\lbrack": "[", r"\rbrack": "]",
    r"\bigcirc": r"\circ", r"\widehat": r"\hat", r"\widetilde": r"\tilde", r"\overrightarrow": r"\vec",
    # the official toolkit's norm_same_token: the dot-like glyphs, \top ≡ T, \parallel ≡ \|, capitalised accents
    r"\cdot": ".", r"\cdotp": ".", r"\ldotp": ".", r"\dot": ".", r"\Dot": ".", r"\top": "T",
    r"\parallel": r"\|", r"\dag": r"\dagger", r"\ddag": r"\ddagger", r"\slash": "/", r"\Tilde": r"\tilde",
    r"\Bar": r"\bar", r"\Vec": r"\vec", r"\Ddot": r"\ddot", r"\textless": "<", r"\textgreater": ">",
}

REL = set(
    r"""= < > : \leq \le \geq \ge \neq \ne \approx \equiv \sim \simeq \cong \propto \in \notin \ni \owns \subset
    \subseteq \supset \supseteq \subsetneq \supsetneq \rightarrow \to \leftarrow \gets \Rightarrow \Leftarrow
    \leftrightarrow \Leftrightarrow \longrightarrow \longleftarrow \Longrightarrow \Longleftarrow
    \longleftrightarrow \Longleftrightarrow \mapsto \longmapsto \perp \parallel \mid \models \vdash \dashv \ll \gg
    \prec \succ \preceq \succeq \asymp \doteq \leqslant \geqslant \lesssim \gtrsim \nless \ngtr \nleq \ngeq
    \uparrow \downarrow \Uparrow \Downarrow \updownarrow \nearrow \searrow \swarrow \nwarrow \iff \implies
    \impliedby \gt \lt \vartriangleleft \triangleq \models \sqsubset \sqsupset \sqsubseteq \sqsupseteq""".split()
)
BIN = set(
    r"""+ - * \pm \mp \times \div \cdot \circ \bullet \cap \cup \wedge \vee \land \lor \setminus \oplus \ominus
    \otimes \oslash \odot \ast \star \dagger \ddagger \amalg \sqcap \sqcup \uplus \diamond \bigtriangleup
    \bigtriangledown \triangleleft \triangleright \wr""".split()
)
OPEN = set(r"( [ \{ \lbrace \langle \lfloor \lceil \lbrack".split())
CLOSE = set(r") ] \} \rbrace \rangle \rfloor \rceil \rbrack !".split())
PUNCT = set(r", ; \colon".split())
#: large operators: (limits in display style?)
BIG_OPS = {
    r"\sum": True, r"\prod": True, r"\coprod": True, r"\bigcup": True, r"\bigcap": True, r"\bigvee": True,
    r"\bigwedge": True, r"\bigoplus": True, r"\bigotimes": True, r"\bigodot": True, r"\bigsqcup": True,
    r"\biguplus": True, r"\int": False, r"\iint": False, r"\iiint": False, r"\oint": False, r"\smallint": False,
}
#: operator names: letters, limits in display style?
OPERATOR_NAMES = {
    r"\lim": True, r"\limsup": True, r"\liminf": True, r"\max": True, r"\min": True, r"\sup": True,
    r"\inf": True, r"\det": True, r"\gcd": True, r"\Pr": True, r"\arg": False, r"\sin": False, r"\cos": False,
    r"\tan": False, r"\cot": False, r"\sec": False, r"\csc": False, r"\sinh": False, r"\cosh": False,
    r"\tanh": False, r"\coth": False, r"\arcsin": False, r"\arccos": False, r"\arctan": False, r"\log": False,
    r"\ln": False, r"\lg": False, r"\exp": False, r"\dim": False, r"\ker": False, r"\deg": False, r"\hom": False,
}
#: ellipses: three dots, each its own token (as the official toolkit counts them), in ``\mathinner``.
DOTS = {r"\ldots": r"\ldotp", r"\dots": r"\ldotp", r"\dotsc": r"\ldotp", r"\dotso": r"\ldotp",
        r"\cdots": r"\cdotp", r"\dotsb": r"\cdotp", r"\dotsm": r"\cdotp"}
#: commands whose arguments are coloured inside and whose own ink (if any) gets the command's colour.
ARITY = {
    r"\frac": 2, r"\dfrac": 2, r"\tfrac": 2, r"\cfrac": 2, r"\binom": 2, r"\dbinom": 2, r"\tbinom": 2,
    r"\sqrt": 1, r"\hat": 1, r"\widehat": 1, r"\bar": 1, r"\overline": 1, r"\underline": 1, r"\vec": 1,
    r"\dot": 1, r"\ddot": 1, r"\dddot": 1, r"\tilde": 1, r"\widetilde": 1, r"\check": 1, r"\breve": 1,
    r"\acute": 1, r"\grave": 1, r"\mathring": 1, r"\overrightarrow": 1, r"\overleftarrow": 1,
    r"\overleftrightarrow": 1, r"\underrightarrow": 1, r"\underleftarrow": 1, r"\overbrace": 1,
    r"\underbrace": 1, r"\boxed": 1, r"\cancel": 1, r"\xrightarrow": 1, r"\xleftarrow": 1,
}
#: commands that only change fonts/placement: their arguments are coloured, they themselves have no ink.
TRANSPARENT = {
    r"\mathrm": 1, r"\mathbf": 1, r"\mathit": 1, r"\mathsf": 1, r"\mathtt": 1, r"\mathcal": 1, r"\mathbb": 1,
    r"\mathfrak": 1, r"\mathscr": 1, r"\mathnormal": 1,
    r"\operatorname": 1, r"\operatorname*": 1, r"\overset": 2, r"\underset": 2, r"\stackrel": 2,
    r"\displaystyle": 0, r"\textstyle": 0, r"\scriptstyle": 0, r"\scriptscriptstyle": 0, r"\phantom": 1,
    r"\hphantom": 1, r"\vphantom": 1, r"\mathop": 1, r"\mathrel": 1, r"\mathbin": 1, r"\mathord": 1,
    r"\mathopen": 1, r"\mathclose": 1, r"\mathpunct": 1, r"\mathinner": 1,
}
#: bold-symbol commands cannot take coloured content: they are applied to each coloured token of their argument.
DISTRIBUTED = {r"\boldsymbol", r"\bm", r"\pmb"}
TEXT_COMMANDS = {r"\text", r"\mbox", r"\textrm", r"\textit", r"\textbf", r"\textsf", r"\texttt", r"\textnormal",
                 r"\hbox"}
INVISIBLE = set(
    r"""& \\ \, \; \: \! \> \quad \qquad \  ~ \limits \nolimits \hline \hfill \cr \newline \nonumber
    \notag \enspace \thinspace \medspace \thickspace \negthinspace \relax \centering""".split()
) | {"\\ "}
DELIM_PREFIX = {r"\left": None, r"\right": None, r"\middle": None, r"\big": None, r"\Big": None,
                r"\bigg": None, r"\Bigg": None, r"\bigl": "open", r"\Bigl": "open", r"\biggl": "open",
                r"\Biggl": "open", r"\bigr": "close", r"\Bigr": "close", r"\biggr": "close", r"\Biggr": "close",
                r"\bigm": "rel", r"\Bigm": "rel", r"\biggm": "rel", r"\Biggm": "rel"}
FORBIDDEN = set(
    r"""\def \edef \gdef \xdef \let \newcommand \renewcommand \providecommand \DeclareMathOperator \input \include
    \openin \openout \read \write \immediate \catcode \loop \repeat \csname \expandafter \special \pdfprimitive
    \documentclass \usepackage \begin{document} \end{document} \newenvironment \renewenvironment \jobname
    \shipout \output \everypar \everymath \afterassignment \aftergroup \futurelet \uppercase \lowercase
    \scantokens \endinput \batchmode \errorstopmode \nonstopmode \scrollmode \tracingall \halt \end""".split()
) - {r"\end"}
WRAP_CLASS = {"rel": r"\mathrel", "bin": r"\mathbin", "open": r"\mathopen", "close": r"\mathclose",
              "punct": r"\mathpunct"}
MAX_TOKENS = 31**3 - 1


class LatexError(ValueError):
    """The expression cannot be colour-coded (unsafe command, unbalanced braces, missing argument…)."""


def color_of(index: int) -> tuple[int, int, int]:
    """RGB of the 1-based token ``index`` (base-31 digits × 8). Raises :class:`LatexError` past :data:`MAX_TOKENS`."""
    if not 1 <= index <= MAX_TOKENS:
        raise LatexError(f"too many visible tokens ({index})")
    return (8 * (index // 961), 8 * (index // 31 % 31), 8 * (index % 31))


# --------------------------------------------------------------------------------------------------- tokenizing
def _split_chunk(chunk: str) -> list[str]:
    """One whitespace chunk → LaTeX tokens (pylatexenc's tokenizer when the chunk is not a single token)."""
    if len(chunk) == 1 or (chunk[0] == "\\" and (chunk[1:].isalpha() or len(chunk) == 2)):
        return [chunk]
    from pylatexenc.latexwalker import LatexWalker, LatexWalkerEndOfStream

    walker = LatexWalker(chunk, tolerant_parsing=False)
    out: list[str] = []
    pos = 0
    while True:
        try:
            tok = walker.get_token(pos, environments=False)
        except LatexWalkerEndOfStream:
            break
        except Exception as exc:  # pylatexenc raises its own parse errors
            raise LatexError(f"cannot tokenize {chunk!r}: {exc}") from None
        if tok.tok == "macro":
            out.append("\\" + tok.arg)
        elif tok.tok in ("char", "brace_open", "brace_close"):
            out.append(tok.arg)
        elif tok.tok == "specials":
            out.append(tok.arg.specials_chars)
        elif tok.tok == "comment":
            raise LatexError("a '%' comment in the expression")
        else:
            raise LatexError(f"math-mode switch {tok.arg!r} inside the expression")
        pos = tok.pos + tok.len
    return out


def tokenize(latex: str) -> list[str]:
    """LaTeX string → tokens: ``str.split()`` (the data sets' tokenization), non-atomic chunks split further."""
    out: list[str] = []
    for chunk in latex.split():
        out.extend(_split_chunk(chunk))
    return out


# --------------------------------------------------------------------------------------------------- colouring
@dataclass
class ColoredLatex:
    """The colour-coded math source (one line, math mode), ``labels[k-1]`` = canonical label of colour ``k`` and
    ``spellings[k-1]`` = its token as written (``\\le`` has label ``\\leq``, spelling ``\\le``)."""

    source: str
    labels: list[str] = field(default_factory=list)
    spellings: list[str] = field(default_factory=list)


class _Colorizer:
    def __init__(self, tokens: list[str], toolkit):
        self.toks = tokens
        self.toolkit = toolkit
        self.i = 0
        self.labels: list[str] = []
        self.spellings: list[str] = []
        self.wrappers: list[str] = []

    # ----- helpers
    def _new(self, label: str) -> str:
        self.labels.append(self.toolkit.label(label))
        self.spellings.append(label)
        r, g, b = color_of(len(self.labels))
        return f"{r},{g},{b}"

    def _peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _next(self) -> str:
        if self.i >= len(self.toks):
            raise LatexError("expression ends where an argument was expected")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _raw_group(self) -> str:
        """Consume ``{ … }`` and return its tokens joined without spaces (environment names, array specs)."""
        if self._next() != "{":
            raise LatexError("expected '{'")
        depth, parts = 1, []
        while True:
            tok = self._next()
            depth += (tok == "{") - (tok == "}")
            if depth == 0:
                return "".join(parts)
            parts.append(tok)

    def _optional(self, text: bool = False) -> str | None:
        """``[ … ]`` optional argument (coloured), or None."""
        if self._peek() != "[":
            return None
        self.i += 1
        parts = []
        while self._peek() != "]":
            if self._peek() is None:
                raise LatexError("unclosed '[' of an optional argument")
            parts.append(self.atom(text))
        self.i += 1
        return "".join(parts)

    # ----- grammar
    def sequence(self, stop: str | None, text: bool = False) -> str:
        parts = []
        while True:
            tok = self._peek()
            if tok is None:
                if stop is not None:
                    raise LatexError(f"missing {stop!r}")
                return "".join(parts)
            if tok == stop:
                self.i += 1
                return "".join(parts)
            if tok == "}":
                raise LatexError("unbalanced '}'")
            parts.append(self.atom(text))

    def argument(self, text: bool = False) -> str:
        """One argument: a ``{…}`` group (its content, coloured) or a single atom."""
        if self._peek() == "{":
            self.i += 1
            return self.sequence("}", text)
        if self._peek() is None or self._peek() == "}":
            raise LatexError("a command or script lacks its argument")
        return self.atom(text)

    def atom(self, text: bool = False) -> str:  # noqa: C901 - one dispatch table
        tok = self._next()
        if tok in FORBIDDEN or tok in ("%", "$", "#") or tok.startswith("\\begin{document"):
            raise LatexError(f"{tok!r} is not allowed in an expression")
        if tok == "{":
            return "{" + self.sequence("}", text) + "}"
        if tok == "}":
            raise LatexError("unbalanced '}'")
        if text:
            return self._text_token(tok)
        if tok in ("^", "_"):
            return tok + "{" + self.argument() + "}"
        if tok in INVISIBLE:
            return tok + " " if tok[-1].isalpha() else tok
        if tok in TEXT_COMMANDS:
            return tok + "{" + self.argument(text=True) + "}"
        if tok == r"\begin":
            return self._environment()
        if tok in DELIM_PREFIX:
            return self._delimiter(tok)
        if tok in OPERATOR_NAMES:
            letters = "".join(rf"\mathcolor[RGB]{{{self._new(ch)}}}{{{ch}}}" for ch in tok[1:])
            return rf"\mathop{{\mathrm{{{letters}}}}}" + ("" if OPERATOR_NAMES[tok] else r"\nolimits ")
        nxt = self._peek()
        if tok == r"\not" and self.toolkit.merge_not and (nxt in REL or nxt in ("+", "-")):
            self.i += 1  # ``\not =`` / ``\not \in`` as one token of one colour
            return rf"\mathrel{{\mathcolor[RGB]{{{self._new(tok + nxt)}}}{{\not {nxt}}}}}"
        if tok in DOTS and tok not in self.toolkit.split_dots:  # one token, one colour
            return rf"\mathinner{{\mathcolor[RGB]{{{self._new(tok)}}}{{{tok}}}}}"
        if tok in DOTS:
            dot = DOTS[tok]
            label = "."  # the official toolkit rewrites every ellipsis as ". . ."
            return r"\mathinner{" + "".join(
                rf"\mathpunct{{\mathcolor[RGB]{{{self._new(label)}}}{{{dot}}}}}" for _ in range(3)) + "}"
        if tok in BIG_OPS:
            return rf"\mathop{{\mathcolor[RGB]{{{self._new(tok)}}}{{{tok}}}}}" + (
                "" if BIG_OPS[tok] else r"\nolimits ")
        if tok == r"\sqrt":
            color = self._new(tok)
            index = self._optional()
            body = self.argument()
            opt = f"[{{{index}}}]" if index is not None else ""
            return rf"\mathcolor[RGB]{{{color}}}{{\sqrt{opt}{{{body}}}}}"
        if tok in ARITY:
            color = self._new(tok)
            args = "".join("{" + self.argument() + "}" for _ in range(ARITY[tok]))
            return rf"\mathcolor[RGB]{{{color}}}{{{tok}{args}}}"
        if tok in DISTRIBUTED:
            # \boldsymbol{\mathcolor…} breaks: apply the command to each coloured token instead
            self.wrappers.append(tok)
            try:
                return "{" + self.argument() + "}"
            finally:
                self.wrappers.pop()
        if tok in TRANSPARENT:
            star = ""
            if tok == r"\operatorname" and self._peek() == "*":
                self.i += 1
                star = "*"
            args = "".join("{" + self.argument() + "}" for _ in range(TRANSPARENT[tok]))
            return tok + star + (args if args else " ")
        if tok.startswith("\\") and tok[1:].isalpha() and tok not in REL | BIN | OPEN | CLOSE | PUNCT:
            return self._symbol(tok, None)
        return self._symbol(tok, self._class_of(tok))

    @staticmethod
    def _class_of(tok: str) -> str | None:
        for name, members in (("rel", REL), ("bin", BIN), ("open", OPEN), ("close", CLOSE), ("punct", PUNCT)):
            if tok in members:
                return name
        return None

    def _symbol(self, tok: str, cls: str | None) -> str:
        inner = tok
        for wrapper in reversed(self.wrappers):
            inner = f"{wrapper}{{{inner}}}"
        body = rf"\mathcolor[RGB]{{{self._new(tok)}}}{{{inner}}}"
        return WRAP_CLASS[cls] + "{" + body + "}" if cls else body

    def _text_token(self, tok: str) -> str:
        if tok in ("^", "_", "&", "~") or tok in DELIM_PREFIX or tok == r"\begin":
            raise LatexError(f"{tok!r} inside a text argument")
        if tok in INVISIBLE or tok == "\\ ":
            return tok
        return rf"\textcolor[RGB]{{{self._new(tok)}}}{{{tok}}}"

    def _delimiter(self, prefix: str) -> str:
        delim = self._next()
        if delim in ("{", "}") or delim in ("^", "_"):
            raise LatexError(f"{prefix} needs a delimiter, got {delim!r}")
        if delim == ".":
            return prefix + "."
        kind = DELIM_PREFIX[prefix]
        if prefix in (r"\left", r"\right", r"\middle"):
            return rf"\color[RGB]{{{self._new(delim)}}}{prefix}{delim}" + (" " if delim[-1].isalpha() else "")
        body = rf"\mathcolor[RGB]{{{self._new(delim)}}}{{{prefix}{delim}}}"
        return WRAP_CLASS[kind] + "{" + body + "}" if kind else body

    def _environment(self) -> str:
        name = self._raw_group()
        if not name.replace("*", "").isalpha():
            raise LatexError(f"bad environment name {name!r}")
        spec = ""
        if name in ("array", "tabular"):
            spec = "{" + self._raw_group() + "}"
        color = self._new(r"\begin{" + name + "}")
        parts = []
        while True:
            tok = self._peek()
            if tok is None:
                raise LatexError(f"\\begin{{{name}}} without \\end")
            if tok == r"\end":
                self.i += 1
                if self._raw_group() != name:
                    raise LatexError(f"\\begin{{{name}}} closed by another \\end")
                break
            if tok == "}":
                raise LatexError("unbalanced '}'")
            parts.append(self.atom())
        body = "".join(parts)
        return rf"\mathcolor[RGB]{{{color}}}{{\begin{{{name}}}{spec}{body}\end{{{name}}}}}"


def colorize(latex: str, toolkit=None) -> ColoredLatex:
    """Colour-code a LaTeX math string (see the module docstring for the rules).

    Input: the expression (space-tokenized LaTeX, no ``$``) and ``toolkit``, the CDM toolkit version whose token
    rules apply (name or :class:`unimumer.evaluation.cdm.toolkit.Toolkit`, default ``2025-09``; an unknown name raises
    :class:`ValueError`). Output: :class:`ColoredLatex` (``source`` is one line
    of math-mode LaTeX; ``labels[k-1]`` the canonical label of colour index ``k``). Raises :class:`LatexError`
    for unsafe or structurally broken input, or input nested too deeply to render. Deterministic: the same
    string always gives the same source.
    """
    if "\n" in latex or "\r" in latex:
        latex = " ".join(latex.split())
    from .toolkit import get_toolkit

    col = _Colorizer(tokenize(latex), get_toolkit(toolkit))
    try:
        source = col.sequence(None)
    except RecursionError:
        # far deeper than TeX's 255 grouping levels allow: reported as this expression's failure, never a crash
        raise LatexError("nested too deeply to render") from None
    return ColoredLatex(source=source, labels=col.labels, spellings=col.spellings)
