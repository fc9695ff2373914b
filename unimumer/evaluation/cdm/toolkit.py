"""The official UniMERNet CDM toolkit versions ExpRate@CDM reproduces: one :class:`Toolkit` declaration each.

Input: a version name (``--toolkit``, :func:`get_toolkit`; ``2025-09`` default, ``2025-03`` the paper's). Output:
the frozen :class:`Toolkit` whose parameters the token labels (``latex``), matching (``match``) and
:func:`evaluate_cdm` read. Raises :class:`ValueError` for an unknown name. What differs between the versions:
docs/cdm.md ("Toolkit versions"). Source: ``cdm/`` of opendatalab/UniMERNet at commits 5a2c80d9 and 415d534
(Apache-2.0; our own implementation of their decisions, nothing copied).
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
