#!/usr/bin/env python
"""One command for a training set: vanilla ShareGPT -> NAME.json / NAME_tree.json / NAME_can.json, registered in dataset_info.json; streaming, all cores. See --help.

Logic: :mod:`unimumer.commands.build_data`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.build_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
