#!/usr/bin/env python
"""Build vanilla ShareGPT prompt files (training data or test sets) from a CROHME-style folder or a JSON/JSONL of {image, latex}; writes black-on-white images in the official layout. See --help.

Logic: :mod:`unimumer.commands.prompts`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.prompts import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
