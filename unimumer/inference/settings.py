"""Inference settings, each declared once as a dataclass field with its command-line flag.

- :class:`GenerationSettings`: decoding and model input (changes the outputs: part of the run fingerprint);
- :class:`EngineOptions`: which model and how the local engine runs it (``--model``, ``--dtype``, vLLM sizes);
- :class:`EndpointOptions`: the ``--backend openai`` request options.

A field made with :func:`option` carries its flag(s), help and choices in its metadata; ``Cls.add_cli_args(parser,
**defaults)`` adds the flags to a command's parser, ``Cls.from_args(namespace)`` reads them back. A command whose
default differs on purpose passes it as ``name=Default(value, "why")``; the reason is appended to the help text.
Workers, child processes and Ray actors get ``dataclasses.asdict(settings)`` and rebuild ``Cls(**d)``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING, dataclass, field
from typing import Any, NamedTuple

from .jobs import TRAIN_MAX_PIXELS, TRAIN_MIN_PIXELS

DTYPES = ("auto", "bfloat16", "float16", "float32")
#: ``--preprocessing`` choices (the input modes of :mod:`unimumer.inference.inputs`); the first is the default.
PREPROCESSING = ("official", "training")


class Default(NamedTuple):
    """A command's own default for a field (``value``) and why it differs from the dataclass default (``why``,
    appended to the flag's help)."""

    value: Any
    why: str


def option(default: Any = MISSING, *, help: str, flags: tuple[str, ...] = (), type: Any = None,
           choices: tuple | None = None, metavar: str | None = None, unset: bool = False,
           mode: str | None = None) -> Any:
    """A dataclass field with its command-line flag.

    ``help``: the flag's help (``{default}`` is replaced by the default shown); ``flags``: option strings (default
    ``--<name-with-dashes>``); ``type``: argparse type (default: the default's type; ``bool`` -> ``store_true``);
    ``unset=True``: the parser default is ``None`` (a command can tell "not given") and :meth:`CliSettings.from_args`
    then keeps the dataclass default; ``mode``: the field belongs to that input mode only (its fingerprint too).
    """
    meta = {"help": help, "flags": flags, "type": type, "choices": choices, "metavar": metavar, "unset": unset,
            "mode": mode}
    return field(default=default, metadata={"cli": meta})


def _flag(f: dataclasses.Field) -> str:
    """The first option string of a field (``--max-tokens`` for ``max_tokens``)."""
    return (f.metadata["cli"]["flags"] or (f"--{f.name.replace('_', '-')}",))[0]


