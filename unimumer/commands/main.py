"""``unimumer <command> [options]``: one entry point for every command (``[project.scripts]``).

Each command is a module with ``main(argv) -> int``; it is imported only when run, so ``unimumer --help`` is fast.
The official script paths (``scripts/*.py``, ``preprocess/*.py``) call the same ``main``.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

#: stage heading → {command: (module holding ``main``, official script, one-line summary)}
STAGES: dict[str, dict[str, tuple[str, str, str]]] = {
    "data": {
        "prompts": ("unimumer.commands.prompts", "preprocess/make_hmer_prompts.py",
                    "vanilla ShareGPT prompt files from CROHME-style folders or {image, latex} JSON"),
        "mathnet": ("unimumer.commands.mathnet", "preprocess/make_mathnet_hmer_data.py",
                    "the official prompt-data pipeline (process / prompt-only)"),
        "normalize": ("unimumer.commands.normalize", "preprocess/normalize_latex.py",
                      "normalize the LaTeX of prediction / ShareGPT files"),
        "tree": ("unimumer.commands.tree", "preprocess/make_unimumer_tree_data.py",
                 "Tree-CoT / symbol-counting ShareGPT JSON (official CLI)"),
        "build-data": ("unimumer.commands.build_data", "preprocess/build_training_data.py",
                       "one training set: NAME / _tree / _can, registered in dataset_info.json"),
        "prepare-data": ("unimumer.commands.prepare_data", "scripts/prepare_released_data.py",
                         "import the released training data (parquet) as ShareGPT JSON"),
        "check-data": ("unimumer.commands.check_data", "scripts/check_data.py",
                       "which official test sets are present and complete"),
    },
    "error-driven learning": {
        "error-data": ("unimumer.commands.error_data", "preprocess/make_error_data.py",
                       "error_find / error_fix datasets from prediction files"),
        "error-corpus": ("unimumer.commands.error_corpus", "preprocess/build_error_corpus.py",
                         "cross-fold error corpus: K-fold training, sampling, EDL datasets"),
    },
    "training": {
        "check-config": ("unimumer.commands.check_config", "scripts/check_config.py",
                         "validate LLaMA-Factory training configs"),
        "export": ("unimumer.commands.export", "scripts/export_model.py",
                   "merge a LoRA adapter into its base model"),
        "tiny-model": ("unimumer.commands.tiny_model", "scripts/make_tiny_model.py",
                       "a tiny offline Qwen VLM checkpoint for tests"),
    },
    "inference": {
        "infer": ("unimumer.commands.infer", "scripts/vllm_infer.py",
                  "batch inference on a folder of prompt files"),
        "predict": ("unimumer.commands.predict", "scripts/predict.py", "print the LaTeX read from a few images"),
        "serve": ("unimumer.commands.serve", "scripts/serve.py", "web page and JSON API of a model"),
    },
    "evaluation": {
        "eval": ("unimumer.commands.eval", "scripts/eval_metrics_calculator.py",
                 "official metrics and <stem>_results.txt reports"),
        "cdm": ("unimumer.commands.cdm", "scripts/cdm_eval.py", "ExpRate@CDM of a prediction file"),
        "analyze": ("unimumer.commands.analyze", "scripts/analyze_errors.py",
                    "error analysis and A-vs-B comparison of prediction files"),
        "summary": ("unimumer.commands.summary", "scripts/summarize_results.py",
                    "one table of every scored split next to the paper"),
    },
    "all stages": {
        "demo": ("unimumer.commands.demo", "scripts/demo.py", "the whole pipeline offline on the bundled sample"),
    },
}
#: every command → (module, official script, summary)
COMMANDS = {name: spec for group in STAGES.values() for name, spec in group.items()}


def usage() -> str:
    """The text of ``unimumer --help``."""
    lines = ["usage: unimumer <command> [options]   (unimumer <command> --help for its options)", ""]
    for stage, group in STAGES.items():
        lines.append(f"{stage}:")
        lines += [f"  {name:<13} {summary}" for name, (_, _, summary) in group.items()]
    lines += ["", "Each command is also an official script (e.g. unimumer eval = scripts/eval_metrics_calculator.py)."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``unimumer COMMAND ARGS``; returns the exit code (2 for an unknown command)."""
    from ..cli import run_main
    from .common import invoked_as

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"error: unknown command {name!r}{hint}; unimumer --help lists the commands", file=sys.stderr)
        return 2
    command = importlib.import_module(COMMANDS[name][0])
    with invoked_as(f"unimumer {name}"):
        return run_main(command.main, rest)


if __name__ == "__main__":
    sys.exit(main())
