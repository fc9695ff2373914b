"""unimumer: reference reproduction of Uni-MuMER (NeurIPS 2025) for handwritten mathematical expression recognition.

Packages by pipeline stage (the layout: docs/DEVELOPING.md); heavy dependencies (torch, vllm, llamafactory) are
imported lazily by the code paths that need them.
"""

__version__ = "0.1.0"
