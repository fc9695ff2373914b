"""A small, real, five-task training set for smoke training (tests, CI, the demo).

Input: ``n`` images of a CROHME-style folder (default: the 24 bundled ``tests/fixtures/images/crohme_train``).
Output: the five ``crohme_train`` task datasets built with the project's own builders and registered in the data
root's ``dataset_info.json`` (:class:`SmokeData`; image paths relative to the root). **Test data only**: the EDL
candidates are the gt with one real confusion of the official model's CROHME 2014 predictions applied, not a
model's own cross-fold predictions.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..files import read_json_list, register_datasets, relative_file_name, write_json
from ..paths import REPO_ROOT
from ..tasks import dataset_name

BASE = "crohme_train"
FOLDER = "CROHME/train"
DEFAULT_CONFUSIONS = REPO_ROOT / "data" / "sample" / "official_predictions" / "crohme_2014.json"
#: 24 real CROHME train images, ``caption.txt`` in the order ``random.Random(0).sample`` drew them from the 8,834
#: sorted train ids (so the first ``n`` are the seed-0 sample of any ``n`` <= 24); see tests/fixtures/README.md
DEFAULT_SOURCE = REPO_ROOT / "tests" / "fixtures" / "images" / "crohme_train"


@dataclass
class SmokeData:
    """What :func:`build_smoke_data` wrote.

    Attributes:
        root: the data root (use as LLaMA-Factory ``dataset_dir``; holds ``dataset_info.json``).
        datasets: ``{dataset name: number of records}`` for the five tasks.
        images: the converted image files.
        captions: ``{img_id: LaTeX}`` of the sampled images.
        predictions: the prediction file the EDL datasets were built from.
    """

    root: Path
    datasets: dict[str, int] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)
    predictions: Path | None = None

    @property
    def names(self) -> list[str]:
        """The registered dataset names (comma-join them for LLaMA-Factory's ``dataset``)."""
        return list(self.datasets)


def read_captions(source: str | os.PathLike) -> dict[str, str]:
    """``{img_id: LaTeX}`` of a CROHME-style folder's ``caption.txt`` (``img_id<TAB>LaTeX`` lines).

    Raises :class:`InputError` when the file is missing or a line has no tab.
    """
    path = Path(source) / "caption.txt"
    if not path.is_file():
        raise InputError(f"{path}: caption file not found (expected a CROHME-style folder)")
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        img_id, sep, latex = line.partition("\t")
        if not sep:
            raise InputError(f"{path}:{lineno}: expected img_id<TAB>LaTeX")
        out[img_id.strip()] = latex.strip()
    return out


def mine_confusions(prediction_file: str | os.PathLike = DEFAULT_CONFUSIONS) -> dict[str, str]:
    """Single-token substitutions ``{gt token: predicted token}`` of a prediction file, most frequent per gt token.

    Uses :func:`unimumer.edl.align_edits` (the EDL alignment) on every wrong ``gt`` / ``pred`` pair and keeps the
    one-token ``replace`` edits. Raises :class:`InputError` if the file is not a prediction array.
    """
    from ..edl.marking import align_edits, tokenize

    counts: Counter = Counter()
    for rec in read_json_list(prediction_file):
        gt, pred = tokenize(str(rec.get("gt", ""))), tokenize(str(rec.get("pred", "")))
        if gt == pred:
            continue
        for e in align_edits(gt, pred):
            if e.kind == "replace" and len(e.old) == 1 and len(e.new) == 1 and e.new[0] not in "{}":
                counts[(e.new[0], e.old[0])] += 1
    best: dict[str, str] = {}
    for (gt_tok, pred_tok), _ in counts.most_common():
        best.setdefault(gt_tok, pred_tok)
    return best


def corrupt(latex: str, confusions: dict[str, str]) -> str:
    """A deterministic wrong candidate: the first token with a known confusion substituted, else the last token
    dropped (for a one-token caption: a ``?`` appended). Test data only (see the module docstring)."""
    toks = latex.split()
    for i, t in enumerate(toks):
        if t in confusions:
            return " ".join(toks[:i] + [confusions[t]] + toks[i + 1:])
    return " ".join(toks[:-1]) if len(toks) > 1 else f"{latex} ?"


def build_smoke_data(
    output: str | os.PathLike,
    source: str | os.PathLike | None = None,
    n: int = 24,
    seed: int | None = None,
    confusions_from: str | os.PathLike = DEFAULT_CONFUSIONS,
) -> SmokeData:
    """Build the five ``crohme_train*`` datasets from ``n`` real images of ``source`` under ``output``.

    Inputs: the output data root, a CROHME-style folder (default :data:`DEFAULT_SOURCE`), the number of
    images (``seed=None``: the first ``n`` of ``caption.txt``; an int: ``random.Random(seed).sample`` of the sorted
    ids), the prediction file the EDL confusions are mined from. Steps, all with the project's builders: :func:`unimumer.data.prompt_files.build_prompts_from_crohme`
    (images → ``output/CROHME/train/images/`` black on white, vanilla file ``output/CROHME/train/crohme_train.json``),
    :func:`unimumer.data.training_sets.build_training_set` (``crohme_train_tree`` / ``crohme_train_can``),
    :func:`unimumer.edl.write_edl_datasets` (``crohme_train_error_find`` / ``crohme_train_error_fix`` from the
    prediction file ``output/CROHME/train/smoke_pred.json``); all registered in ``output/dataset_info.json``.
    Image paths in the records are relative to ``output`` (the builders' convention: LLaMA-Factory finds them
    through ``media_dir`` = ``dataset_dir``). Output: :class:`SmokeData`.
    Raises :class:`InputError` when the source is missing or has fewer than ``n`` images with captions.
    """
    import tempfile

    from ..data.prompt_files import build_prompts_from_crohme
    from ..data.training_sets import build_training_set
    from ..edl.marking import write_edl_datasets

    src = Path(source) if source is not None else DEFAULT_SOURCE
    captions = read_captions(src)
    ids = [i for i in captions if (src / "img" / f"{i}.png").is_file()]  # caption.txt order
    if len(ids) < n:
        raise InputError(f"{src}: only {len(ids)} images with captions, {n} requested")
    chosen = sorted(ids[:n] if seed is None else random.Random(seed).sample(sorted(ids), n))
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    info = root / "dataset_info.json"
    with tempfile.TemporaryDirectory(prefix="crohme_subset_") as tmp:
        subset = Path(tmp)
        (subset / "img").mkdir()
        for img_id in chosen:
            (subset / "img" / f"{img_id}.png").symlink_to((src / "img" / f"{img_id}.png").resolve())
        (subset / "caption.txt").write_text("".join(f"{i}\t{captions[i]}\n" for i in chosen), encoding="utf-8")
        vanilla, _ = build_prompts_from_crohme(subset, data_root=root, dataset="CROHME", split="train",
                                               path_style="dataset_dir", workers=1)
    register_datasets(info, {BASE: relative_file_name(vanilla, root)})
    build_training_set(vanilla, BASE, tasks=("tree", "can"), dataset_info=info, workers=1)
    records = read_json_list(vanilla)
    data = SmokeData(root.resolve(), captions={i: captions[i] for i in chosen})
    data.images = [(root / r["images"][0]).resolve() for r in records]
    confusions = mine_confusions(confusions_from)
    preds = [{"gt": r["messages"][1]["value"], "pred": corrupt(r["messages"][1]["value"], confusions),
              "image_path": r["images"][0], "img_id": Path(r["images"][0]).stem} for r in records]
    data.predictions = write_json(root / FOLDER / "smoke_pred.json", preds, indent=2)
    write_edl_datasets([data.predictions], root / FOLDER, BASE, info)
    for task in ("vanilla", "tree", "can", "error_find", "error_fix"):
        name = dataset_name(BASE, task)
        data.datasets[name] = len(read_json_list(root / FOLDER / f"{name}.json", allow_empty=True))
    return data
