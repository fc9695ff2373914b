#!/usr/bin/env python
"""Error analysis of Uni-MuMER prediction files: token confusions (the EDL alignment), ExpRate / <=1 / <=2 by gt
length, Tree-CoT depth, structure kind and symbol repetition, and an A-vs-B comparison (fixed / broken samples,
McNemar's test). Writes DIR/analysis.json, DIR/report.md and, with --plot, PNG charts. Definitions: --help and
docs/analysis.md; logic in unimumer/evaluation/analysis/.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.analyze import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
