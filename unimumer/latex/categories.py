"""Token categories of the official Uni-MuMER Tree-CoT parser (``latex_cate_lib``) and the normalizer's lists.

Source: ``tests/fixtures/reference/tree_cot/categories.md`` (the official ``latex_categories`` of
BFlameSwift/Uni-MuMER, ``preprocess/unimumer_tree/latex_cate_lib.py``). Only the first four lists change Tree-CoT
parsing; ``ORDINARY_CMDS`` / ``ORDINARY_CHARS`` are informational and ``DELETE_CHARS`` is the official cleaning
pipeline's drop list (a record holding one of these tokens is dropped by :mod:`unimumer.latex.normalize`).
"""

from __future__ import annotations

#: ``double_arg_cmds`` (7 tokens)
DOUBLE_ARG_CMDS: tuple[str, ...] = (
    '\\frac', '\\cfrac', '\\dfrac', '\\tfrac', '\\binom', '\\dbinom', '\\tbinom',
)

#: ``single_arg_cmds`` (19 tokens)
SINGLE_ARG_CMDS: tuple[str, ...] = (
    '\\dot', '\\ddot', '\\hat', '\\check', '\\grave', '\\acute', '\\tilde', '\\breve', '\\bar', '\\vec',
    '\\widehat', '\\overbrace', '\\widetilde', '\\overleftarrow', '\\overrightarrow', '\\overline',
    '\\underline', '\\underbrace', '\\choose',
)

#: ``optional_bracket_single_arg_cmds`` (3 tokens)
OPTIONAL_BRACKET_SINGLE_ARG_CMDS: tuple[str, ...] = (
    '\\sqrt', '\\xrightarrow', '\\xleftarrow',
)

#: ``big_operator_cmds`` (7 tokens)
BIG_OPERATOR_CMDS: tuple[str, ...] = (
    '\\sum', '\\lim', '\\iint', '\\int', '\\coprod', '\\prod', '\\oint',
)

#: ``ordinary_cmds`` (166 tokens)
ORDINARY_CMDS: tuple[str, ...] = (
    '\\alpha', '\\beta', '\\gamma', '\\delta', '\\epsilon', '\\zeta', '\\eta', '\\theta', '\\iota',
    '\\kappa', '\\lambda', '\\mu', '\\nu', '\\xi', '\\pi', '\\rho', '\\sigma', '\\tau', '\\upsilon',
    '\\phi', '\\chi', '\\psi', '\\omega', '\\Gamma', '\\Delta', '\\Theta', '\\Lambda', '\\Xi', '\\Pi',
    '\\Sigma', '\\Upsilon', '\\Phi', '\\Psi', '\\Omega', '\\aleph', '\\infty', '\\hbar', '\\forall',
    '\\exists', '\\neg', '\\land', '\\lor', '\\approx', '\\equiv', '\\le', '\\ge', '\\neq', '\\ne',
    '\\cdots', '\\ldots', '\\cdot', '\\pm', '\\mp', '\\times', '\\div', '\\iff', '\\implies', '\\mapsto',
    '\\to', '\\gets', '\\leftarrow', '\\rightarrow', '\\leftrightarrow', '\\Longrightarrow',
    '\\Leftrightarrow', '\\Rightarrow', '\\partial', '\\nabla', '\\varnothing', '\\prime', '\\in',
    '\\notin', '\\dots', '\\dotsc', '\\dotsb', '\\dotsm', '\\dotso', '\\sin', '\\cos', '\\tan', '\\arcsin',
    '\\arccos', '\\arctan', '\\sinh', '\\cosh', '\\tanh', '\\exp', '\\ln', '\\log', '\\max', '\\min',
    '\\arg', '\\deg', '\\det', '\\mod', '\\bmod', '\\bold', '\\cup', '\\cap', '\\vee', '\\wedge',
    '\\longrightarrow', '\\cot', '\\ni', '\\rangle', '\\circ', '\\simeq', '\\backslash', '\\models',
    '\\triangleleft', '\\sec', '\\varsigma', '\\vdots', '\\ll', '\\over', '\\top', '\\dagger', '\\vdash',
    '\\oplus', '\\lg', '\\rVert', '\\subseteq', '\\And', '\\langle', '\\subsetneq', '\\triangleq',
    '\\varrho', '\\emptyset', '\\rightleftharpoons', '\\Vdash', '\\otimes', '\\subset', '\\ast', '\\lfloor',
    '\\hookrightarrow', '\\cong', '\\coth', '\\bullet', '\\sqsubseteq', '\\ell', '\\perp', '\\varpi',
    '\\propto', '\\bot', '\\ominus', '\\supseteq', '\\supset', '\\not', '\\rfloor', '\\odot', '\\csc',
    '\\sim', '\\lceil', '\\rceil', '\\lVert', '\\gg', '\\inf', '\\sup', '\\triangle', '\\lnot',
    '\\parallel', '\\angle', '\\{', '\\}', '\\Pr', '\\limits',
)

