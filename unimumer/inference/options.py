"""The model / engine / decoding options of ``predict`` and ``serve``: declared by :func:`add_engine_args`, read
back into an engine by :func:`engine_from_args`; the ``--backend openai`` options of those and of ``infer``."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .core import TRAIN_MAX_PIXELS, TRAIN_MIN_PIXELS


def add_enforce_eager_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--enforce-eager`` (store_true; vLLM ``enforce_eager``), the one declaration of ``vllm_infer.py``,
    ``serve.py`` and ``build_error_corpus.py``."""
    p.add_argument("--enforce-eager", action="store_true",
                   help="vLLM: skip graph compilation / CUDA graphs (faster start, slower decoding; small jobs, CPU)")


def add_engine_args(p: argparse.ArgumentParser, *, openai: bool = False) -> None:
    """Add the model / engine / decoding options shared by ``scripts/predict.py`` and ``scripts/serve.py``
    (``--model``, ``--lora``, ``--backend``, ``--max-tokens``, ``--temperature``, ``--top-p``, ``--top-k``,
    ``--seed``, ``--preprocessing``, ``--template``, ``--max-pixels``, ``--min-pixels``, ``--dtype``); read them
    back with :func:`engine_from_args`. ``openai=True`` also offers ``--backend openai`` and its options
    (:func:`add_openai_args`; ``--model`` is then optional)."""
    p.add_argument("--model", required=not openai, default=None,
                   help="model folder or Hugging Face id (offline cache)"
                        + ("; required except with --backend openai" if openai else ""))
    p.add_argument("--lora", metavar="ADAPTER_DIR", default=None,
                   help="LoRA adapter folder (PEFT format, e.g. a LLaMA-Factory lora output_dir) applied on top of "
                        "--model (vLLM LoRA request / peft); missing or trained on another base model -> error")
    p.add_argument("--backend", choices=("auto", "vllm", "hf") + (("openai",) if openai else ()), default="auto",
                   help="engine (default: auto)" + ("; openai: a model behind an OpenAI-compatible endpoint"
                                                    if openai else ""))
    if openai:
        add_openai_args(p)
    p.add_argument("--max-tokens", type=int, default=2048, help="maximum generated tokens (default: 2048)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default: 0)")
    p.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling top-p when sampling (default: 0.8)")
    p.add_argument("--top-k", type=int, default=50, help="top-k when sampling (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--preprocessing", choices=("official", "training"), default="official",
                   help="model input: official (default: the released evaluation's requests) or training "
                        "(LLaMA-Factory's fine-tuning input); docs/inference.md")
    p.add_argument("--template", default=None, help="training: LLaMA-Factory template (default: from the model)")
    p.add_argument("--max-pixels", type=int, default=TRAIN_MAX_PIXELS,
                   help=f"training: image_max_pixels (default: {TRAIN_MAX_PIXELS})")
    p.add_argument("--min-pixels", type=int, default=TRAIN_MIN_PIXELS,
                   help=f"training: image_min_pixels (default: {TRAIN_MIN_PIXELS})")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"),
                   help="model dtype (default: the checkpoint's)")


def engine_from_args(a: argparse.Namespace, *, enforce_eager: bool):
    """Build the engine described by the options of :func:`add_engine_args`: ``(engine, backend name)``.

    The adapter (``--lora``) is checked before any engine starts. Raises :class:`InputError` for unusable options,
    an adapter that does not fit ``--model``, or a model that cannot be loaded.
    """
    if a.max_tokens < 1:
        raise InputError("--max-tokens must be >= 1")
    from .engines import GenerationSettings, default_backend, make_engine

    if a.lora and a.backend != "openai":
        from .adapters import check_adapter, print_warnings

        print_warnings(check_adapter(a.lora, a.model))  # before any engine starts
    settings = GenerationSettings(
        max_tokens=a.max_tokens, temperature=a.temperature, top_p=a.top_p, top_k=a.top_k, seed=a.seed,
        min_pixels=a.min_pixels, max_pixels=a.max_pixels, preprocessing=a.preprocessing, template=a.template,
    )
    check_openai_args(a)  # --model for local backends; --base-url / --api-model / the key variable for openai
    if a.backend == "openai":
        engine = make_engine("openai", "", settings, base_url=a.base_url, api_model=a.api_model,
                             api_key_env=a.api_key_env, max_concurrency=a.max_concurrency,
                             timeout=a.request_timeout, max_retries=a.max_retries)
        return engine, "openai"
    backend = default_backend() if a.backend == "auto" else a.backend
    return make_engine(backend, a.model, settings, dtype=a.dtype, enforce_eager=enforce_eager, lora=a.lora), backend


def add_openai_args(p: argparse.ArgumentParser) -> None:
    """The ``--backend openai`` options (shared with ``scripts/predict.py``)."""
    g = p.add_argument_group("--backend openai (any model behind an OpenAI-compatible chat-completions endpoint)")
    g.add_argument("--base-url", default=None, help="endpoint up to /v1, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-model", default=None, help="the served model name sent with every request")
    g.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="name of the environment variable holding the API key (the key itself is never a flag "
                        "and never stored); default: no key (a server started without --api-key)")
    g.add_argument("--max-concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
    g.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (default: 600)")
    g.add_argument("--max-retries", type=int, default=5,
                   help="retries per request on 408/409/429/5xx and connection errors, exponential backoff "
                        "0.5 s .. 8 s (default: 5); a request still failing is an error record")


def check_openai_args(a: argparse.Namespace) -> None:
    """Refuse options that do not fit ``a.backend`` (local backends need ``--model``; ``openai`` needs
    ``--base-url`` / ``--api-model``, a set ``--api-key-env`` variable and no local-model option). Raises
    :class:`InputError` naming the option; called before any request or engine start."""
    if a.backend != "openai":
        if a.model is None:
            raise InputError("--model is required (or use --backend openai with --base-url and --api-model)")
        if any(getattr(a, k, None) is not None for k in ("base_url", "api_model", "api_key_env")):
            raise InputError("--base-url / --api-model / --api-key-env apply to --backend openai only")
        return
    if a.model is not None or a.lora:
        raise InputError("--backend openai: the endpoint serves the model; pass --api-model, not --model / --lora")
    if not a.base_url or not a.api_model:
        raise InputError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1) and --api-model")
    if a.preprocessing != "official" or a.dtype != "auto" or getattr(a, "tensor_parallel_size", 1) != 1:
        raise InputError("--backend openai: --preprocessing training, --dtype and --tensor-parallel-size do not "
                         "apply (the server owns the model; use --max-concurrency for parallel requests)")
    if getattr(a, "data_parallel_size", 1) != 1:
        raise InputError("--backend openai: use --max-concurrency instead of --data-parallel-size")
    if a.max_concurrency < 1 or a.request_timeout <= 0 or a.max_retries < 0:
        raise InputError("--max-concurrency must be >= 1, --request-timeout > 0, --max-retries >= 0")
    from .engines import api_key_from_env

    api_key_from_env(a.api_key_env)  # the named variable must be set (its value is not kept here)
