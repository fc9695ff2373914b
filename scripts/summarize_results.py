#!/usr/bin/env python
"""Summarize Uni-MuMER results across datasets: a Markdown table of every test split found under DATA_ROOT
(``data/<DATASET>/results*/<stem>_pred.json``) or given as files - records, ExpRate, Error <= 1/2/3, BLEU-4,
ExpRate@CDM when ``<stem>_cdm.json`` exists - next to the paper's released ExpRate (the official README) with the
difference; ``--output summary.md`` and ``--plot chart.png`` (bar chart). Bad input: ``error: ...``, exit code 2.
Logic: :mod:`unimumer.evaluation.metrics.summary`; see ``--help``.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.summary import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
