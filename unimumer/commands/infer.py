"""``unimumer infer`` / ``scripts/vllm_infer.py``: batch inference over every prompt file of a folder, resumable
and data-parallel (logic: :mod:`unimumer.inference.runner`).

Follows the released ``scripts/vllm_infer.py`` of BFlameSwift/Uni-MuMER: same flags, same output layout, same
``<stem>_results.txt`` report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..files import check_outputs
from ..inference.engines import HF_DEFAULT_BATCH
from ..inference.jobs import list_prompt_files, own_outputs, read_prompt_file
from ..inference.lifecycle import exit_on_signals
from ..inference.progress import progress_path
from ..inference.ray_executor import add_executor_args, ray_options
from ..inference.runner import resolved_image_root, run
from ..inference.settings import Default, EndpointOptions, EngineOptions, GenerationSettings
from ..layout import run_record_path
from ..tasks import TASKS
from .common import command_parser
from .engine_options import check_openai_args

DESCRIPTION = """\
Batch inference of a Uni-MuMER model on every prompt file of a folder (vLLM, or plain transformers with
--backend hf), with the official output layout and metrics report.

Inputs:  --input-dir with official prompt files (*.json, LLaMA-Factory ShareGPT arrays:
         {"images": [path], "messages": [{"from": "human", "value": "<image>PROMPT"}, {"from": "gpt", "value": GT}]}).
         Relative image paths are resolved against --image-root (default: the current folder; the official
         prompt files say ./data/<DATASET>/..., so run from the repository root).
Outputs: <output-dir>/<stem><suffix>.json  JSON array (indent 2) of {"gt", "pred", "image_path", "img_id"} in
         input order, exactly the official layout; records that failed (image missing or unreadable, empty output,
         engine error) carry an extra "error" key and pred "" (scored as wrong, counted in the summary);
         A generation stopped by --max-tokens also carries "truncated": true (absent otherwise; counted in the
         console summary, the report is the official one);
         <output-dir>/<stem>_results.txt  the official metrics report (ExpRate = "Exact Match Rate");
         <output-dir>/<stem><suffix>.run.json  which run made the predictions: {"model", "model_files" (hash of
         the checkpoint's config and weight file names / sizes), "settings", "fingerprint"}.
         While running, records are appended to <output-dir>/.<stem><suffix>.progress.jsonl; a killed run
         restarted with the same command resumes from it; the final file is written atomically at the end
         and the progress file removed. Records with an "error" are not finished work: a resumed or repeated run
         redoes them (e.g. after fixing --image-root). An existing complete <stem><suffix>.json without failed
         records whose .run.json names the same model, model files and settings (image root included) is
         skipped (--overwrite redoes it); one made by another model / other settings, or without a .run.json, is
         never reused: "error: ..." naming the difference, exit 2 (a file holding only failed records has nothing
         to keep and is redone).
Model input (--preprocessing):
  official (default; reproduces the released numbers, BFlameSwift/Uni-MuMER scripts/vllm_infer.py): system
         "You are a helpful assistant.", user [image, prompt text without <image>] through the checkpoint's chat
         template; the image through qwen_vl_utils.process_vision_info (factor 28) then the checkpoint's image
         processor with its preprocessor_config.json defaults.
  training: exactly what LLaMA-Factory fed the model in fine-tuning: its template (--template, default from the
         checkpoint: qwen2_vl / qwen3_vl_nothink / qwen3_5_nothink; system turn only where the template has a
         default one), the image resized into [--min-pixels, --max-pixels] (image_min/max_pixels, default 1024 /
         262144) by its mm_plugin, then the checkpoint's image processor defaults. Needs LLaMA-Factory.
  Both: images loaded black-on-white; stop at <|im_end|> / <|endoftext|>; temperature 0 = greedy.
pred:    the final LaTeX of the output: the whole stripped text (vanilla, error_find) or its last non-empty line
         (tree, can, error_fix); --task forces one, default: detected from each record's prompt.
Endpoint: --backend openai --base-url URL --api-model NAME [--api-key-env VAR] sends the official request (system
         turn, image as a base64 PNG data URL, "<image>" + prompt) to any OpenAI-compatible chat-completions
         endpoint, --max-concurrency at once, retried on 429 / 5xx / connection errors; a request still failing
         is an error record ("API error: ...") and the run goes on. The key is read from the environment variable
         named by --api-key-env only, never stored; the run record names the endpoint and the served model.
Parallelism: --data-parallel-size N starts N independent engines (one per group of --tensor-parallel-size GPUs
         taken from CUDA_VISIBLE_DEVICES, which is only ever subset), each on an interleaved shard of every file;
         results are merged in input order and equal a single-engine run (greedy).
Cluster: --executor ray [--ray-address HEAD:6379] [--replicas N|MIN,MAX] [--work-dir SHARED_DIR] runs the same
         engine and input mode in Ray Data actors (--tensor-parallel-size GPUs each) over every node of a Ray
         cluster; a manifest of the requests, Ray Data's checkpoint and the settings live in --work-dir (default
         <output-dir>/.ray; storage every node sees), so a killed run resumes where it stopped; the merged records
         go through the local path above (same files, byte for byte). A shortfall after the run -> "error: ...
         rows missing (...)", exit 1. Details and a throughput model: docs/inference.md.
Input folder scan: this tool's own outputs of an earlier run (<stem><suffix>.json, *.run.json and any prediction
         file with its .run.json beside it) are skipped and counted on stderr, so the input folder may also be
         the output folder.
