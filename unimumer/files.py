"""JSON, ShareGPT and ``dataset_info.json`` helpers shared by every builder, inference and metric.

File conventions (the official release's files):

- training / prompt files are LLaMA-Factory ShareGPT JSON arrays written with ``ensure_ascii=False, indent=4``;
- prediction files (``*_pred.json``) are JSON arrays written with ``indent=2``;
- every output is written atomically (temporary file in the same folder, then ``os.replace``), so an interrupted
  job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .errors import InputError

IMAGE_TOKEN = "<image>"


def _umask_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` would give (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _mkstemp_beside(p: Path) -> tuple[int, str]:
    """A temporary file in ``p``'s folder, with normal file permissions (mkstemp alone gives 0600)."""
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.fchmod(fd, _umask_mode())
    return fd, tmp
SHAREGPT_COLUMNS = {"messages": "messages", "images": "images"}


# --------------------------------------------------------------------------------------------------- reading
def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON document.

    Raises :class:`InputError` (one line) when the file is missing, is not a file, cannot be decoded as UTF-8
    or is not valid JSON.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    text = read_text(p)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{p}: not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def read_text(path: str | os.PathLike, *, what: str = "file") -> str:
    """The whole of a UTF-8 text file (a leading BOM is dropped).

    Raises :class:`InputError` (one line) when the file is missing or not a file, and when it is not UTF-8, naming
    the file and the line (1-based) of the first undecodable byte: ``f.txt:3: not UTF-8 text (invalid start byte)``.
    Every CLI that reads text (captions, prompt lists, LaTeX) goes through here or :func:`read_text_lines`.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{p}:{line}: not UTF-8 text ({exc.reason})") from None
    return text[1:] if text.startswith("\ufeff") else text


def iter_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, streamed (bounded memory; line ends kept).

    Raises :class:`InputError` naming the file and line when the file is missing or a line is not UTF-8.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{p}:{lineno}: not UTF-8 text ({exc.reason})") from None


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception message (library messages such as ijson's span lines)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return exc.__class__.__name__


def read_caption_lines(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """``[(line number, img_id, caption)]`` of a caption file (``img_id<TAB or spaces>tokens…`` per line).

    The one caption reader (CROHME / MNE ``caption.txt``, the official ``make_mathnet_hmer_data.py`` text input):
    blank lines are skipped, the caption is the rest of the line re-joined with single spaces (``""`` when the
    line holds only an id; callers decide). Errors as :func:`read_text` (non-UTF-8 → file and line).
    """
    out = []
    for lineno, line in enumerate(read_text(path, what="caption file").splitlines(), 1):
        parts = line.split()
        if parts:
            out.append((lineno, parts[0], " ".join(parts[1:])))
    return out


def read_text_lines(path: str | os.PathLike, *, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file (``str.splitlines``, no line ends). Errors as :func:`read_text`."""
    return read_text(path, what=what).splitlines()