#: ``ordinary_chars`` (88 tokens)
ORDINARY_CHARS: tuple[str, ...] = (
    '!', "'", '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':',
    ';', '<', '=', '>', '?', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P',
    'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k',
    'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '[', ']', '^', '_', '{', '|',
    '}', '\\#', '\\&', '\\%',
)

#: ``delete_chars`` (20 tokens)
DELETE_CHARS: tuple[str, ...] = (
    '\\Q', '\\Z', '\\N', '\\P', '\\rm', '\\varepsilon', '\\varphi', '\\R', '\\vartheta', '\\mathtt',
    '\\text', '\\mathfrak', '\\bigcap', '\\bigoplus', '\\bigvee', '\\bigwedge', '\\bigcirc',
    '\\smallsetminus', '\\bigcup', '\\pmod',
)

#: The official ``latex_categories`` mapping (list name → tokens), as the parser reads it.
LATEX_CATEGORIES: dict[str, tuple[str, ...]] = {
    "double_arg_cmds": DOUBLE_ARG_CMDS,
    "single_arg_cmds": SINGLE_ARG_CMDS,
    "optional_bracket_single_arg_cmds": OPTIONAL_BRACKET_SINGLE_ARG_CMDS,
    "big_operator_cmds": BIG_OPERATOR_CMDS,
    "ordinary_cmds": ORDINARY_CMDS,
    "ordinary_chars": ORDINARY_CHARS,
    "delete_chars": DELETE_CHARS,
}

# ------------------------------------------------------------------------------------------------ normalizer
# Lists used by :mod:`unimumer.latex.normalize` (the official ``*_normalized`` test sets). They extend the parser's
# lists with the LaTeX commands whose braced arguments are structural (the braces after them are never removed).

#: Two-argument commands: the parser's list plus the stacking commands.
NORM_TWO_ARG_CMDS: frozenset[str] = frozenset(DOUBLE_ARG_CMDS) | {"\\overset", "\\underset", "\\stackrel"}
#: One-argument commands: accents and the parser's one-argument list, font / text commands, ``\sqrt``-like.
NORM_ONE_ARG_CMDS: frozenset[str] = frozenset(SINGLE_ARG_CMDS) | frozenset(OPTIONAL_BRACKET_SINGLE_ARG_CMDS) | {
    "\\mathbb", "\\mathbf", "\\mathcal", "\\mathit", "\\mathsf", "\\mathscr", "\\boldsymbol", "\\bm",
    "\\operatorname", "\\mbox", "\\hbox", "\\textbf", "\\textit", "\\textrm", "\\mathring", "\\underleftarrow",
    "\\underrightarrow", "\\overleftrightarrow", "\\boxed", "\\phantom", "\\cancel",
}
#: Big operators after which (and after whose scripts) a braced group is kept: the integral / sum family.
NORM_BIG_OPERATORS: frozenset[str] = frozenset(BIG_OPERATOR_CMDS) - {"\\lim"}
#: R1 token rewrites.
NORM_TOKEN_MAP: dict[str, str] = {"\\dots": "\\ldots", "\\le": "\\leq", "\\ge": "\\geq"}
#: R8: the only letter groups that become an operator command (``{ l o g }`` → ``\log``); the official normalised
#: sets gain no other operator command, so any other spelled name (``{ m a x }``, ``{ t a n }``) stays letters.
NORM_OPERATOR_NAMES: frozenset[str] = frozenset({"Pr", "log", "sin", "cos", "ln"})
#: R7: outer delimiters folded into a matrix environment (opening token, closing token) → environment.
NORM_MATRIX_DELIMS: dict[tuple[str, str], str] = {
    ("(", ")"): "pmatrix",
    ("[", "]"): "bmatrix",
    ("\\{", "\\}"): "Bmatrix",
    ("|", "|"): "vmatrix",
    ("\\|", "\\|"): "Vmatrix",
    ("\\lbrack", "\\rbrack"): "bmatrix",
    ("\\lbrace", "\\rbrace"): "Bmatrix",
    ("\\vert", "\\vert"): "vmatrix",
    ("\\lvert", "\\rvert"): "vmatrix",
    ("\\Vert", "\\Vert"): "Vmatrix",
    ("\\lVert", "\\rVert"): "Vmatrix",
}
#: R3: style commands dropped with their braces, their content kept as it is (``\operatorname { m a x }`` →
#: ``m a x``, the letter-by-letter spelling of the official gt).
NORM_UNWRAP_CMDS: frozenset[str] = frozenset({"\\mathrm", "\\operatorname"})
