"""Training with LLaMA-Factory: dataset registry, config loading / overrides, config checking, released-data import.

- :mod:`unimumer.data.registry`  the 26 official training dataset names, the test sets, where each file lives
  under ``data/`` and the ``dataset_info.json`` entries (official ``train/*.yaml`` and ``data.zip``; data/README.md);
- :mod:`unimumer.training.config`    reading a ``train/*.yaml`` with ``key=value`` overrides exactly the way
  ``llamafactory-cli train`` does (OmegaConf merge);
- :mod:`unimumer.training.check`     ``scripts/check_config.py``: LLaMA-Factory's own argument parser plus the
  dataset registry / file checks;
- :mod:`unimumer.data.released`  ``scripts/prepare_released_data.py``: the released Hugging Face parquet data
  (``phxember/Uni-MuMER-Data``) → ShareGPT JSON + images + ``dataset_info.json`` under the official names.

Nothing here imports torch / transformers / llamafactory at module level.
"""
