#!/usr/bin/env python
"""Cross-fold error corpus (Uni-MuMER paper Sec. 3.3, Fig. 4): K-fold LLaMA-Factory training, vLLM sampling of N
candidates per held-out image, wrong candidates -> NAME_error_find.json / NAME_error_fix.json.

Logic: unimumer.edl.corpus; parser: unimumer.commands.error_corpus (run with --help for inputs, outputs,
work-dir layout, defaults and errors).
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.error_corpus import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
