"""The official UniMERNet CDM toolkit versions that ExpRate@CDM can reproduce: one :class:`Toolkit` declaration each.

Input: a version name (``--toolkit``, :func:`get_toolkit`). Output: the frozen :class:`Toolkit` whose parameters
:mod:`unimumer.evaluation.cdm.latex` (token labels, which tokens are split / merged), :mod:`unimumer.evaluation.cdm.match` (Hungarian
costs, RANSAC) and :func:`unimumer.evaluation.cdm.evaluate_cdm` (``settings["toolkit"]`` of every result) read. Raises
:class:`ValueError` for an unknown name. Rendering does not depend on the version (one render cache for both)
except where a version colours a token differently (``\\not =``, ``\\dotsc``).

Versions (opendatalab/UniMERNet, ``cdm/``; our own implementation of their decisions, nothing copied):

- ``2025-09`` (default) — commit 5a2c80d9 (2025-09-28), the toolkit as changed by commit 9bfea71 (2025-06-16):
  RANSAC up to 5 rounds, min_samples 2, 20 px; tokens equal only after normalisation cost 0.005; order positions
  divided by the longer token list; the larger token-normalisation map (``\\rightarrow`` → ``\\to``, dot-like glyphs,
  ``\\parallel`` ≡ ``\\|``, ``\\colon`` ≡ ``:``, ``\\var…`` ≡ plain…); ``\\not`` is its own token; every
  ellipsis variant (``\\dotsc``, ``\\dotsm``…) is three ``.`` tokens.
- ``2025-03`` — commit 415d534 (2025-03-25, "Accepted by CVPR 2025"), the last version before 9bfea71, current
  when the Uni-MuMER paper's ExpRate@CDM column was computed (on the paper's CROHME predictions it gives an average
  of 82.89, the paper 82.86; ours 82.86): RANSAC up to 3 rounds, min_samples 3, 25 px (≤ 3
  assigned pairs are all accepted); normalised-equal tokens cost 0.05; order positions divided by each list's own
  length; the smaller map (every ``…rightarrow`` / ``…leftarrow`` folded together, no dot, ``\\parallel``,
  ``\\colon`` or ``\\var`` equivalences); ``\\not X`` one token; only ``\\ldots \\cdots \\dots \\dotsb`` are three
  ``.`` tokens.

Both versions count function names letter by letter (``\\max`` ≡ ``m a x``, ``\\det`` ≡ ``d e t`` score F1 = 1 in
both versions' own per-sample results), although 9bfea71 extended the list ``latex_processor`` splits.

Source: ``cdm/evaluation.py``, ``cdm/modules/visual_matcher.py`` and ``cdm/modules/latex_processor.py`` of
opendatalab/UniMERNet at the two commits (Apache-2.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .latex import DOTS, EQUIVALENT

#: equivalences that only commit 9bfea71 introduced (absent from the 2025-03 map)
_ONLY_2025_09 = frozenset(
    r"""\cdotp \ldotp \dot \Dot \parallel \colon \slash \dag \ddag \Ddot \Bar \Vec \textless \textgreater
    \textbackslash \lbrace \rbrace \lbrack \rbrack""".split())
#: 2025-03: ``\\to``, ``\\rightarrow``, ``\\leftarrow``, ``\\leftrightarrow`` normalise to one token (its
#: ``\\left`` / ``\\right`` prefix stripping also hit the arrows), ``\\longrightarrow`` ≡ ``\\Longrightarrow`` and
#: ``\\longleftarrow`` ≡ ``\\Longleftarrow`` (the ``…rightarrow`` / ``…leftarrow`` suffix rules)
_ARROWS_2025_03 = {
    r"\to": r"\rightarrow", r"\leftarrow": r"\rightarrow", r"\gets": r"\rightarrow",
    r"\leftrightarrow": r"\rightarrow", r"\longrightarrow": r"\Longrightarrow", r"\implies": r"\Longrightarrow",
    r"\longleftarrow": r"\Longleftarrow", r"\impliedby": r"\Longleftarrow",
}


@dataclass(frozen=True)
class Toolkit:
    """Parameters of one official CDM toolkit version (module docstring).

    ``ransac_*``: the iterative spatial check (rounds, min_samples — at most this many assigned pairs are all
    accepted —, residual threshold in px at 200 dpi, trials per round); ``equivalent_cost``: token cost of two
    tokens equal only after normalisation; ``order_by_longer``: order positions ``i / max(n, m)`` instead of
    ``i / n`` and ``j / m``; ``equivalent``: spelling → label (tokens with one label count as the same token);
    ``drop_var_prefix``: ``\\varepsilon`` ≡ ``\\epsilon``;
    ``split_dots``: ellipses written as three ``.`` tokens (others are one token); ``merge_not``: ``\\not X`` is one token.
    """

    name: str
    commit: str
    date: str
    ransac_rounds: int
    ransac_min_samples: int
    ransac_threshold_px: float
    ransac_max_trials: int
    equivalent_cost: float
    order_by_longer: bool
    equivalent: Mapping[str, str] = field(repr=False)
    drop_var_prefix: bool
    split_dots: frozenset[str] = field(repr=False)
    merge_not: bool

    def label(self, spelling: str) -> str:
        """Canonical label of a token as written (``\\le`` → ``\\leq``); equal labels are the same token."""
        token = self.equivalent.get(spelling, spelling)
        prefixes = (r"\var", r"\wide") if self.drop_var_prefix else (r"\wide",)
        for prefix in prefixes:
            if token.startswith(prefix) and len(token) > len(prefix):
                plain = "\\" + token[len(prefix):]
                return self.equivalent.get(plain, plain)
        return token

    def settings(self) -> dict:
        """The version as recorded in every result's ``settings["toolkit"]`` (JSON-ready)."""
        return {"version": self.name, "commit": self.commit, "date": self.date}


