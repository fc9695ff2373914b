"""``unimumer predict`` / ``scripts/predict.py``: print the LaTeX a Uni-MuMER model reads from a few images.

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
from ..inference.settings import Default
from ..tasks import GT_TASKS, get_task
from .common import command_parser
from .engine_options import add_engine_args, engine_from_args

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


#: predict / serve read the model's most likely answer; vllm_infer.py keeps the released script's 0.2
GREEDY = Default(0.0, "greedy here: a quick check shows the model's most likely reading (scripts/vllm_infer.py "
                      "keeps the released script's 0.2)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/predict.py``."""
    p = command_parser("predict.py", DESCRIPTION)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    add_engine_args(p, openai=True, temperature=GREEDY)
    p.add_argument("--task", choices=GT_TASKS, default="vanilla", help="prompt / answer extraction (default: vanilla)")
    p.add_argument("--plain", action="store_true", help="print only the LaTeX, without the image path")
    p.add_argument("--raw", action="store_true", help="print the whole model output instead of the final LaTeX")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/predict.py`` (see :data:`DESCRIPTION`). Returns 0, or 2 when some image could not be read.

    Raises :class:`InputError` for unusable options or a model that cannot be loaded.
    """
    from ..inference.lifecycle import exit_on_signals

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
