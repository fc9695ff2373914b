#!/usr/bin/env python
"""Serve a Uni-MuMER model: a web page (draw / upload a formula, get LaTeX) at / and a JSON API on the same port.

``serve.py --model DIR [--host 127.0.0.1] [--port 7860] [--backend auto|vllm|hf]``; ``GET /health``,
``POST /api/predict`` (multipart ``image``, optional ``task``). Run with --help for the full description.
Logic: unimumer.apps.serve.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.serve import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
