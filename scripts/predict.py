#!/usr/bin/env python
"""Print the LaTeX a Uni-MuMER model reads from each image: ``predict.py IMAGE [IMAGE ...] --model M``.

One line per image, IMAGE<TAB>LATEX (--plain: LATEX only). vLLM when a GPU is present, else transformers
(--backend). Run with --help for the full description. Logic: unimumer.commands.predict.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
