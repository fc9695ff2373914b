"""``scripts/export_model.py``: merge a LoRA adapter into its base model with LLaMA-Factory's own export.

LLaMA-Factory's ``export_model`` (the code behind ``llamafactory-cli export``) loads the base model, merges the
adapter (``PeftModel.merge_and_unload``), casts to the export dtype and saves a full transformers checkpoint with the
tokenizer and processor, which plain vLLM (``scripts/vllm_infer.py --model EXPORT_DIR``) and transformers load
without peft. This module only checks the inputs first (the adapter against the base model, see
:func:`unimumer.inference.adapters.check_adapter`), picks the chat template of the family, and writes the export
atomically (into a temporary folder beside the output, renamed at the end), so an interrupted export never leaves a
half-written model folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..families import template_for
from ..files import check_outputs

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
    p = argparse.ArgumentParser(prog="export_model.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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


def _template_for(model: str) -> str:
    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        raise InputError(f"{model}: not a local model folder; give --template (qwen2_vl, qwen3_vl_nothink, "
                         "qwen3_5_nothink)")
    model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    template = template_for(model_type)
    if template is None:
        raise InputError(f"{model}: model_type {model_type!r} has no known template; give --template")
    return template


def export_merged(model: str, lora: str, output: str | os.PathLike, *, template: str | None = None,
                  dtype: str = "auto", shard_size: int = 5, overwrite: bool = False) -> Path:
    """Merge ``lora`` into ``model`` with ``llamafactory.train.tuner.export_model`` and save it at ``output``.

    Returns the output folder. Raises :class:`InputError` for a missing / mismatched adapter, an existing output
    (without ``overwrite``), an unknown model type without ``template``, or an export LLaMA-Factory refuses.
    """
    from ..inference.adapters import check_adapter, print_warnings

    info = check_adapter(lora, model)
    print_warnings(info)
    out = Path(output)
    if out.exists() and not overwrite:
        raise InputError(f"--output {out} exists (use --overwrite to replace it)")
    if shard_size < 1:
        raise InputError("--shard-size must be >= 1")
    template = template or _template_for(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
        from llamafactory.train.tuner import export_model

        args = {"model_name_or_path": model, "adapter_name_or_path": info.path, "template": template,
                "finetuning_type": "lora", "export_dir": str(tmp), "export_size": shard_size,
                "export_device": "cpu", "infer_dtype": dtype, "trust_remote_code": True}
        try:
            export_model(args)
        except (ValueError, OSError, RuntimeError) as exc:
            raise InputError(f"LLaMA-Factory export failed: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        if not (tmp / "config.json").is_file():
            raise InputError(f"LLaMA-Factory export wrote no config.json into {tmp}")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/export_model.py`` (see :data:`DESCRIPTION`). Returns 0; raises :class:`InputError` on bad input."""
    a = build_parser().parse_args(argv)
    check_outputs(inputs=[a.model, a.lora], replaced=[a.output])
    out = export_merged(a.model, a.lora, a.output, template=a.template, dtype=a.dtype, shard_size=a.shard_size,
                        overwrite=a.overwrite)
    files = sorted(p.name for p in out.iterdir())
    print(f"merged {a.lora} into {a.model} -> {out} ({len(files)} files: {', '.join(files)})")
    return 0
