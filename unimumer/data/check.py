"""Which official test sets are present and complete under a data root — checked before any GPU time is spent.

Input: a data root in the official ``data.zip`` layout (BFlameSwift/Uni-MuMER README, "Dataset Preparation":
``data/<DATASET>/prompts/<split>.json``, image paths inside relative to the folder that holds ``data/``, e.g.
``./data/CROHME/2014/images/18_em_0.jpg``). For each requested test set (:data:`EXPECTED`, names of
:data:`unimumer.data.registry.TEST_DATASETS`) it counts the prompt file's records and the records whose image is
not on disk. Output: one :class:`SetCheck` per set and a printed table (set, expected, found, images missing,
status). A set is ``complete`` when its record count is the official one and every image is present.

Expected counts: the "Total Samples" of the official calculator's reports of the paper model on every split
(BFlameSwift/Uni-MuMER ``example_data/*/results/*_results.txt``, the records the official ``scripts/vllm_infer.py``
evaluates). The official README's model-zoo table prints 10,118 for Im2LaTeXv2 and 7,643 for MathWriting instead
of those reports' 10,117 and 7,644; a file with the README count is accepted too (:data:`ALSO_PUBLISHED`) and the
table says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import read_json_list
from ..paths import DATA_DIR
from .registry import TEST_DATASETS

#: test set (registered dataset name) → official record count, in the order of the official results table
EXPECTED: dict[str, int] = {
    "crohme_2014": 986,
    "crohme_2016": 1147,
    "crohme_2019": 1199,
    "crohme2023_test": 2300,
    "crohme2023_test_normalized": 1652,
    "hme100k_test": 24607,
    "hme100k_test_normalized": 24016,
    "im2latexv2_test": 10117,
    "im2latexv2_test_normalized": 10117,
    "mathwriting_test": 7644,
    "mathwriting_test_normalized": 7319,
    "mne_n1": 1875,
    "mne_n2": 304,
    "mne_n3": 1464,
}
#: the other count the official release prints for a set (README model-zoo table), accepted as complete
ALSO_PUBLISHED: dict[str, int] = {"im2latexv2_test": 10118, "mathwriting_test": 7643}

COMPLETE, INCOMPLETE, MISSING, UNREADABLE = "complete", "incomplete", "missing", "unreadable"


@dataclass
class SetCheck:
    """The state of one test set.

    Attributes:
        name: registered name (``crohme_2014``).
        prompt_file: where its prompt file should be.
        expected: the official record count.
        found: records in the prompt file (``None`` when the file is missing or unreadable).
        images_missing: records whose image is not on disk (``None`` when not checked).
        status: ``complete`` / ``incomplete`` / ``missing`` / ``unreadable``.
        note: why it is not complete, or which published count it matched.
    """

    name: str
    prompt_file: Path
    expected: int
    found: int | None = None
    images_missing: int | None = None
    status: str = MISSING
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == COMPLETE


def select_sets(spec: str | None) -> list[str]:
    """The set names of a ``--sets`` value: comma-separated set names and/or dataset folders (``CROHME``,
    ``MNE``, case-insensitive), ``None`` / ``all`` = every set. Order: :data:`EXPECTED`. Raises :class:`InputError`
    for an unknown name."""
    if spec is None or spec.strip().lower() in ("", "all"):
        return list(EXPECTED)
    wanted: set[str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        by_name = [n for n in EXPECTED if n == part.lower()]
        by_folder = [n for n in EXPECTED if TEST_DATASETS[n].folder.lower() == part.lower()]
        if not by_name and not by_folder:
            folders = sorted({TEST_DATASETS[n].folder for n in EXPECTED})
            raise InputError(f"unknown test set {part!r} (sets: {', '.join(EXPECTED)}; folders: {', '.join(folders)})")
        wanted.update(by_name or by_folder)
    return [n for n in EXPECTED if n in wanted]


def _image_of(record) -> str | None:
    images = record.get("images") if isinstance(record, dict) else None
    if isinstance(images, list) and images and isinstance(images[0], str) and images[0]:
        return images[0]
    return None


def check_set(name: str, data_dir: str | os.PathLike, image_root: str | os.PathLike | None = None,
              images: bool = True) -> SetCheck:
    """Check one test set under ``data_dir``.

    ``image_root``: the folder relative image paths start from (default: the parent of ``data_dir``, the official
    convention ``./data/...``); absolute paths are used as they are. ``images=False`` skips the image check.
    Never raises for a bad data file: a missing or unreadable prompt file is reported in the result.
    """
    spec = TEST_DATASETS[name]
    data = Path(data_dir)
    res = SetCheck(name, data / spec.file_name, EXPECTED[name])
    if not res.prompt_file.is_file():
        res.note = f"no {spec.file_name}"
        return res
    try:
        records = read_json_list(res.prompt_file, allow_empty=True)
    except InputError as exc:
        res.status, res.note = UNREADABLE, str(exc).removeprefix(f"{res.prompt_file}: ")
        return res
    res.found = len(records)
    notes = []
    if images:
        root = Path(image_root) if image_root is not None else data.resolve().parent
        missing = 0
        for rec in records:
            img = _image_of(rec)
            missing += img is None or not (Path(img) if Path(img).is_absolute() else root / img).is_file()
        res.images_missing = missing
        if missing:
            notes.append(f"{missing} image{'s' * (missing != 1)} not found under {root}")
    count_ok = res.found == res.expected or res.found == ALSO_PUBLISHED.get(name)
    if not count_ok:
        diff = abs(res.expected - res.found)
        notes.insert(0, f"{diff:,} record{'s' * (diff != 1)} "
                        f"{'short of' if res.found < res.expected else 'more than'} the official count")
    elif res.found != res.expected:
        notes.append(f"{res.found:,} = the official README's count")
    res.status = COMPLETE if count_ok and not res.images_missing else INCOMPLETE
    res.note = "; ".join(notes)
    return res


def check_data(data_dir: str | os.PathLike = DATA_DIR, sets: Sequence[str] | None = None,
               image_root: str | os.PathLike | None = None, images: bool = True) -> list[SetCheck]:
    """:func:`check_set` for every name of ``sets`` (default: all, in :data:`EXPECTED` order).

    Raises :class:`InputError` when ``data_dir`` is not a folder or a name is not an official test set."""
    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"{data}: data folder not found (unzip the official test data there, see README.md)")
    names = list(EXPECTED) if sets is None else list(sets)
    for n in names:
        if n not in EXPECTED:
            raise InputError(f"unknown test set {n!r}")
    return [check_set(n, data, image_root, images) for n in names]


def format_table(results: Sequence[SetCheck]) -> str:
    """The report: one row per set (set, expected, found, images missing, status, note) and a summary line."""
    head = ("set", "expected", "found", "images missing", "status")
    rows = [(r.name, f"{r.expected:,}", "-" if r.found is None else f"{r.found:,}",
             "-" if r.images_missing is None else f"{r.images_missing:,}", r.status + (f" ({r.note})" if r.note else ""))
            for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    right = (False, True, True, True, False)

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    done = sum(r.ok for r in results)
    summary = f"{done} of {len(results)} requested test sets complete"
    bad = [r.name for r in results if not r.ok]
    if bad:
        summary += f"; not complete: {', '.join(bad)}"
    return "\n".join([line(head), *(line(r) for r in rows), "", summary]) + "\n"
