#!/usr/bin/env python
"""Validate LLaMA-Factory training configs (train/*.yaml): LLaMA-Factory's own argument parser, the template, the
model path, and every dataset registered in dataset_info.json with its file present. See --help.

Exit 0: valid, 1: invalid (the report lists what is missing), 2: bad input. Logic: unimumer/training/check.py.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.check_config import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
