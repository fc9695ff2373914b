"""Reading a LLaMA-Factory training config with ``key=value`` overrides, exactly like ``llamafactory-cli train``.

LLaMA-Factory 0.9.5 (``llamafactory.hparams.parser.read_args``) loads ``CONFIG.yaml`` with OmegaConf, merges
``OmegaConf.from_cli(argv[2:])`` (the ``key=value`` overrides) on top and converts the result to a plain dict;
:func:`load_config` does the same, so what ``scripts/check_config.py`` validates is what ``scripts/train.sh`` trains.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")


def split_cli_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split command-line words into ``(config files, key=value overrides)``.

    A word ending in ``.yaml`` / ``.yml`` / ``.json`` without ``=`` is a config; ``key=value`` is an override.
    Raises :class:`InputError` for any other word (LLaMA-Factory would silently ignore or misread it).
    """
    configs, overrides = [], []
    for a in args:
        if _OVERRIDE.match(a):
            overrides.append(a)
        elif a.lower().endswith((".yaml", ".yml", ".json")):
            configs.append(a)
        else:
            raise InputError(f"{a!r}: expected a config file (.yaml/.yml/.json) or a key=value override")
    return configs, overrides


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The argument dict LLaMA-Factory would train with: ``path`` (YAML or JSON) merged with ``overrides``.

    Inputs: a config file and ``key=value`` strings (OmegaConf CLI syntax, e.g. ``max_steps=2``,
    ``dataset_dir=/tmp/data``). Output: a plain ``dict``. Follows ``llamafactory.hparams.parser.read_args``.
    Raises :class:`InputError` when the file is missing, is not valid YAML / JSON, is not a mapping, or an
    override is not ``key=value``.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    bad = [o for o in overrides if not _OVERRIDE.match(o)]
    if bad:
        raise InputError(f"override {bad[0]!r}: expected key=value")
    try:
        if p.suffix.lower() == ".json":
            import json

            base = OmegaConf.create(json.loads(p.read_text(encoding="utf-8")))
        else:
            base = OmegaConf.load(p.absolute())
        cfg = OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_cli(list(overrides))))
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise InputError(f"{p}: cannot read the config ({first})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{p}: expected a mapping of LLaMA-Factory arguments, got {type(cfg).__name__}")
    return cfg


def dataset_names(value: Any) -> list[str]:
    """The dataset names of a ``dataset`` / ``eval_dataset`` value (``"a, b"`` or a list), as LLaMA-Factory splits them."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = [str(value)]
    return [s.strip() for s in items if s.strip()]
