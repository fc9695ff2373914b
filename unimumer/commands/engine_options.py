"""Engine option sets of the ``predict`` and ``serve`` commands (:func:`add_engine_args` -> :func:`engine_from_args`)
and the ``--backend openai`` checks of ``infer``; every flag is declared once, on the dataclasses of
:mod:`unimumer.inference.settings`."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..inference.settings import EndpointOptions, EngineOptions, GenerationSettings


def add_enforce_eager_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--enforce-eager`` (:class:`EngineOptions` ``enforce_eager``)."""
    EngineOptions.add_cli_args(p, only=("enforce_eager",))


def add_engine_args(p: argparse.ArgumentParser, *, openai: bool = False, **generation_defaults) -> None:
    """Add the model / engine / decoding options shared by ``predict`` and ``serve``: ``--model``, ``--lora``,
    ``--backend``, every :class:`GenerationSettings` flag (``generation_defaults``: the command's own defaults,
    see :meth:`GenerationSettings.add_cli_args`) and ``--dtype``; read them back with :func:`engine_from_args`.
    ``openai=True`` also offers ``--backend openai`` and the :class:`EndpointOptions` (``--model`` is then
    optional)."""
    EngineOptions.add_cli_args(p, only=("model", "lora"), required=() if openai else ("model",),
                               helps={"model": "; required except with --backend openai"} if openai else None)
    p.add_argument("--backend", choices=("auto", "vllm", "hf") + (("openai",) if openai else ()), default="auto",
                   help="engine (default: auto)" + ("; openai: a model behind an OpenAI-compatible endpoint"
                                                    if openai else ""))
    if openai:
        EndpointOptions.add_group(p)
    GenerationSettings.add_cli_args(p, **generation_defaults)
    EngineOptions.add_cli_args(p, only=("dtype",))


def engine_from_args(a: argparse.Namespace, *, enforce_eager: bool):
    """Build the engine described by the options of :func:`add_engine_args`: ``(engine, backend name)``.

    The adapter (``--lora``) is checked before any engine starts. Raises :class:`InputError` for unusable options,
    an adapter that does not fit ``--model``, or a model that cannot be loaded.
    """
    from ..inference.engines import default_backend, make_engine

    settings = GenerationSettings.from_args(a)
    settings.check()
    engine = EngineOptions.from_args(a, enforce_eager=enforce_eager)
    if engine.lora and a.backend != "openai":
        from ..inference.adapters import check_adapter, print_warnings

        print_warnings(check_adapter(engine.lora, engine.model))  # before any engine starts
    check_openai_args(a)  # --model for local backends; --base-url / --api-model / the key variable for openai
    if a.backend == "openai":
        return make_engine("openai", "", settings, **EndpointOptions.from_args(a).engine_kwargs()), "openai"
    backend = default_backend() if a.backend == "auto" else a.backend
    return make_engine(backend, engine.model, settings, **engine.engine_kwargs()), backend


def add_openai_args(p: argparse.ArgumentParser) -> None:
    """The ``--backend openai`` options (:class:`EndpointOptions`) as their own help group."""
    EndpointOptions.add_group(p)


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
    from ..inference.engines import api_key_from_env

    api_key_from_env(a.api_key_env)  # the named variable must be set (its value is not kept here)
