#!/usr/bin/env python
"""Generate Tree-CoT (_tree) or symbol-counting (_can) ShareGPT JSON from vanilla ShareGPT JSON; the official Uni-MuMER CLI (same options, naming, skip behaviour), byte-identical targets. See --help.

Logic: :mod:`unimumer.commands.tree`.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.tree import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