Errors:  a missing / malformed input folder or prompt file, or unusable options -> "error: ..." and exit 2;
         an output that is an input or cannot be written -> "error: ...", exit 2, before the model is touched;
         a prompt file whose every record failed (e.g. no image found: wrong --image-root or folder) -> its files
         are written, then "error: ..." and exit 2 (rerun with the cause fixed: the failed records are redone);
         a failed worker -> exit 1 (progress kept: rerun to resume); Ctrl-C -> exit 130, SIGTERM -> exit 143
         (engines shut down, progress kept). Engine and worker processes end with this process, also after
         kill -9 (a watchdog process stops them).
"""


#: vllm_infer.py keeps the released script's sampling default
RELEASED_TEMPERATURE = Default(0.2, "the released scripts/vllm_infer.py's default (its numbers were made with it)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/vllm_infer.py`` (official flags first, then this project's)."""
    p = command_parser("vllm_infer.py", DESCRIPTION)
    EngineOptions.add_cli_args(p, only=("model", "lora"), helps={"model": "; required except with --backend openai"})
    p.add_argument("--input-dir", default="./data/", help="folder of prompt *.json files (default: ./data/)")
    p.add_argument("--output-dir", default="outputs", help="where predictions and reports go (default: outputs)")
    p.add_argument("--suffix", default="_pred", help="prediction file suffix: <stem><suffix>.json (default: _pred)")
    GenerationSettings.add_cli_args(p, temperature=RELEASED_TEMPERATURE)
    p.add_argument(
        "--batch_size", "--batch-size", dest="batch_size", type=int, default=None,
        help="records per generate call and per progress flush (default: 256 with vllm, which batches continuously "
             f"inside; {HF_DEFAULT_BATCH} with hf: a 3B model's left-padded batch on one 80 GB GPU; 64 with openai)",
    )
    p.add_argument(
        "--task", choices=sorted(TASKS), default=None,
        help="how to read the final LaTeX from the output (default: from each record's prompt)",
    )
    p.add_argument("--backend", choices=("vllm", "hf", "openai"), default="vllm",
                   help="inference engine (default: vllm); openai: a model behind an OpenAI-compatible endpoint")
    EndpointOptions.add_group(p)
    EngineOptions.add_cli_args(p, exclude=("model", "lora"))
    p.add_argument(
        "--data-parallel-size", type=int, default=1,
        help="independent engine processes, one per GPU group, each on a shard (default: 1)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N records of each file")
    p.add_argument("--image-root", default=None,
                   help="folder relative image paths start from (default: cwd); its resolved path is part of the "
                        "run's settings (.run.json)")
    p.add_argument("--save-raw", action="store_true", help="also keep the untouched model output as \"output\"")
    p.add_argument("--overwrite", action="store_true", help="redo files whose predictions already exist")
    p.add_argument("--no-report", action="store_true", help="do not write <stem>_results.txt")
    add_executor_args(p)
    return p


