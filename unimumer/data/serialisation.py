"""Streaming JSON: records read incrementally (``ijson`` / JSONL) and ShareGPT records serialised fast, byte-identical
to ``json.dumps(list, ensure_ascii=False, indent=…)``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import (
    iter_text_lines,
    json_array_item,
    one_line,
)


# ================================================================================ streaming JSON
def iter_records(path: str | os.PathLike) -> Iterator[Any]:
    """Records of a ``.jsonl`` file (one per line) or of a JSON array, read incrementally (bounded memory).

    JSON arrays are streamed with ``ijson`` (numbers come back as ``int`` / ``float``). Raises :class:`InputError`
    when the file is missing or not valid JSON / JSONL (naming the line where known).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if p.suffix.lower() == ".jsonl":
        for lineno, line in iter_text_lines(p):
            if line.strip():
                try:
                    yield json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise InputError(f"{p}:{lineno}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
        return
    import ijson

    with p.open("rb") as fh:
        head = fh.read(64).lstrip()
        if not head.startswith(b"["):
            raise InputError(f"{p}: expected a JSON array of records")
        fh.seek(0)
        try:
            yield from ijson.items(fh, "item", use_float=True)
        except ijson.JSONError as exc:
            if "UTF8" in str(exc):  # name the line of the first undecodable byte
                for _ in iter_text_lines(p):
                    pass
            raise InputError(f"{p}: not valid JSON ({one_line(exc)})") from None


def _serialise(item: Any, indent: int) -> str:
    """One array item as :func:`unimumer.files.write_json_stream` lays it out (indented one level).

    Plain ShareGPT records (``images`` strings, ``messages`` of ``from`` / ``value`` strings, in that key order)
    take a string template with the C string encoder of :mod:`json` (the pure-Python indenting encoder is the
    bottleneck of data building); anything else goes through ``json.dumps``. Both give the same bytes (tested).
    """
    if indent > 0 and type(item) is dict and len(item) == 2:
        fast = _fast_sharegpt(item, " " * indent)
        if fast is not None:
            return fast
    return json_array_item(item, indent)


def _fast_sharegpt(item: dict, p: str) -> str | None:
    from json.encoder import encode_basestring as enc

    keys = iter(item)
    if next(keys) != "images" or next(keys) != "messages":
        return None
    images, messages = item["images"], item["messages"]
    if type(images) is not list or type(messages) is not list or not images or not messages:
        return None
    if any(type(x) is not str for x in images):
        return None
    parts = [p, "{\n", p, p, '"images": [']
    parts.append(",".join(f"\n{p}{p}{p}{enc(x)}" for x in images))
    parts += ["\n", p, p, "],\n", p, p, '"messages": [']
    msgs = []
    for m in messages:
        if type(m) is not dict or len(m) != 2:
            return None
        k = iter(m)
        if next(k) != "from" or next(k) != "value" or type(m["from"]) is not str or type(m["value"]) is not str:
            return None
        msgs.append(f"\n{p}{p}{p}{{\n{p}{p}{p}{p}\"from\": {enc(m['from'])},\n{p}{p}{p}{p}\"value\": "
                    f"{enc(m['value'])}\n{p}{p}{p}}}")
    parts.append(",".join(msgs))
    parts += ["\n", p, p, "]\n", p, "}"]
    return "".join(parts)
