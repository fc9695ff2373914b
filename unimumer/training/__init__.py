"""Training with LLaMA-Factory: config loading / overrides, config checking, adapter export.

- :mod:`unimumer.training.config`  a ``train/*.yaml`` with ``key=value`` overrides, merged as ``llamafactory-cli
  train`` does (OmegaConf);
- :mod:`unimumer.training.check`   ``scripts/check_config.py``: LLaMA-Factory's own argument parser plus the dataset
  registry / file checks;
- :mod:`unimumer.training.export`  ``scripts/export_model.py``: a LoRA adapter merged into its base model.
"""