def read_json_list(path: str | os.PathLike, *, allow_empty: bool = False) -> list:
    """Load a JSON file that must hold a (non-empty, unless ``allow_empty``) array. Raises :class:`InputError`."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    if not data and not allow_empty:
        raise InputError(f"{path}: the JSON array is empty")
    return data


def read_json_or_jsonl(path: str | os.PathLike) -> list:
    """Load records from a ``.jsonl`` (one JSON object per line) or a ``.json`` array. Raises :class:`InputError`."""
    p = Path(path)
    if p.suffix.lower() != ".jsonl":
        return read_json_list(p)
    out = []
    for lineno, line in enumerate(read_text(p).split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InputError(f"{p}:{lineno}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
    return out


# --------------------------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` only if the block succeeds.

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. On any exception the temporary file is removed and ``path`` is
    left as it was: an interrupted job never leaves a half-written output. Parent folders are created.
    """
    p = Path(path)
    fd, tmp = _mkstemp_beside(p)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _nearest_existing(p: Path) -> Path:
    """``p`` or its nearest ancestor that exists (``os.path.lexists``: a dangling link counts as existing)."""
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe_folder(target: Path, shown: str) -> None:
    """Raise :class:`InputError` unless a file can be created where ``target`` (a folder, maybe not there yet) goes."""
    base = _nearest_existing(target)
    if not base.is_dir():
        raise InputError(f"{shown}: cannot write ({os.strerror(errno.ENOTDIR)}: {base})")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".unimumer-probe-", dir=base)
    except OSError as exc:
        raise InputError(f"{shown}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def check_outputs(
    inputs: Iterable[str | os.PathLike | None] = (),
    outputs: Iterable[str | os.PathLike | None] = (),
    dirs: Iterable[str | os.PathLike | None] = (),
    replaced: Iterable[str | os.PathLike | None] = (),
) -> None:
    """The one output-path check every CLI runs right after parsing, before any heavy work or model load.

    ``inputs``: files or folders the command reads (``None`` ignored); ``outputs``: files it writes (atomically,
    parent folders created); ``dirs``: folders it writes into (created with their parents); ``replaced``: folders
    it deletes and writes anew (also checked as ``dirs``).
    Raises :class:`InputError` (one line, exit 2 via ``run_main``), leaving every file as it was, when

    - an output is the same file as an input (same resolved path or same inode: also through a symbolic or hard
      link): ``OUT: is the input IN; refusing to overwrite an input (choose another output)``;
    - two outputs are the same file: ``OUT: given twice as an output``;
    - an input lies in (or is) a ``replaced`` folder: ``DIR: holds the input IN; ...``;
    - a file output is an existing folder, or a folder output an existing file;
    - nothing can be created there (a path below a regular file, ``/proc``, a read-only or full file system, no
      permission): ``PATH: cannot write (REASON)``; checked by creating and removing a probe file in the nearest
      existing folder, so no folder is created by the check.
    """
    all_ins = [Path(p) for p in inputs if p is not None]
    ins = [p for p in all_ins if os.path.isfile(p)]
    replaced = [Path(d) for d in replaced if d is not None]
    for d in replaced:
        top = os.path.realpath(d)
        for src in all_ins:
            real = os.path.realpath(src)
            if os.path.exists(src) and (real == top or real.startswith(top.rstrip(os.sep) + os.sep)):
                raise InputError(f"{d}: holds the input {src} and would be replaced; choose another output folder")
    seen: dict[str, Path] = {}
    files: list[Path] = []
    for raw in outputs:
        if raw is None:
            continue
        out = Path(raw)
        for src in ins:
            if os.path.realpath(out) == os.path.realpath(src) or (os.path.exists(out) and os.path.samefile(out, src)):
                raise InputError(f"{out}: is the input {src}; refusing to overwrite an input (choose another output)")
        key = os.path.realpath(out)
        if key in seen:
            raise InputError(f"{out}: given twice as an output (also {seen[key]})")
        seen[key] = out
        if out.is_dir():
            raise InputError(f"{out}: cannot write ({os.strerror(errno.EISDIR)})")
        files.append(out)
    for raw in [*dirs, *replaced]:  # folders first: the error names the folder the user gave
        if raw is None:
            continue
        d = Path(raw)
        if os.path.lexists(d) and not d.is_dir():
            raise InputError(f"{d}: cannot write ({os.strerror(errno.ENOTDIR)})")
        _probe_folder(d, str(d))
    for out in files:
        _probe_folder(out.parent, str(out))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; creates parent folders. Returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def dump_json(obj: Any, indent: int = 4) -> str:
    """Serialise like the released files: ``ensure_ascii=False`` and the given indent."""
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 4) -> Path:
    """Write ``obj`` as JSON (``ensure_ascii=False``, ``indent``) atomically. Returns the path."""
    return atomic_write_text(path, dump_json(obj, indent))


def json_array_item(item: Any, indent: int = 4) -> str:
    """``item`` serialised as one element of an ``indent``-indented JSON array (``ensure_ascii=False``)."""
    pad = " " * indent
    return pad + json.dumps(item, ensure_ascii=False, indent=indent).replace("\n", "\n" + pad)


