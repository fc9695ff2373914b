"""``unimumer check-config`` / ``scripts/check_config.py``: validate LLaMA-Factory training configs."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..training.check import check_configs
from ..training.config import split_cli_args
from .common import command_parser

DESCRIPTION = (
    "Validate LLaMA-Factory training configs (train/*.yaml) before launching, on any machine (no GPU and no\n"
    "model download needed).\n\n"
    "Inputs: one or more CONFIG.yaml and optional key=value overrides, applied to every config exactly as\n"
    "`llamafactory-cli train CONFIG key=value` / scripts/train.sh apply them (OmegaConf merge).\n\n"
    "Checks, per config:\n"
    "  1. LLaMA-Factory's own argument parser (llamafactory.hparams.get_train_args): unknown keys, invalid\n"
    "     combinations, the DeepSpeed JSON; run as rank 0 of a one-process torchrun launch (scripts/train.sh\n"
    "     always uses torchrun). Without a GPU, bf16/fp16 are parsed with use_cpu=true added and the report\n"
    "     says so (the file is not edited). The template must be a LLaMA-Factory template.\n"
    "  2. model_name_or_path: a local folder needs config.json; a Hub id (Qwen/...) is noted, not fetched.\n"
    "  3. every dataset / eval_dataset name is registered in DATASET_DIR/dataset_info.json (resolved with\n"
    "     LLaMA-Factory's get_dataset_list) and its file exists; --check-records also reads every record\n"
    "     (ShareGPT turns, one <image> per image, every image found as LLaMA-Factory finds it).\n"
    "Relative paths are resolved against the working directory (run from the repository root) or --workdir.\n\n"
    "Output: a report per config on stdout, first line `CONFIG: OK` or `CONFIG: INVALID`, then the lists of\n"
    "unregistered datasets and missing files.\n"
    "Exit status: 0 all configs valid, 1 at least one invalid, 2 bad input (unreadable config, malformed\n"
    "override, LLaMA-Factory not importable).\n\n"
    "Examples:\n"
    "  python scripts/check_config.py train/Uni-MuMER-train.yaml\n"
    "  python scripts/check_config.py train/*.yaml --registry-only\n"
    "  python scripts/check_config.py train/Uni-MuMER-Qwen3.5-2B.yaml dataset_dir=/mnt/data --check-records"
)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI of ``scripts/check_config.py`` (see its ``--help``). Exit 0: all valid, 1: some invalid, 2: bad input."""
    parser = command_parser("check_config.py", DESCRIPTION)
    parser.add_argument("args", nargs="+", metavar="CONFIG.yaml | key=value",
                        help="config files, then optional LLaMA-Factory key=value overrides")
    parser.add_argument("--registry-only", action="store_true",
                        help="check that dataset names are registered, not that their files exist (fresh checkout)")
    parser.add_argument("--check-records", action="store_true",
                        help="read every record of every dataset file and check its images (slow on the full data)")
    parser.add_argument("--workdir", metavar="DIR", help="resolve relative paths against DIR (default: current directory)")
    ns = parser.parse_args(argv)
    configs, overrides = split_cli_args(ns.args)
    if not configs:
        raise InputError("no config file given (expected train/<config>.yaml)")
    results = check_configs(configs, overrides, check_files=not ns.registry_only,
                            check_records=ns.check_records, workdir=ns.workdir)
    for r in results:
        print(r.render())
    n_bad = sum(not r.ok for r in results)
    print(f"{len(results) - n_bad} of {len(results)} config(s) valid")
    return 1 if n_bad else 0
