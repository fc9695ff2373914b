"""unimumer: reference reproduction of Uni-MuMER (NeurIPS 2025) for handwritten mathematical expression recognition.

Subpackages / modules (heavy dependencies such as torch, vllm and llamafactory are imported lazily, only by the
code paths that need them):

- :mod:`unimumer.tasks`    the task registry (prompts, target builders, answer extractors, dataset suffixes)
- :mod:`unimumer.files`    JSON / ShareGPT / ``dataset_info.json`` helpers, atomic writes
- :mod:`unimumer.images`   handwriting image loading (always RGB, black strokes on white)
- :mod:`unimumer.evaluation.metrics`  the official text metrics (ExpRate, edit score, BLEU-4, CER) and reports
- :mod:`unimumer.latex`    LaTeX tokenization, normalization, Tree-CoT and symbol counting
- :mod:`unimumer.edl`      error-driven learning data (error_find / error_fix)
- :mod:`unimumer.inference` vLLM / transformers batch inference
- :mod:`unimumer.training` LLaMA-Factory configs, dataset registry checks, released-data import
- :mod:`unimumer.evaluation.cdm`      ExpRate@CDM (Character Detection Matching)
"""

__version__ = "0.1.0"
