#!/usr/bin/env python
"""Build the EDL datasets NAME_error_find.json / NAME_error_fix.json from prediction files (gt, pred, image_path).

Error-driven learning of Uni-MuMER (paper Sec. 3.3), format of docs/edl.md; all logic is in
unimumer.edl.marking (run with --help for inputs, outputs and errors).
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.error_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
