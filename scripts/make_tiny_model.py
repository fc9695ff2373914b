#!/usr/bin/env python
"""Build a tiny (a few MB) randomly initialised Qwen VLM checkpoint offline: Qwen2.5-VL, Qwen3-VL or Qwen3.5.

Usage: scripts/make_tiny_model.py --family {qwen2_5_vl,qwen3_vl,qwen3_5} --output DIR [--seed N]
Writes a checkpoint that transformers, LLaMA-Factory and vLLM load like the real model (see --help and
unimumer/testing/tiny_models.py). Errors: 'error: ...' and exit code 2.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.tiny_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
