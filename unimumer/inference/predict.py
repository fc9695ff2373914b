"""``scripts/predict.py``: print the LaTeX a Uni-MuMER model reads from a few images (the quick check).

Same model input and answer extraction as ``scripts/vllm_infer.py`` (:mod:`unimumer.inference.engines`), no
prompt file needed: the prompt is the task's official instruction (:mod:`unimumer.tasks`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import InputError
from ..images import load_image
from ..tasks import GT_TASKS, get_task
from .core import TRAIN_MAX_PIXELS, TRAIN_MIN_PIXELS

DESCRIPTION = """\
Print the LaTeX that a Uni-MuMER model reads from each image, one line per image: IMAGE<TAB>LATEX
(just LATEX with --plain). Images are read black-on-white whatever their polarity (CROHME PNGs are white on
black); --preprocessing official (default) builds the official evaluation's request (system turn,
qwen_vl_utils.process_vision_info, the checkpoint's processor defaults), training builds LLaMA-Factory's
fine-tuning input (its template, image resized into --min-pixels/--max-pixels); the prompt is the official
instruction of --task (vanilla recognition by default; tree = Tree-CoT, can = symbol counting: the LaTeX is the output's last line,
--raw prints the whole output under a "==> IMAGE <==" line). Decoding is greedy unless --temperature > 0.
Backend: --backend auto uses vLLM when a CUDA GPU and vLLM are present, else transformers (hf); --backend openai
--base-url URL --api-model NAME [--api-key-env VAR] asks an OpenAI-compatible endpoint with the same request
(docs/inference.md); vLLM runs eager here (no graph capture: a quick start matters more than throughput for a few images).
Errors: an unreadable or missing image is reported on stderr as "error: IMAGE: ..." and the others are still
printed (exit code 2 at the end); a model that cannot be loaded -> "error: ..." and exit 2.
Output: stdout holds only the answers; engine logs (vLLM's, sent to stderr unless VLLM_LOGGING_STREAM is set)
and errors go to stderr.
"""


def add_engine_args(p: argparse.ArgumentParser, *, openai: bool = False) -> None:
    """Add the model / engine / decoding options shared by ``scripts/predict.py`` and ``scripts/serve.py``
    (``--model``, ``--lora``, ``--backend``, ``--max-tokens``, ``--temperature``, ``--top-p``, ``--top-k``,
    ``--seed``, ``--preprocessing``, ``--template``, ``--max-pixels``, ``--min-pixels``, ``--dtype``); read them
    back with :func:`engine_from_args`. ``openai=True`` also offers ``--backend openai`` and its options
    (:func:`unimumer.inference.runner.add_openai_args`; ``--model`` is then optional)."""
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
        from .runner import add_openai_args

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
    from .runner import check_openai_args

    check_openai_args(a)  # --model for local backends; --base-url / --api-model / the key variable for openai
    if a.backend == "openai":
        engine = make_engine("openai", "", settings, base_url=a.base_url, api_model=a.api_model,
                             api_key_env=a.api_key_env, max_concurrency=a.max_concurrency,
                             timeout=a.request_timeout, max_retries=a.max_retries)
        return engine, "openai"
    backend = default_backend() if a.backend == "auto" else a.backend
    return make_engine(backend, a.model, settings, dtype=a.dtype, enforce_eager=enforce_eager, lora=a.lora), backend


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/predict.py``."""
    p = argparse.ArgumentParser(
        prog="predict.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    add_engine_args(p, openai=True)
    p.add_argument("--task", choices=GT_TASKS, default="vanilla", help="prompt / answer extraction (default: vanilla)")
    p.add_argument("--plain", action="store_true", help="print only the LaTeX, without the image path")
    p.add_argument("--raw", action="store_true", help="print the whole model output instead of the final LaTeX")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/predict.py`` (see :data:`DESCRIPTION`). Returns 0, or 2 when some image could not be read.

    Raises :class:`InputError` for unusable options or a model that cannot be loaded.
    """
    from .lifecycle import exit_on_signals

    exit_on_signals()  # SIGTERM unwinds like Ctrl-C: the engine is closed in ``finally``
    a = build_parser().parse_args(argv)
    # stdout is the answer (one line per image): vLLM's log lines go to stderr unless the user routes them
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    engine, _ = engine_from_args(a, enforce_eager=True)
    task = get_task(a.task)
    ok, failed = [], 0
    try:
        for path in a.images:
            try:
                ok.append((path, engine.prepare_image(load_image(path), task.prompt())))
            except InputError as exc:
                failed += 1
                msg = str(exc)  # every image error names the file (the processor's own messages do not)
                print(f"error: {msg if msg.startswith(str(path)) else f'{path}: {msg}'}", file=sys.stderr)
        if ok:
            gens = engine.generate_outputs([img for _, img in ok], [task.prompt()] * len(ok))
            for (path, _), gen in zip(ok, gens, strict=True):
                text = gen.text
                if gen.error:  # openai backend: the request failed after its retries
                    failed += 1
                    print(f"error: {path}: {gen.error}", file=sys.stderr)
                    continue
                if a.raw:
                    print(text.strip() if a.plain else f"==> {path} <==\n{text.strip()}", flush=True)
                else:
                    out = " ".join(task.extract_answer(text).splitlines())  # one line per image (same tokens)
                    print(out if a.plain else f"{path}\t{out}", flush=True)
    finally:
        engine.close()
    return 2 if failed else 0
