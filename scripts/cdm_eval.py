#!/usr/bin/env python
"""ExpRate@CDM (Character Detection Matching) of a prediction file: --input PRED.json [--workers N] [--output M.json].

Renders gt and pred with pdflatex/pdftoppm, matches per-token boxes (Hungarian + RANSAC) and reports per-sample
recall / precision / F1 and ExpRate@CDM. All logic lives in unimumer.evaluation.cdm (see --help).
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.cdm import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
