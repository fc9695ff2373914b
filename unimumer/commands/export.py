"""``unimumer export`` / ``scripts/export_model.py``: merge a LoRA adapter into its base model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..files import check_outputs
from ..training.export import export_merged
from .common import command_parser

DESCRIPTION = """\
Merge a LoRA adapter (LLaMA-Factory finetuning_type: lora output, PEFT format) into its base model and save a
full checkpoint ready for plain vLLM / transformers, with LLaMA-Factory's own export (llamafactory-cli export:
PeftModel.merge_and_unload, save_pretrained with the tokenizer and processor, an Ollama Modelfile).

Inputs:  --model   the base model the adapter was trained on (local folder or Hub id in the offline cache)
         --lora    the adapter folder (adapter_config.json + adapter_model.safetensors); checked against --model
                   first: a missing adapter or one trained on another base model -> error, nothing written
Output:  --output  a new folder: config.json, model*.safetensors (shards of --shard-size GB), tokenizer and
                   processor files, Modelfile; written to a temporary folder beside it and renamed at the end
Dtype:   --dtype auto (LLaMA-Factory's infer_dtype: the checkpoint's dtype, float32 checkpoints become bfloat16
         when the machine supports it), or bfloat16 / float16 / float32.
Errors:  bad input -> "error: ..." and exit 2; an existing --output -> error unless --overwrite.
Example: python scripts/export_model.py --model Qwen/Qwen2.5-VL-3B-Instruct \\
             --lora saves/qwen2.5-vl-3b/lora/sft/uni-mumer --output models/uni-mumer-3b-lora-merged
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/export_model.py``."""
    p = command_parser("export_model.py", DESCRIPTION)
    p.add_argument("--model", required=True, help="base model folder or Hub id (the adapter's base model)")
    p.add_argument("--lora", required=True, metavar="ADAPTER_DIR", help="LoRA adapter folder (PEFT format)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder of the merged model (must not exist)")
    p.add_argument("--template", default=None,
                   help="LLaMA-Factory template (default: from config.json's model_type: qwen2_5_vl -> qwen2_vl, "
                        "qwen3_vl -> qwen3_vl_nothink, qwen3_5 -> qwen3_5_nothink)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"),
                   help="dtype of the saved weights (LLaMA-Factory infer_dtype; default: auto)")
    p.add_argument("--shard-size", type=int, default=5, help="max shard size in GB (export_size; default: 5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/export_model.py`` (see :data:`DESCRIPTION`). Returns 0; raises :class:`InputError` on bad input."""
    a = build_parser().parse_args(argv)
    check_outputs(inputs=[a.model, a.lora], replaced=[a.output])
    out = export_merged(a.model, a.lora, a.output, template=a.template, dtype=a.dtype, shard_size=a.shard_size,
                        overwrite=a.overwrite)
    files = sorted(p.name for p in out.iterdir())
    print(f"merged {a.lora} into {a.model} -> {out} ({len(files)} files: {', '.join(files)})")
    return 0