class CliSettings:
    """Mixin of the settings dataclasses: flags from the field metadata, and back."""

    @classmethod
    def cli_fields(cls) -> list[dataclasses.Field]:
        """The fields that have a flag, in declaration order."""
        return [f for f in dataclasses.fields(cls) if "cli" in f.metadata]

    @classmethod
    def add_cli_args(cls, parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                     only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = (),
                     required: tuple[str, ...] = (), helps: dict[str, str] | None = None,
                     **defaults: Any) -> None:
        """Add the flags of the fields (``only`` these / not ``exclude``) to ``parser``.

        ``required``: fields whose flag is required; ``helps``: extra help text per field (appended);
        ``defaults``: a command's own default per field, a plain value or :class:`Default` (value + reason).
        """
        names = [f.name for f in cls.cli_fields()]
        unknown = set(defaults) | set(required) | set(helps or {}) | set(only or ()) | set(exclude)
        if unknown - set(names):
            raise TypeError(f"{cls.__name__}: no such option {sorted(unknown - set(names))}")
        for f in cls.cli_fields():
            if (only is not None and f.name not in only) or f.name in exclude:
                continue
            meta = f.metadata["cli"]
            given = defaults.get(f.name, MISSING)
            why = given.why if isinstance(given, Default) else None
            value = given.value if isinstance(given, Default) else given
            if value is MISSING:
                value = None if meta["unset"] else f.default
            shown = f.default if value is None and meta["unset"] else value
            text = meta["help"].replace("{default}", str(shown))
            if why:
                text += f"; {why}"
            if helps and f.name in helps:
                text += helps[f.name]
            kwargs: dict[str, Any] = {"dest": f.name, "help": text}
            if isinstance(f.default, bool):
                kwargs.update(action="store_true", default=bool(value))
            else:
                kwargs.update(default=value, type=meta["type"] or type(f.default))
                for k in ("choices", "metavar"):
                    if meta[k] is not None:
                        kwargs[k] = meta[k]
            if f.name in required:
                kwargs.update(required=True, default=None)
            parser.add_argument(*(meta["flags"] or (_flag(f),)), **kwargs)

    @classmethod
    def from_args(cls, a: argparse.Namespace, **overrides: Any):
        """The settings of a parsed namespace: every field whose flag was added (an ``unset`` flag left out keeps
        the dataclass default), then ``overrides``."""
        values = {}
        for f in cls.cli_fields():
            if not hasattr(a, f.name):
                continue
            v = getattr(a, f.name)
            if v is None and f.metadata["cli"]["unset"]:
                continue
            values[f.name] = v
        return cls(**{**values, **overrides})

    def to_argv(self) -> list[str]:
        """The flags that give these settings back through :meth:`add_cli_args` / :meth:`from_args` (for a child
        process): every field that differs from its dataclass default."""
        argv: list[str] = []
        for f in self.cli_fields():
            v = getattr(self, f.name)
            if v == f.default:
                continue
            flag = _flag(f)
            if isinstance(f.default, bool):
                argv += [flag] if v else []
            elif v is not None:
                argv += [flag, str(v)]
        return argv

    def asdict(self) -> dict:
        """``dataclasses.asdict``: what a worker / child / actor rebuilds with ``Cls(**d)``."""
        return dataclasses.asdict(self)


