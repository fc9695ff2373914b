"""The official text metrics and their byte-identical ``*_results.txt`` report.

``calculator.evaluate`` (records -> the official keys), ``report.format_report``, ``paper`` (released numbers),
``summary`` (cross-dataset table), ``run`` (inputs, CDM and canonical results of ``unimumer eval``). Definitions:
docs/evaluation.md. Never imports torch or nltk.
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
