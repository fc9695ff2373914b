"""Well-known locations: the repository root, its ``data/`` folder and the training configs."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DATASET_INFO = DATA_DIR / "dataset_info.json"
TRAIN_DIR = REPO_ROOT / "train"
