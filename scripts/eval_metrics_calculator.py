#!/usr/bin/env python
"""Score Uni-MuMER prediction files (``*_pred.json``) with the official metrics (ExpRate, Error <= 1/2/3, Mean Edit
Score, BLEU-4, official CER) and write the official ``<stem>_results.txt`` report, byte-identical to the released
reports. Directory mode scores every ``DIR/*_pred.json``. Bad input: ``error: ...`` and exit code 2.
Follows the official ``scripts/eval_metrics_calculator.py`` of BFlameSwift/Uni-MuMER; see ``--help``.
Logic: :mod:`unimumer.evaluation.metrics.run`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
