#!/usr/bin/env python
"""Normalize the LaTeX of prediction / ShareGPT files like the official *_normalized test sets (docs/data-building.md). See --help.

Logic: :mod:`unimumer.commands.normalize`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.normalize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
