"""CPU environment defaults for the ``.venv`` built by ``env/setup_cpu_env.sh`` (installed there as a ``.pth`` hook).

On the CPU environment two settings are needed by every documented command (``scripts/vllm_infer.py``,
``scripts/predict.py``, ``scripts/check_config.py``, ``scripts/train.sh``, ``make demo``):

- ``VLLM_CPU_KVCACHE_SPACE`` (GiB of vLLM-CPU KV cache): vLLM 0.32's CPU default is 0.9 of the NUMA node's memory,
  which a shared or small machine cannot give, and the engine dies at start-up. Default here: ``1`` (the size the
  test suite and the demo use; enough for the tiny models and for batches of a few dozen images with a 3B model).
- ``DISABLE_VERSION_CHECK=1``: LLaMA-Factory 0.9.5 pins ``transformers<=5.6.0`` while vllm-cpu needs a newer
  transformers; the CPU environment installs LLaMA-Factory without its resolver and bypasses the check
  (``env/setup_cpu_env.sh``).

:func:`install` runs at interpreter start-up (the ``.pth`` line) and only ``setdefault``s: a value the user exported
(even an empty one) is never changed. It imports nothing. A GPU install (``pip install -r requirements.txt``) does
not get this hook, so nothing changes there.
"""

import os

DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1", "DISABLE_VERSION_CHECK": "1"}


def install():
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
