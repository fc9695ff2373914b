"""``scripts/export_model.py``: merge a LoRA adapter into its base model with LLaMA-Factory's own export.

Input: base model and adapter (checked first, :func:`unimumer.inference.adapters.check_adapter`). Output: a full
transformers checkpoint (tokenizer, processor, the family's chat template) that vLLM and transformers load without
peft, written into a temporary folder beside the output and renamed at the end. Details: docs/training.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError
from ..families import template_for


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
