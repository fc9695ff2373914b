"""Batch inference for Uni-MuMER models: vLLM (default) or plain transformers, resumable and data-parallel.

Modules (torch / transformers / vLLM are imported only inside the functions that use them):

- :mod:`unimumer.inference.jobs`    engine-agnostic pieces: reading prompt files, prediction records, image
  paths, sharding, GPU groups;
- :mod:`unimumer.inference.progress` the resumable progress file, the atomic prediction-file write, counts;
- :mod:`unimumer.inference.engines` the two engines (``vllm`` and ``hf``) behind one ``generate`` call, prompts
  built with the model's own processor chat template and images through ``qwen-vl-utils``;
- :mod:`unimumer.inference.settings` the settings dataclasses (decoding, engine, endpoint) with their flags;
- :mod:`unimumer.inference.inputs`  the input modes (``official``, ``training``), one class each;
- :mod:`unimumer.inference.runner`  the run of ``scripts/vllm_infer.py`` (one engine for every file of an input
  folder, data-parallel worker processes, progress bars, reports; its parser: :mod:`unimumer.commands.infer`);
- :mod:`unimumer.inference.ray_executor` ``--executor ray``: the same engines as Ray Data actors over a cluster
  (manifest, checkpointed resume, merge into the local output path).

Output layout follows the released evaluation (official ``scripts/vllm_infer.py`` and ``example_data/*/results/``).
"""