@dataclass
class GenerationSettings(CliSettings):
    """Sampling and model-input settings shared by every engine (each field's help says what it does).

    ``temperature == 0`` -> greedy. ``seed``: vLLM per request; transformers ``torch``'s RNG before each batch.
    ``preprocessing``: the input mode (:mod:`unimumer.inference.inputs`); the fields marked with a ``mode`` only
    apply to (and only count in the fingerprint of) that mode.
    """

    max_tokens: int = option(2048, help="maximum generated tokens (default: {default})")
    temperature: float = option(0.2, help="sampling temperature, 0 = greedy (default: {default})")
    top_p: float = option(0.8, help="nucleus sampling top-p when sampling (default: {default})")
    top_k: int = option(50, help="top-k when sampling (default: {default})")
    seed: int | None = option(0, help="sampling seed (default: {default})")
    preprocessing: str = option(
        "official", choices=PREPROCESSING,
        help="model input: official (default: the released evaluation's requests) or training (LLaMA-Factory's "
             "template and image resize, as in fine-tuning); docs/inference.md")
    min_pixels: int = option(TRAIN_MIN_PIXELS, unset=True, mode="training",
                             help="--preprocessing training: image_min_pixels (default: {default}, LLaMA-Factory's)")
    max_pixels: int = option(TRAIN_MAX_PIXELS, unset=True, mode="training",
                             help="--preprocessing training: image_max_pixels (default: {default}, the configs')")
    template: str | None = option(None, type=str, mode="training",
                                  help="--preprocessing training: LLaMA-Factory template (default: from the "
                                       "checkpoint's model_type)")

    @classmethod
    def refuse_other_mode_flags(cls, a: argparse.Namespace) -> None:
        """Refuse a flag of another input mode's field given on the command line (e.g. ``--max-pixels`` with
        ``--preprocessing official``). Raises :class:`~unimumer.errors.InputError` naming that mode's flags."""
        from ..errors import InputError

        for f in cls.cli_fields():
            mode = f.metadata["cli"]["mode"]
            if mode not in (None, a.preprocessing) and getattr(a, f.name, None) is not None:
                flags = [_flag(g) for g in cls.cli_fields() if g.metadata["cli"]["mode"] == mode]
                raise InputError(f"{' / '.join(flags)} apply to --preprocessing {mode} only")

    def check(self) -> None:
        """Refuse values no engine accepts. Raises :class:`~unimumer.errors.InputError` naming the flag."""
        from ..errors import InputError

        for name in ("max_tokens", "min_pixels", "max_pixels"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1")
        if self.temperature < 0:
            raise InputError("--temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise InputError("--top-p must be in (0, 1]")
        if self.min_pixels > self.max_pixels:
            raise InputError("--min-pixels must not exceed --max-pixels")

    def fingerprint_parts(self) -> tuple[dict, dict]:
        """``(common, mode)``: the settings that change outputs in every input mode (declaration order), and
        those of the current mode only (named by the mode, :mod:`unimumer.inference.inputs`)."""
        from .inputs import input_mode

        common = {f.name: getattr(self, f.name) for f in self.cli_fields() if f.metadata["cli"]["mode"] is None}
        mode = {k: getattr(self, k) for k in input_mode(self.preprocessing).fingerprint_fields}
        return common, mode

    def as_dict(self) -> dict:
        """The settings that change outputs (stored in progress files to refuse mixing two runs)."""
        common, mode = self.fingerprint_parts()
        return {**common, **mode}


@dataclass
class EngineOptions(CliSettings):
    """The model and how a local engine runs it (not decoding; ``dtype`` is part of the run fingerprint)."""

    model: str | None = option(None, type=str, help="model folder or Hugging Face id (offline cache)")
    lora: str | None = option(
        None, type=str, metavar="ADAPTER_DIR",
        help="LoRA adapter folder (PEFT adapter_config.json + adapter_model.safetensors, e.g. a LLaMA-Factory "
             "finetuning_type: lora output_dir) applied unmerged on top of --model: vLLM LoRA requests, peft for "
             "--backend hf. Checked before any engine starts (missing, or trained on another base model -> error). "
             "Merge it into a full model instead with scripts/export_model.py")
    dtype: str = option("auto", choices=DTYPES,
                        help="model dtype (default: auto = the checkpoint's; the released models are bf16)")
    tensor_parallel_size: int = option(1, help="GPUs per engine (vLLM; default: {default})")
    max_model_len: int | None = option(
        None, type=int, help="vLLM context length (default: max-tokens + image tokens at max-pixels + 1024)")
    gpu_memory_utilization: float = option(0.9, help="vLLM (default: {default})")
    enforce_eager: bool = option(
        False, help="vLLM: skip graph compilation / CUDA graphs (faster start, slower decoding; small jobs, CPU)")

    def engine_kwargs(self) -> dict:
        """The keyword arguments of :func:`unimumer.inference.engines.make_engine` (all but ``model``)."""
        d = self.asdict()
        del d["model"]
        return d


@dataclass
class EndpointOptions(CliSettings):
    """``--backend openai``: a model behind an OpenAI-compatible chat-completions endpoint."""

    base_url: str | None = option(None, type=str, help="endpoint up to /v1, e.g. http://127.0.0.1:8000/v1")
    api_model: str | None = option(None, type=str, help="the served model name sent with every request")
    api_key_env: str | None = option(
        None, type=str, metavar="VAR",
        help="name of the environment variable holding the API key (the key itself is never a flag and never "
             "stored); default: no key (a server started without --api-key)")
    max_concurrency: int = option(8, help="requests in flight at once (default: {default})")
    request_timeout: float = option(600.0, help="seconds per request (default: 600)")
    max_retries: int = option(
        5, help="retries per request on 408/409/429/5xx and connection errors, exponential backoff 0.5 s .. 8 s "
                "(default: {default}); a request still failing is an error record")

    def engine_kwargs(self) -> dict:
        """The keyword arguments of :func:`unimumer.inference.engines.make_engine` for ``openai``."""
        d = self.asdict()
        d["timeout"] = d.pop("request_timeout")
        return d

    @classmethod
    def add_group(cls, parser: argparse.ArgumentParser) -> None:
        """Add the options as their own help group."""
        cls.add_cli_args(parser.add_argument_group(
            "--backend openai (any model behind an OpenAI-compatible chat-completions endpoint)"))
