"""Well-known locations: the repository root, its ``data/`` folder and the shared reference folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DATASET_INFO = DATA_DIR / "dataset_info.json"
TRAIN_DIR = REPO_ROOT / "train"


def shared_dir() -> Path:
    """The shared reference folder: ``$UNIMUMER_SHARED`` or ``../shared`` next to the repository."""
    return Path(os.environ.get("UNIMUMER_SHARED", REPO_ROOT.parent / "shared"))
