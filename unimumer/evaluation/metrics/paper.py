"""The released Uni-MuMER ExpRate numbers (official BFlameSwift/Uni-MuMER README, "Benchmark Results"), as data.

ExpRate in percent, vLLM inference, temperature 0.2, max_tokens 2048, for the paper model (Qwen2.5-VL-3B, column
``3B``) and the four later backbones. Each test split stem (``data/<DATASET>/results*/<stem>_pred.json``) maps to
a paper row; ``protocol`` says whether that split is the one the paper number was measured on:

- CROHME 2023: the paper number is on the normalized split (``crohme2023_test_normalized``, 1,652 records);
- HME100K: the paper number is on the normalized 24,016-record subset without CJK (``hme100k_test_normalized``);
- Im2LaTeXv2 / MathWriting: the release does not say which of the raw / normalized splits was used, so both are
  compared (Im2LaTeXv2's two splits have the same 10,117 records);
- CROHME 2014/2016/2019 and MNE N1/N2/N3 have a single split.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InputError

#: Backbone columns of the released-results table, in the table's order; ``3B`` is the paper model.
MODELS: dict[str, str] = {
    "3B": "Uni-MuMER-3B (Qwen2.5-VL-3B, paper model)",
    "Qwen3.5-2B": "Uni-MuMER Qwen3.5-2B",
    "Qwen3.5-4B": "Uni-MuMER Qwen3.5-4B",
    "Qwen3-VL-2B": "Uni-MuMER Qwen3-VL-2B",
    "Qwen3-VL-4B": "Uni-MuMER Qwen3-VL-4B",
}
DEFAULT_MODEL = "3B"
_ALIASES = {"qwen2.5-vl-3b": "3B", "uni-mumer-3b": "3B", "paper": "3B"}

#: ``row label -> ExpRate per model`` (order of MODELS), verbatim from the official README.
_TABLE: dict[str, tuple[float, float, float, float, float]] = {
    "CROHME 2014": (82.25, 83.98, 82.56, 83.27, 82.35),
    "CROHME 2016": (78.29, 81.17, 78.20, 78.55, 79.34),
    "CROHME 2019": (79.82, 80.15, 75.98, 79.40, 78.98),
    "CROHME 2023": (69.52, 69.43, 66.74, 70.96, 69.17),
    "HME100K": (69.50, 70.43, 70.02, 69.31, 69.79),
    "Im2LaTeXv2": (76.99, 77.82, 77.20, 77.11, 77.46),
    "MathWriting": (53.03, 51.84, 54.32, 50.66, 53.15),
    "MNE N1": (75.89, 74.72, 69.76, 79.63, 70.51),
    "MNE N2": (57.89, 61.18, 54.93, 65.13, 52.96),
    "MNE N3": (46.72, 56.83, 56.69, 52.39, 54.44),
}


@dataclass(frozen=True)
class SplitInfo:
    """How a test split stem relates to the paper table.

    Attributes:
        stem: split stem (``crohme2023_test_normalized``).
        dataset: the ``data/`` folder it belongs to (``CROHME2023``).
        row: the paper row label (``CROHME 2023``).
        protocol: ``True`` when the paper number was measured on this split, ``None`` when the release does not
            say, ``False`` when the paper used a sibling split (then ``note`` names it and no difference is shown).
        note: a short explanation for the summary table ("" when none is needed).
        order: position in the paper's table (for sorting).
    """

    stem: str
    dataset: str
    row: str
    protocol: bool | None
    note: str
    order: int


_SPLITS = (
    SplitInfo("crohme_2014", "CROHME", "CROHME 2014", True, "", 0),
    SplitInfo("crohme_2016", "CROHME", "CROHME 2016", True, "", 1),
    SplitInfo("crohme_2019", "CROHME", "CROHME 2019", True, "", 2),
    SplitInfo("crohme2023_test", "CROHME2023", "CROHME 2023", False,
              "paper number is on the normalized split (1,652 records)", 3),
    SplitInfo("crohme2023_test_normalized", "CROHME2023", "CROHME 2023", True,
              "paper number is on this normalized split", 4),
    SplitInfo("hme100k_test", "HME100K", "HME100K", False,
              "paper number is on the normalized 24,016-record subset without CJK", 5),
    SplitInfo("hme100k_test_normalized", "HME100K", "HME100K", True,
              "paper number is on this normalized 24,016-record subset", 6),
    SplitInfo("im2latexv2_test", "Im2LaTeXv2", "Im2LaTeXv2", None,
              "release does not say raw or normalized (same 10,117 records)", 7),
    SplitInfo("im2latexv2_test_normalized", "Im2LaTeXv2", "Im2LaTeXv2", None,
              "release does not say raw or normalized (same 10,117 records)", 8),
    SplitInfo("mathwriting_test", "MathWriting", "MathWriting", None,
              "release does not say raw (7,644) or normalized (7,319)", 9),
    SplitInfo("mathwriting_test_normalized", "MathWriting", "MathWriting", None,
              "release does not say raw (7,644) or normalized (7,319)", 10),
    SplitInfo("N1", "MNE", "MNE N1", True, "", 11),
    SplitInfo("N2", "MNE", "MNE N2", True, "", 12),
    SplitInfo("N3", "MNE", "MNE N3", True, "", 13),
)
#: ``stem -> SplitInfo`` for every official test split.
SPLITS: dict[str, SplitInfo] = {s.stem: s for s in _SPLITS}


def resolve_model(name: str) -> str:
    """The canonical column name of a paper model (case-insensitive; ``Qwen2.5-VL-3B`` / ``paper`` → ``3B``).

    Raises :class:`InputError` listing the valid names.
    """
    for key in MODELS:
        if key.lower() == name.lower():
            return key
    if name.lower() in _ALIASES:
        return _ALIASES[name.lower()]
    raise InputError(f"unknown paper model {name!r} (choose from {', '.join(MODELS)})")


def split_info(stem: str) -> SplitInfo | None:
    """The :class:`SplitInfo` of a split stem, or ``None`` for a stem outside the official test sets."""
    return SPLITS.get(stem)


def paper_exprate(stem: str, model: str = DEFAULT_MODEL) -> float | None:
    """The released ExpRate (percent) of ``model`` for the paper row of split ``stem``; ``None`` if not a test split.

    Raises :class:`InputError` for an unknown model name. Source: the official README's "Benchmark Results".
    """
    info = SPLITS.get(stem)
    if info is None:
        return None
    return _TABLE[info.row][list(MODELS).index(resolve_model(model))]


def paper_rows(model: str = DEFAULT_MODEL) -> dict[str, float]:
    """``{paper row label: ExpRate}`` of one model, in the table's order."""
    i = list(MODELS).index(resolve_model(model))
    return {row: values[i] for row, values in _TABLE.items()}