class JsonArrayWriter:
    """Writes serialised elements (:func:`json_array_item`) to an open text file as a JSON array.

    The bytes equal ``json.dumps(list, ensure_ascii=False, indent=indent)``; call :meth:`finish` once at the end.
    ``n`` counts the elements written. Pair it with :func:`atomic_open` so that the file appears only when done.
    """

    def __init__(self, fh: IO):
        self.fh = fh
        self.n = 0

    def write(self, body: str) -> None:
        self.fh.write(("[\n" if self.n == 0 else ",\n") + body)
        self.n += 1

    def finish(self) -> None:
        self.fh.write("\n]" if self.n else "[]")


def write_json_stream(path: str | os.PathLike, items: Iterable[Any], indent: int = 4) -> int:
    """Write an iterable as a JSON array without holding it in memory, byte-identical to ``json.dump(list, indent)``.

    The file appears atomically when the iterable is exhausted. Returns the number of items written.
    """
    with atomic_open(path, "w") as fh:
        writer = JsonArrayWriter(fh)
        for item in items:
            writer.write(json_array_item(item, indent))
        writer.finish()
    return writer.n


# --------------------------------------------------------------------------------------------------- ShareGPT
def sharegpt_record(image: str, prompt: str, target: str) -> dict:
    """One LLaMA-Factory ShareGPT record: ``{"images": [image], "messages": [human "<image>"+prompt, gpt target]}``."""
    return {
        "images": [image],
        "messages": [
            {"from": "human", "value": IMAGE_TOKEN + prompt},
            {"from": "gpt", "value": target},
        ],
    }


def sharegpt_fields(record: Any, index: int | None = None) -> tuple[str, str, str]:
    """Return ``(image, prompt_without_<image>, target)`` of a ShareGPT record.

    Raises :class:`InputError` naming the record index when the structure is not the one above.
    """
    where = f"record {index}" if index is not None else "record"
    try:
        images = record["images"]
        msgs = record["messages"]
        human = next(m for m in msgs if m.get("from") in ("human", "user"))
        gpt = next(m for m in msgs if m.get("from") in ("gpt", "assistant"))
        image, prompt, target = images[0], human["value"], gpt["value"]
    except (KeyError, TypeError, IndexError, StopIteration, AttributeError):
        raise InputError(f"{where}: not a ShareGPT record with 'images' and human/gpt 'messages'") from None
    if not all(isinstance(v, str) for v in (image, prompt, target)):
        raise InputError(f"{where}: image path, prompt and target must be strings")
    if prompt.startswith(IMAGE_TOKEN):
        prompt = prompt[len(IMAGE_TOKEN):]
    return image, prompt, target


# --------------------------------------------------------------------------------------------------- registry
def dataset_info_entry(file_name: str) -> dict:
    """The ``dataset_info.json`` entry of a ShareGPT dataset (LLaMA-Factory's ``data/README.md``)."""
    return {"file_name": file_name, "formatting": "sharegpt", "columns": dict(SHAREGPT_COLUMNS)}


def register_datasets(dataset_info: str | os.PathLike, entries: Mapping[str, str | Mapping]) -> Path:
    """Merge ``{name: file_name or full entry}`` into ``dataset_info.json`` (created if absent), atomically.

    Other entries are kept untouched and the file stays sorted by insertion order; ``file_name`` values are
    written as given (LLaMA-Factory resolves them relative to the file's folder, its ``dataset_dir``).
    Raises :class:`InputError` if the existing file is not a JSON object.
    """
    p = Path(dataset_info)
    info = read_json(p) if p.exists() else {}
    if not isinstance(info, dict):
        raise InputError(f"{p}: expected a JSON object")
    for name, entry in entries.items():
        info[name] = dataset_info_entry(entry) if isinstance(entry, str) else dict(entry)
    write_json(p, info, indent=2)
    return p


def relative_file_name(path: str | os.PathLike, dataset_dir: str | os.PathLike) -> str:
    """``path`` relative to ``dataset_dir`` (POSIX separators) when inside it, else the absolute path."""
    p, d = Path(path).resolve(), Path(dataset_dir).resolve()
    try:
        return p.relative_to(d).as_posix()
    except ValueError:
        return str(p)