def check_args(a: argparse.Namespace) -> None:
    """Check the parsed options and add ``a.generation`` / ``a.engine`` / ``a.endpoint`` (the settings objects),
    ``a.ray`` and, with ``--lora``, ``a.lora_info``. Raises :class:`InputError` naming the option."""
    check_openai_args(a)
    GenerationSettings.refuse_other_mode_flags(a)
    a.generation = GenerationSettings.from_args(a)
    a.engine = EngineOptions.from_args(a)
    a.endpoint = EndpointOptions.from_args(a)
    if a.batch_size is None:
        a.batch_size = {"hf": HF_DEFAULT_BATCH, "openai": 64}.get(a.backend, 256)
    a.generation.check()
    for name in ("batch_size", "tensor_parallel_size", "data_parallel_size"):
        if getattr(a, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1")
    if a.limit is not None and a.limit < 1:
        raise InputError("--limit must be >= 1")
    if not a.suffix or "/" in a.suffix:
        raise InputError("--suffix must be a non-empty file-name part")
    if a.backend == "hf" and a.tensor_parallel_size != 1:
        raise InputError("--tensor-parallel-size applies to --backend vllm only")
    if a.executor == "ray" and a.backend == "openai":
        raise InputError("--executor ray runs engines on a cluster; --backend openai sends requests to an endpoint "
                         "(use --max-concurrency)")
    if a.executor == "ray" and a.data_parallel_size != 1:
        raise InputError("--executor ray: use --replicas (engine actors) instead of --data-parallel-size")
    a.ray = ray_options(a, a.work_dir if a.work_dir is not None else Path(a.output_dir) / ".ray", a.batch_size,
                        a.tensor_parallel_size, own_work_dir_flag=True)
    if a.lora:
        from ..inference.adapters import check_adapter, print_warnings

        a.lora_info = check_adapter(a.lora, a.model)  # before any engine starts
        print_warnings(a.lora_info)


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/vllm_infer.py`` (see :data:`DESCRIPTION`). Returns 0, or 1 when a worker failed.

    Raises :class:`InputError` for bad input (folder, prompt files, options, model), and after writing the
    outputs when every record of a prompt file failed.
    """
    exit_on_signals()  # SIGTERM / SIGHUP unwind like Ctrl-C: the engine is closed, progress kept
    a = build_parser().parse_args(argv)
    check_args(a)
    skipped = own_outputs(a.input_dir, a.suffix) if Path(a.input_dir).is_dir() else []
    files = list_prompt_files(a.input_dir, a.suffix)
    if skipped:
        print(f"{a.input_dir}: skipped {len(skipped)} file(s) this tool wrote in an earlier run "
              f"(*{a.suffix}.json predictions and *.run.json records), e.g. {skipped[0].name}", file=sys.stderr)
    out_dir = Path(a.output_dir)
    check_outputs(inputs=files, dirs=[out_dir] + ([a.ray.work_dir] if a.ray else []), outputs=[
        p for f in files for p in (out_dir / f"{f.stem}{a.suffix}.json", run_record_path(out_dir / f"{f.stem}{a.suffix}.json"),
                                   progress_path(out_dir, f.stem, a.suffix),
                                   None if a.no_report else out_dir / f"{f.stem}_results.txt")])
    parsed = [(f, read_prompt_file(f, a.task)) for f in files]  # validate everything before starting an engine
    from ..inference.engines import check_dtype, check_model_location

    if a.backend != "openai":
        check_model_location(a.model)  # before anything is written
    check_dtype(a.dtype)
    a.resolved_image_root = resolved_image_root(a.image_root, parsed)
    return run(a, parsed)
