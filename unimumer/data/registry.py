"""The dataset registry: official LLaMA-Factory dataset names, where their files live, their registry entries.

The 26 training datasets of the official ``train/*.yaml`` in official order (five base sets times the five tasks
of :mod:`unimumer.tasks`, plus ``mathwriting_symbols``) and the test sets, laid out under the data root
(``dataset_dir``) as the official ``data.zip``: data/README.md. ``file_name`` values are relative to the root.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..files import dataset_info_entry
from ..tasks import dataset_name

#: base training sets → folder under the data root (official ``data.zip`` folder names)
BASE_FOLDERS: dict[str, str] = {
    "crohme2023": "CROHME2023",
    "crohme_train": "CROHME",
    "hme100k_train": "HME100K",
    "im2latex_v2_train": "Im2LaTeXv2",
    "mathwriting_train": "MathWriting",
}
#: task order inside each base in the official list (alphabetical names: vanilla, can, error_find, error_fix, tree)
_TASKS = ("vanilla", "can", "error_find", "error_fix", "tree")
EXTRA_DATASETS: dict[str, str] = {"mathwriting_symbols": "MathWriting"}


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    Attributes:
        name: the LLaMA-Factory dataset name (``crohme_train_tree``).
        folder: its folder under the data root (``CROHME``).
        base: the base set it is built from (``crohme_train``; ``mathwriting_symbols`` for itself).
        task: the :mod:`unimumer.tasks` task (``vanilla``, ``tree``, ``can``, ``error_find``, ``error_fix``).
        file_name: the data file, relative to the data root (``CROHME/train/crohme_train_tree.json``).
        split: ``"train"`` or ``"test"``.
    """

    name: str
    folder: str
    base: str
    task: str
    file_name: str
    split: str = "train"


def _training_specs() -> list[DatasetSpec]:
    specs = []
    for base, folder in BASE_FOLDERS.items():
        for task in _TASKS:
            name = dataset_name(base, task)
            specs.append(DatasetSpec(name, folder, base, task, f"{folder}/train/{name}.json"))
    for name, folder in EXTRA_DATASETS.items():
        specs.append(DatasetSpec(name, folder, name, "vanilla", f"{folder}/train/{name}.json"))
    return sorted(specs, key=lambda s: s.name)


#: the 26 training datasets, in the official order (the order of the ``dataset:`` line of the official configs)
TRAINING_DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _training_specs()}

#: test sets: (folder, prompt-file stem) as in the official ``data.zip`` → dataset name
_TEST_FILES = {
    "CROHME": ("crohme_2014", "crohme_2016", "crohme_2019"),
    "CROHME2023": ("crohme2023_test", "crohme2023_test_normalized"),
    "HME100K": ("hme100k_test", "hme100k_test_normalized"),
    "Im2LaTeXv2": ("im2latexv2_test", "im2latexv2_test_normalized"),
    "MathWriting": ("mathwriting_test", "mathwriting_test_normalized"),
    "MNE": ("N1", "N2", "N3"),
}


def _test_specs() -> list[DatasetSpec]:
    out = []
    for folder, stems in _TEST_FILES.items():
        for stem in stems:
            name = f"mne_{stem.lower()}" if folder == "MNE" else stem
            out.append(DatasetSpec(name, folder, name, "vanilla", f"{folder}/prompts/{stem}.json", split="test"))
    return out


#: the test sets (vanilla prompt), registered too so that they can be used as ``eval_dataset``
TEST_DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _test_specs()}
ALL_DATASETS: dict[str, DatasetSpec] = {**TRAINING_DATASETS, **TEST_DATASETS}


def training_dataset_names() -> list[str]:
    """The 26 official training dataset names, in the official order (official ``train/*.yaml``)."""
    return list(TRAINING_DATASETS)


def dataset_info() -> dict[str, dict]:
    """The full ``data/dataset_info.json`` content: every training and test dataset, ShareGPT entries.

    Each entry is :func:`unimumer.files.dataset_info_entry` of the layout path (LLaMA-Factory's ShareGPT format:
    ``{"file_name", "formatting": "sharegpt", "columns": {"messages", "images"}}``).
    """
    return {name: dataset_info_entry(spec.file_name) for name, spec in ALL_DATASETS.items()}


def spec_for(name: str) -> DatasetSpec | None:
    """The :class:`DatasetSpec` of a registered name, or ``None`` when the name is not an official one."""
    return ALL_DATASETS.get(name)
