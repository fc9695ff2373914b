#!/usr/bin/env python
"""Merge a LoRA adapter into its base model (LLaMA-Factory's own export) and save a full checkpoint for plain vLLM.
See --help. Logic: unimumer/training/export.py.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
