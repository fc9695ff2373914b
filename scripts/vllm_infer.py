#!/usr/bin/env python
"""Batch inference of a Uni-MuMER model on every prompt file of a folder (vLLM or transformers).

Official flags of the released script (--model, --input-dir, --output-dir, --suffix, --max-tokens, --temperature,
--top-p, --batch_size) plus --top-k, --seed, --task, --backend, --tensor-parallel-size, --data-parallel-size,
--preprocessing official|training (+ --template, --max-pixels / --min-pixels), --limit, --image-root. Writes
<stem><suffix>.json (official layout), <stem>_results.txt (official report) and <stem><suffix>.run.json (model +
settings); resumable. Run with --help for the full description.
Logic: unimumer.commands.infer, unimumer.inference.runner.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
