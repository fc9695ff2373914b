#!/usr/bin/env python
"""``make demo``: the whole Uni-MuMER pipeline offline on CPU on the bundled real CROHME sample.

Builds the five task datasets, validates every train/*.yaml, trains a tiny random Qwen2.5-VL with the paper config,
runs vLLM inference, scores the official CROHME predictions (byte-identical reports, ExpRate@CDM) and writes a
Markdown report with a chart under demo_output/. See ``python scripts/demo.py --help`` and :mod:`unimumer.apps.demo`.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install

from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
