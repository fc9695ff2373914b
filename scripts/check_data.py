#!/usr/bin/env python
"""List which official test sets are present and complete under data/ (record counts, images) before any GPU
time is spent. See --help.

Exit 0: every requested set complete, 1: one is not (the table says why), 2: bad input. Logic: unimumer/data/check.py.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.check_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
