"""Official Uni-MuMER text metrics (ExpRate, Error ≤ k, Mean Edit Score, BLEU-4, official CER), the byte-identical
``*_results.txt`` report, the paper's released numbers and the cross-dataset summary.

- :func:`evaluate` (``unimumer.evaluation.metrics.calculator``): ``evaluate(records) -> dict`` with the official keys;
- :func:`format_report` (``unimumer.evaluation.metrics.report``): the official text report;
- :mod:`unimumer.evaluation.metrics.paper`: released ExpRate numbers of the official README as data;
- :mod:`unimumer.evaluation.metrics.summary`: the cross-dataset table + bar chart (``unimumer summary``);
- :mod:`unimumer.evaluation.metrics.run`: inputs, CDM and canonical results of ``unimumer eval`` (parser:
  :mod:`unimumer.commands.eval`).

Nothing here imports torch (nor nltk: BLEU-4 is computed bit-identically without it); rapidfuzz, tqdm and
matplotlib are imported lazily.
"""

from .calculator import OFFICIAL_KEYS, corpus_bleu4, evaluate, evaluate_file, load_predictions, token_distance
from .report import format_report

__all__ = [
    "OFFICIAL_KEYS",
    "corpus_bleu4",
    "evaluate",
    "evaluate_file",
    "format_report",
    "load_predictions",
    "token_distance",
]
