"""LoRA adapters (PEFT format, as LLaMA-Factory's ``finetuning_type: lora`` saves them) at inference time.

:func:`check_adapter` validates an adapter folder against the base model *before any engine starts*, so that a
missing adapter or one trained on another base model is one ``error:`` line, not an engine traceback minutes later:

- the folder must exist and hold ``adapter_config.json`` (``peft_type: LORA``) and ``adapter_model.safetensors``
  (or ``adapter_model.bin``);
- **base model**: ``base_model_name_or_path`` of ``adapter_config.json`` is compared with ``--model``. When it names
  an existing local folder other than ``--model``, both ``config.json`` files must describe the same architecture
  (``model_type`` and the language model's hidden / intermediate size, layer and head counts); when it is a Hub id
  (or a folder that is not here) and differs from ``--model``, a warning is printed and the shapes decide;
- **shapes** (when ``--model`` is a local folder with safetensors weights): every LoRA pair of the adapter must sit
  on a module the base model has (matched by the module path from the first ``layers.`` / ``blocks.`` component, which
  is independent of the checkpoint's ``model.`` / ``model.language_model.`` prefix), with
  ``lora_A: (r, in_features)`` and ``lora_B: (out_features, r)`` matching that module's ``weight``.

The engines apply a checked adapter without merging it: vLLM through ``LLM(enable_lora=True, max_lora_rank=r)`` and a
``LoRARequest`` per ``generate`` call, transformers through ``peft.PeftModel.from_pretrained``. A merged full
checkpoint for plain vLLM is written by ``scripts/export_model.py`` (LLaMA-Factory's own export).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
_MODULE_TAIL = re.compile(r"(?:^|\.)((?:layers|blocks)\.\d+\..*)$")


@dataclass
class AdapterInfo:
    """A checked LoRA adapter.

    Attributes:
        path: the adapter folder (absolute).
        base_model: ``base_model_name_or_path`` of its ``adapter_config.json`` ("" when absent).
        rank: the LoRA rank ``r`` (the largest of ``rank_pattern`` too); vLLM needs ``max_lora_rank >= rank``.
        target_modules: as recorded by PEFT (module names or full module paths).
        warnings: notes printed by the CLIs (e.g. the adapter names another base model but its shapes match).
    """

    path: str
    base_model: str
    rank: int
    target_modules: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fingerprint(self) -> dict:
        """What identifies the adapter in the run settings of an output (path, base model, rank, weight size)."""
        weights = next((Path(self.path) / w for w in ADAPTER_WEIGHTS if (Path(self.path) / w).is_file()), None)
        return {"path": self.path, "base_model": self.base_model, "rank": self.rank,
                "weights_bytes": weights.stat().st_size if weights else None}


def _read_config(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the {what} is not a JSON object")
    return data


def _arch(config: dict) -> dict:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return {"model_type": config.get("model_type"), **{k: text.get(k) for k in _ARCH_KEYS}}


def _safetensors_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` from the safetensors headers only (no tensor is read)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: not a readable safetensors file ({exc})") from None
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


def _model_weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(_read_config(index, "weight index").get("weight_map", {}).values()))
        return [model_dir / n for n in names]
    single = model_dir / "model.safetensors"
    return [single] if single.is_file() else []


def _tail(name: str) -> str | None:
    m = _MODULE_TAIL.search(name)
    return m.group(1) if m else None


def _check_shapes(adapter: Path, model_dir: Path, rank_hint: int) -> None:
    weights = adapter / "adapter_model.safetensors"
    base_files = _model_weight_files(model_dir)
    if not weights.is_file() or not base_files:
        return  # .bin adapters / non-safetensors checkpoints: the name and architecture checks only
    lora = _safetensors_shapes([weights])
    base = {}
    for k, shape in _safetensors_shapes(base_files).items():
        if k.endswith(".weight") and (t := _tail(k[: -len(".weight")])) is not None:
            base.setdefault(t, shape)
    for key, a_shape in sorted(lora.items()):
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        b_shape = lora.get(key.replace(".lora_A.", ".lora_B."))
        tail = _tail(module)
        if tail is None or b_shape is None:
            continue
        if tail not in base:
            raise InputError(f"{adapter}: the adapter has LoRA weights for {tail}, which the base model {model_dir} "
                             "does not have (adapter trained on another base model)")
        out_f, in_f = base[tail][0], base[tail][-1]
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[1] != in_f or b_shape[0] != out_f:
            raise InputError(f"{adapter}: LoRA shapes of {tail} (A {list(a_shape)}, B {list(b_shape)}) do not fit the "
                             f"base model's weight {list(base[tail])} in {model_dir} (adapter trained on another "
                             "base model)")


def check_adapter(adapter_dir: str | os.PathLike, model: str) -> AdapterInfo:
    """Validate a LoRA adapter folder for the base model ``model`` (a folder or a Hub id); see the module docstring.

    Inputs: the adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``, e.g. a LLaMA-Factory LoRA
    ``output_dir``) and the ``--model`` value. Output: :class:`AdapterInfo`. Reads only JSON files and safetensors
    headers (no tensor is loaded). Raises :class:`InputError` (one line) for a missing folder or file, a non-LoRA
    adapter, or an adapter trained on another base model (architecture or LoRA shapes do not match).
    """
    path = Path(adapter_dir)
    if not path.is_dir():
        raise InputError(f"--lora {adapter_dir}: no such adapter folder")
    cfg_path = path / ADAPTER_CONFIG
    if not cfg_path.is_file():
        raise InputError(f"--lora {adapter_dir}: no {ADAPTER_CONFIG} there (not a PEFT adapter; a merged full model "
                         "goes to --model)")
    if not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
        raise InputError(f"--lora {adapter_dir}: no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    cfg = _read_config(cfg_path, "adapter config")
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise InputError(f"--lora {adapter_dir}: peft_type {cfg.get('peft_type')!r}, only LoRA adapters are supported")
    rank = int(cfg.get("r") or 0)
    for v in (cfg.get("rank_pattern") or {}).values():
        rank = max(rank, int(v))
    targets = cfg.get("target_modules") or []
    info = AdapterInfo(path=str(path.resolve()), base_model=str(cfg.get("base_model_name_or_path") or ""),
                       rank=rank, target_modules=sorted(targets) if isinstance(targets, list) else [str(targets)])

    model_dir = Path(model)
    model_local = (model_dir / "config.json").is_file()
    base = info.base_model
    base_dir = Path(base) if base else None
    same = bool(base) and (base == model or (base_dir.exists() and model_dir.exists()
                                            and base_dir.resolve() == model_dir.resolve()))
    if base and not same:
        if model_local and base_dir is not None and (base_dir / "config.json").is_file():
            a = _arch(_read_config(base_dir / "config.json", "model config"))
            b = _arch(_read_config(model_dir / "config.json", "model config"))
            if a != b:
                diff = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in a if a[k] != b[k])
                raise InputError(f"--lora {adapter_dir}: trained on {base}, which is another model than --model "
                                 f"{model} ({diff})")
        info.warnings.append(f"adapter {adapter_dir} was trained on {base}; applying it to {model} "
                             "(same architecture / shapes, assumed compatible)")
    if model_local:
        _check_shapes(path, model_dir, rank)
    return info


def print_warnings(info: AdapterInfo | None) -> None:
    """Print the adapter's warnings on stderr (``warning: ...``)."""
    for w in info.warnings if info else ():
        print(f"warning: {w}", file=sys.stderr)


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds ``rank`` (vLLM allows 1, 8, 16, 32, 64, 128, ...)."""
    for allowed in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= allowed:
            return allowed
    raise InputError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank (512)")
