#!/usr/bin/env python
"""Convert the released Uni-MuMER training data (Hugging Face phxember/Uni-MuMER-Data, parquet configs such as
parquet_crohme_train, images inside) into ShareGPT JSON + images + dataset_info.json under the official dataset
names, with an explicit name map and a report of anything unmapped. See --help. Logic: unimumer/data/released.py.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from unimumer.cli import run_main  # noqa: E402
from unimumer.commands.prepare_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