TOOLKITS: Mapping[str, Toolkit] = MappingProxyType({
    "2025-09": Toolkit(
        name="2025-09", commit="5a2c80d9", date="2025-09-28",
        ransac_rounds=5, ransac_min_samples=2, ransac_threshold_px=20.0, ransac_max_trials=50,
        equivalent_cost=0.005, order_by_longer=True,
        equivalent=MappingProxyType(dict(EQUIVALENT)), drop_var_prefix=True,
        split_dots=frozenset(DOTS), merge_not=False,
    ),
    "2025-03": Toolkit(
        name="2025-03", commit="415d534", date="2025-03-25",
        ransac_rounds=3, ransac_min_samples=3, ransac_threshold_px=25.0, ransac_max_trials=50,
        equivalent_cost=0.05, order_by_longer=False,
        equivalent=MappingProxyType({**{k: v for k, v in EQUIVALENT.items() if k not in _ONLY_2025_09},
                                     **_ARROWS_2025_03}),
        drop_var_prefix=False,
        split_dots=frozenset(r"\ldots \cdots \dots \dotsb".split()), merge_not=True,
    ),
})
#: the version used unless ``--toolkit`` / ``toolkit=`` says otherwise
DEFAULT_TOOLKIT = "2025-09"
#: the version names a ``--cdm-toolkit`` option accepts, default first
CHOICES = (DEFAULT_TOOLKIT, *(name for name in TOOLKITS if name != DEFAULT_TOOLKIT))
#: the version the Uni-MuMER paper's ExpRate@CDM figures were computed with
PAPER_TOOLKIT = "2025-03"


def get_toolkit(name: str | Toolkit | None = None) -> Toolkit:
    """The :class:`Toolkit` called ``name`` (default :data:`DEFAULT_TOOLKIT`; a :class:`Toolkit` is returned as is).
    Raises :class:`ValueError` for an unknown name."""
    if isinstance(name, Toolkit):
        return name
    key = DEFAULT_TOOLKIT if name is None else name
    if key not in TOOLKITS:
        raise ValueError(f"unknown CDM toolkit version {key!r} (expected one of {', '.join(TOOLKITS)})")
    return TOOLKITS[key]
