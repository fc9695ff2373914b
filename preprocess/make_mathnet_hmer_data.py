#!/usr/bin/env python
"""The official prompt-data CLI (`process` / `prompt-only`, BFlameSwift/Uni-MuMER preprocess/make_mathnet_hmer_data.py) without MathNet, KaTeX or Node. See --help.

Logic: :mod:`unimumer.data.mathnet`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.mathnet import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
