"""``scripts/vllm_infer.py``: batch inference over every prompt file of a folder, resumable and data-parallel.

Follows the released ``scripts/vllm_infer.py`` of BFlameSwift/Uni-MuMER (same flags, same output layout, same
``<stem>_results.txt`` report) and fixes its engineering: one engine for every file of the input folder, data
parallelism instead of tensor parallelism over all GPUs, resume after a kill, and a bad image is a record with an
``error`` field instead of a crash.

Flow: the parent process reads and validates every prompt file, then for each file decides what is left to do
(final file present → skipped; a progress file → its finished records are kept), runs the pending records
(in-process with ``--data-parallel-size 1``, else in N worker processes, each with its own engine, its own slice
of ``CUDA_VISIBLE_DEVICES`` and an interleaved shard of every file), and finally writes each prediction file in
input order, atomically, followed by its metrics report.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import InputError
from ..files import atomic_write_text, check_outputs, read_json, write_json
from ..images import load_image
from ..layout import run_record_path
from ..paths import REPO_ROOT
from ..tasks import TASKS
from .core import (
    TRAIN_MAX_PIXELS,
    TRAIN_MIN_PIXELS,
    ProgressFile,
    PromptItem,
    device_groups,
    error_summary,
    is_finished,
    list_prompt_files,
    make_record,
    own_outputs,
    progress_path,
    read_prompt_file,
    resolve_image,
    shard,
    visible_devices,
    write_predictions,
)
from .engines import HF_DEFAULT_BATCH, PREPROCESSING
from .lifecycle import child_env, exit_on_signals, exit_with_parent, guard_descendants, stop_processes
from .options import add_enforce_eager_arg, add_openai_args, check_openai_args
from .ray_executor import RayRunFailed, add_executor_args, ray_options

#: Test / debugging hook: the worker SIGKILLs itself after this many flushed batches (simulates a killed job).
KILL_AFTER_ENV = "UNIMUMER_INFER_KILL_AFTER_BATCHES"

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/vllm_infer.py`` (official flags first, then this project's)."""
    p = argparse.ArgumentParser(
        prog="vllm_infer.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=None,
                   help="model folder or Hugging Face id (offline cache); required except with --backend openai")
    p.add_argument("--lora", metavar="ADAPTER_DIR", default=None,
                   help="LoRA adapter folder (PEFT adapter_config.json + adapter_model.safetensors, e.g. a LLaMA-Factory "
                        "finetuning_type: lora output_dir) applied unmerged on top of --model: vLLM LoRA requests, "
                        "peft for --backend hf. Checked before any engine starts (missing, or trained on another base "
                        "model -> error). Merge it into a full model instead with scripts/export_model.py")
    p.add_argument("--input-dir", default="./data/", help="folder of prompt *.json files (default: ./data/)")
    p.add_argument("--output-dir", default="outputs", help="where predictions and reports go (default: outputs)")
    p.add_argument("--suffix", default="_pred", help="prediction file suffix: <stem><suffix>.json (default: _pred)")
    p.add_argument("--max-tokens", type=int, default=2048, help="maximum generated tokens (default: 2048)")
    p.add_argument("--temperature", type=float, default=0.2, help="sampling temperature, 0 = greedy (default: 0.2)")
    p.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling top-p (default: 0.8)")
    p.add_argument("--top-k", type=int, default=50, help="top-k sampling (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
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
    add_openai_args(p)
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per engine (vLLM; default: 1)")
    p.add_argument(
        "--data-parallel-size", type=int, default=1,
        help="independent engine processes, one per GPU group, each on a shard (default: 1)",
    )
    p.add_argument("--preprocessing", choices=PREPROCESSING, default="official",
                   help="model input: official (default, the released evaluation's requests) or training "
                        "(LLaMA-Factory's template and image resize, as in fine-tuning)")
    p.add_argument("--template", default=None,
                   help="--preprocessing training: LLaMA-Factory template (default: from the checkpoint's model_type)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"--preprocessing training: image_max_pixels (default: {TRAIN_MAX_PIXELS}, the configs')")
    p.add_argument("--min-pixels", type=int, default=None,
                   help=f"--preprocessing training: image_min_pixels (default: {TRAIN_MIN_PIXELS}, LLaMA-Factory's)")
    p.add_argument("--limit", type=int, default=None, help="only the first N records of each file")
    p.add_argument("--image-root", default=None,
                   help="folder relative image paths start from (default: cwd); its resolved path is part of the "
                        "run's settings (.run.json)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"),
                   help="model dtype (default: auto = the checkpoint's; the released models are bf16)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="vLLM context length (default: max-tokens + image tokens at max-pixels + 1024)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM (default: 0.9)")
    add_enforce_eager_arg(p)
    p.add_argument("--save-raw", action="store_true", help="also keep the untouched model output as \"output\"")
    p.add_argument("--overwrite", action="store_true", help="redo files whose predictions already exist")
    p.add_argument("--no-report", action="store_true", help="do not write <stem>_results.txt")
    add_executor_args(p)
    return p


def _check_args(a: argparse.Namespace) -> None:
    check_openai_args(a)
    if a.preprocessing == "official" and (a.min_pixels, a.max_pixels, a.template) != (None, None, None):
        raise InputError("--min-pixels / --max-pixels / --template apply to --preprocessing training only")
    a.min_pixels = TRAIN_MIN_PIXELS if a.min_pixels is None else a.min_pixels
    a.max_pixels = TRAIN_MAX_PIXELS if a.max_pixels is None else a.max_pixels
    if a.batch_size is None:
        a.batch_size = {"hf": HF_DEFAULT_BATCH, "openai": 64}.get(a.backend, 256)
    for name in ("max_tokens", "batch_size", "tensor_parallel_size", "data_parallel_size", "max_pixels", "min_pixels"):
        if getattr(a, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1")
    if a.limit is not None and a.limit < 1:
        raise InputError("--limit must be >= 1")
    if a.temperature < 0:
        raise InputError("--temperature must be >= 0")
    if not 0 < a.top_p <= 1:
        raise InputError("--top-p must be in (0, 1]")
    if a.min_pixels > a.max_pixels:
        raise InputError("--min-pixels must not exceed --max-pixels")
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
        from .adapters import check_adapter, print_warnings

        a.lora_info = check_adapter(a.lora, a.model)  # before any engine starts
        print_warnings(a.lora_info)


def _model_id(model: str | None) -> str | None:
    if model is None:
        return None
    p = Path(model)
    return str(p.resolve()) if p.exists() else model


def model_files_fingerprint(model: str) -> str | None:
    """A short hash of a local checkpoint: its ``config.json`` bytes and the names and sizes of its weight files
    (``None`` for a hub id). A checkpoint retrained into the same folder gets another fingerprint."""
    import hashlib

    if model is None:
        return None
    p = Path(model)
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    cfg = p / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name.endswith(".index.json")):
            h.update(f"{f.name}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def run_settings(a: argparse.Namespace) -> dict:
    """Everything that changes the outputs; a progress file or prediction file made with other settings is not
    reused. The pixel bounds and template only count in training mode (the official path has none)."""
    d = {
        "model": _model_id(a.model),
        "model_files": model_files_fingerprint(a.model),
        "backend": a.backend,
        "task": a.task,
        "max_tokens": a.max_tokens,
        "temperature": a.temperature,
        "top_p": a.top_p,
        "top_k": a.top_k,
        "seed": a.seed,
        "preprocessing": a.preprocessing,
        "dtype": a.dtype,
        "save_raw": a.save_raw,
        # where relative image paths were looked up (None: every path absolute); set by main()
        "image_root": getattr(a, "resolved_image_root", None),
        # the adapter is part of the model: a progress file of another adapter (or none) is not resumed
        **({"lora": a.lora_info.fingerprint()} if getattr(a, "lora_info", None) else {}),
    }
    if a.preprocessing == "training":
        d.update(template=a.template, min_pixels=a.min_pixels, max_pixels=a.max_pixels)
    if a.backend == "openai":  # the endpoint and served model name the model (never the key)
        d.update(model=a.api_model, base_url=a.base_url.rstrip("/"))
    return d


def settings_fingerprint(settings: dict) -> str:
    """sha256 (16 hex digits) of the canonical JSON of :func:`run_settings`."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def check_existing_output(final: Path, settings: dict) -> None:
    """Refuse to reuse a prediction file another run made. Returns when its run record matches ``settings``.

    Raises :class:`InputError` (one line naming the file and the difference) when the run record is missing or
    names another model / model files / settings.
    """
    rec_path = run_record_path(final)
    try:
        old = read_json(rec_path).get("settings")
    except (InputError, AttributeError):
        old = None
    if not isinstance(old, dict):
        raise InputError(
            f"{final}: exists without a run record ({rec_path.name}), so which model made it is unknown; "
            "pass --overwrite to redo it or choose another --output-dir"
        )
    diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} (existing) vs {settings.get(k)!r}" for k in diff)
        raise InputError(
            f"{final}: made by another run ({shown}); pass --overwrite to redo it or choose another --output-dir"
        )


def worker_config(a: argparse.Namespace) -> dict:
    """The JSON-serialisable configuration a worker needs to build its engine and records."""
    cfg = run_settings(a)
    cfg.update(
        model=a.model,
        min_pixels=a.min_pixels,
        max_pixels=a.max_pixels,
        template=a.template,
        batch_size=a.batch_size,
        tensor_parallel_size=a.tensor_parallel_size,
        max_model_len=a.max_model_len,
        gpu_memory_utilization=a.gpu_memory_utilization,
        enforce_eager=a.enforce_eager,
        image_root=getattr(a, "resolved_image_root", None),
        lora_dir=a.lora,
        api_model=a.api_model, api_key_env=a.api_key_env, max_concurrency=a.max_concurrency,
        request_timeout=a.request_timeout, max_retries=a.max_retries,
    )
    if a.backend == "openai":
        cfg["base_url"] = a.base_url
    return cfg


# --------------------------------------------------------------------------------------------------- worker
def image_problem(item: PromptItem, image_root: str | None) -> str | None:
    """Why the image of ``item`` cannot be read, or ``None`` when it is a regular file. The text names the path
    as written and where it was looked for: ``image not found: ./a.png (looked for /run/a.png)``; also
    ``symlink loop``, ``not a file`` (a folder) and ``unreadable image`` (permission, I/O error)."""
    path = resolve_image(item.image_path, image_root)
    where = f"{item.image_path} (looked for {os.path.abspath(path)})"
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"symlink loop: {where}"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            dangling = path.is_symlink()
            return f"image not found: {where}" + (" (a symlink to a missing file)" if dangling else "")
        return f"unreadable image: {where} ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"not a file: {where}"
    return None


def _read_image(item: PromptItem, image_root: str | None):
    """``(loaded RGB image, None)`` or ``(None, error text)`` for one record (:func:`image_problem`, then
    :func:`unimumer.images.load_image`)."""
    problem = image_problem(item, image_root)
    if problem is not None:
        return None, problem
    try:
        return load_image(resolve_image(item.image_path, image_root)), None
    except InputError as exc:
        return None, f"unreadable image: {item.image_path} ({str(exc).rsplit('(', 1)[-1].rstrip(')')})"


def _load(engine, item: PromptItem, image_root: str | None):
    """``(prepared image, None)`` or ``(None, error text)`` for one record."""
    image, err = _read_image(item, image_root)
    if err is not None:
        return None, err
    try:
        return engine.prepare_image(image, item.prompt), None
    except Exception as exc:  # the pre-processing library refused this image (extreme size / aspect ratio)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"unusable image: {item.image_path} ({msg[:200]})"


def _engine_works(engine, prompt: str) -> bool:
    """Whether the engine still answers a plain request (a white 64 x 64 image): tells a broken engine from
    records that fail on their own, also when such a record is alone in its batch."""
    from PIL import Image

    try:
        img = engine.prepare_image(Image.new("RGB", (64, 64), "white"), prompt)
        engine.generate_outputs([img], [prompt])
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        return False


def _generate_batch(engine, batch: list[PromptItem], loaded: list, raw: bool) -> list[tuple[int, dict]]:
    """Records of one batch. An engine error on the batch is retried record by record; records that still fail
    get an ``engine error`` record. Only when every record fails and the engine also fails a plain request
    (:func:`_engine_works`) is the engine taken as broken and the error re-raised."""
    ok = [(it, img) for it, (img, err) in zip(batch, loaded, strict=True) if err is None]
    outputs: dict[int, tuple[str | None, str | None]] = {}
    truncated: set[int] = set()
    if ok:
        try:
            gens = engine.generate_outputs([img for _, img in ok], [it.prompt for it, _ in ok])
            outputs = {it.index: (g.text, g.error) for (it, _), g in zip(ok, gens, strict=True)}
            truncated = {it.index for (it, _), g in zip(ok, gens, strict=True) if g.truncated}
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as batch_exc:
            failures = 0
            for it, img in ok:
                try:
                    g = engine.generate_outputs([img], [it.prompt])[0]
                    outputs[it.index] = (g.text, g.error)
                    if g.truncated:
                        truncated.add(it.index)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:
                    failures += 1
                    msg = str(exc).splitlines()[0] if str(exc) else ""
                    outputs[it.index] = (None, f"engine error: {type(exc).__name__}: {msg}"[:300])
            if failures == len(ok) and not _engine_works(engine, ok[0][0].prompt):
                raise batch_exc
    result = []
    for it, (_img, err) in zip(batch, loaded, strict=True):
        if err is None:
            text, err = outputs[it.index]
            result.append((it.index, make_record(it, text, err, raw=raw, truncated=it.index in truncated)))
        else:
            result.append((it.index, make_record(it, None, err, raw=raw)))
    return result


def engine_from_config(config: dict):
    """The engine of a :func:`worker_config` (``make_engine`` with the run's generation settings and engine
    options); used by the local workers and by the Ray actors. Raises :class:`InputError` when it cannot start."""
    from .engines import GenerationSettings, make_engine

    settings = GenerationSettings(
        max_tokens=config["max_tokens"], temperature=config["temperature"], top_p=config["top_p"],
        top_k=config["top_k"], seed=config["seed"], preprocessing=config["preprocessing"],
        min_pixels=config["min_pixels"], max_pixels=config["max_pixels"], template=config["template"],
    )
    return make_engine(
        config["backend"], config["model"], settings, tensor_parallel_size=config["tensor_parallel_size"],
        dtype=config["dtype"], max_model_len=config["max_model_len"],
        gpu_memory_utilization=config["gpu_memory_utilization"], enforce_eager=config["enforce_eager"],
        lora=config.get("lora_dir"), base_url=config.get("base_url"), api_model=config.get("api_model"),
        api_key_env=config.get("api_key_env"), max_concurrency=config.get("max_concurrency", 8),
        timeout=config.get("request_timeout", 600.0), max_retries=config.get("max_retries", 5),
    )


def batch_records(engine, batch: Sequence[PromptItem], image_root: str | None, raw: bool) -> list[tuple[int, dict]]:
    """``(index, record)`` of every item of ``batch``, exactly as a local worker makes them: each image read and
    prepared (:func:`_load`: missing / unreadable / unusable images become error records), then one generate call
    (:func:`_generate_batch`). Raises the engine's error when the engine itself is broken."""
    return _generate_batch(engine, list(batch), [_load(engine, it, image_root) for it in batch], raw)


def run_worker(config: dict, jobs: Sequence[dict], worker: int = 0, n_workers: int = 1) -> int:
    """Build one engine and run this worker's shard of every job; returns the number of records generated.

    ``jobs``: ``[{"prompt_file", "stem", "progress", "pending": [indices], "retry": [indices]}]``; the worker
    takes ``shard(pending, n_workers, worker)`` of each and appends its records to the job's progress file after
    each batch. Records whose image is missing (for ``retry``, records that failed before: also unreadable) are
    written before the engine starts, and no engine starts when nothing else is left. Image loading for the next
    batch overlaps generation of the current one.
    """
    from tqdm import tqdm

    mine = [(job, shard(job["pending"], n_workers, worker)) for job in jobs]
    bs, root, raw = config["batch_size"], config["image_root"], config["save_raw"]
    done = 0
    # records whose image is not there need no engine: written first (a run without any image starts none)
    for k, (job, idx) in enumerate(mine):
        if not idx:
            continue
        items = read_prompt_file(job["prompt_file"], config["task"])
        retry = set(job.get("retry", ()))
        problems = {i: (_read_image(items[i], root)[1] if i in retry else image_problem(items[i], root)) for i in idx}
        failed = [(i, make_record(items[i], None, err, raw=raw)) for i, err in problems.items() if err]
        ProgressFile(job["progress"]).append(failed)
        done += len(failed)
        mine[k] = (job, [i for i in idx if not problems[i]])
    if not any(idx for _, idx in mine):
        return done
    engine = engine_from_config(config)
    kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0)
    batches = 0
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            for job, idx in mine:
                if not idx:
                    continue
                items = read_prompt_file(job["prompt_file"], config["task"])
                progress = ProgressFile(job["progress"])
                chunks = [[items[i] for i in idx[s:s + bs]] for s in range(0, len(idx), bs)]
                desc = job["stem"] + (f" [worker {worker}]" if n_workers > 1 else "")
                bar = tqdm(total=len(idx), desc=desc, unit="img", position=worker if n_workers > 1 else None,
                           dynamic_ncols=True, file=sys.stderr)
                nxt = pool.submit(lambda c: [_load(engine, it, root) for it in c], chunks[0])
                for c, chunk in enumerate(chunks):
                    loaded = nxt.result()
                    if c + 1 < len(chunks):
                        nxt = pool.submit(lambda c: [_load(engine, it, root) for it in c], chunks[c + 1])
                    finished = _generate_batch(engine, chunk, loaded, raw)
                    progress.append(finished)
                    bar.update(len(finished))
                    done += len(finished)
                    batches += 1
                    if kill_after and batches >= kill_after:
                        os.kill(os.getpid(), signal.SIGKILL)
                bar.close()
    finally:
        engine.close()
    return done


def worker_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a data-parallel worker process: ``python -m unimumer.inference.runner JOBFILE K N``."""
    exit_on_signals()  # SIGTERM (the parent's, or its watchdog's) -> the engine is closed
    exit_with_parent()  # ... also when the parent dies (kill -9): no orphaned worker goes on generating
    argv = list(sys.argv[1:] if argv is None else argv)
    spec = read_json(argv[0])
    run_worker(spec["config"], spec["jobs"], int(argv[1]), int(argv[2]))
    return 0


def _run_data_parallel(config: dict, jobs: list[dict], n: int, tp: int, out_dir: Path) -> None:
    """Run ``n`` worker processes (one engine each) and wait for all.

    Raises :class:`InputError` when fewer GPUs are visible than needed, :class:`WorkerFailed` when a worker fails.
    """
    devices = visible_devices()
    if devices is None:
        try:
            import torch

            devices = visible_devices(device_count=torch.cuda.device_count())
        except ImportError:
            devices = None
    groups = device_groups(devices, n, tp)
    guard_descendants()  # the workers (and their engines) end with this process, also after kill -9
    with tempfile.TemporaryDirectory(prefix=".infer-jobs-", dir=out_dir) as tmp:
        spec = Path(tmp) / "jobs.json"
        spec.write_text(json.dumps({"config": config, "jobs": jobs}), encoding="utf-8")
        procs = []
        for k, group in enumerate(groups):
            env = child_env()
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
            if group is not None:
                env["CUDA_VISIBLE_DEVICES"] = group
            cmd = [sys.executable, "-m", "unimumer.inference.runner", str(spec), str(k), str(n)]
            procs.append(subprocess.Popen(cmd, env=env))
        try:
            codes = [p.wait() for p in procs]
        except BaseException:  # Ctrl-C, SIGTERM: each worker closes its engine (SIGKILL after a grace period)
            stop_processes(procs)
            raise
    bad = [(k, c) for k, c in enumerate(codes) if c != 0]
    if bad:
        raise WorkerFailed(
            "; ".join(f"worker {k} exited with {c}" for k, c in bad)
            + " (finished records are kept: rerun the same command to resume)"
        )


class WorkerFailed(RuntimeError):
    """A data-parallel worker process exited with an error (not the user's input; exit code 1)."""


# --------------------------------------------------------------------------------------------------- reports
def write_report(pred_path: Path, report_path: Path) -> dict:
    """Score ``pred_path`` with the official metrics and write the official text report atomically."""
    from ..evaluation.metrics import evaluate_file, format_report

    results = evaluate_file(pred_path)
    atomic_write_text(report_path, format_report(results))
    return results


def _read_output(path: Path) -> list | None:
    """The records of an existing prediction file, or ``None`` when it cannot be read as a JSON array."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) and all(isinstance(r, dict) for r in data) else None


def resolved_image_root(image_root: str | None, parsed: Sequence[tuple[Path, list[PromptItem]]]) -> str | None:
    """The absolute folder relative image paths are looked up in (``--image-root``, default the current
    folder), or ``None`` when every image path of the prompt files is absolute (the root then plays no part)."""
    if all(Path(it.image_path).is_absolute() for _, items in parsed for it in items):
        return None
    return str(Path(image_root if image_root is not None else os.getcwd()).resolve())


def _all_failed_message(stem: str, records: list[dict], image_root: str | None) -> str:
    """One line for a prompt file whose every record failed: the counts by reason and the first error."""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(error_summary(records).items()))
    where = f"image root {image_root}" if image_root else "absolute image paths"
    return f"{stem}: all {len(records)} records failed ({counts}; {where}; first: {records[0]['error']})"


# --------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/vllm_infer.py`` (see :data:`DESCRIPTION`). Returns 0, or 1 when a worker failed.

    Raises :class:`InputError` for bad input (folder, prompt files, options, model), and after writing the
    outputs when every record of a prompt file failed.
    """
    exit_on_signals()  # SIGTERM / SIGHUP unwind like Ctrl-C: the engine is closed, progress kept
    a = build_parser().parse_args(argv)
    _check_args(a)
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
    from .engines import check_dtype, check_model_location

    if a.backend != "openai":
        check_model_location(a.model)  # before anything is written
    check_dtype(a.dtype)
    a.resolved_image_root = resolved_image_root(a.image_root, parsed)
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = run_settings(a)
    created = []  # progress files this run created (removed again when the engine cannot start)

    plan = []  # (stem, items, selected, final path, progress)
    jobs = []
    resumed = 0
    for f, items in parsed:
        stem = f.stem
        selected = list(range(len(items)))[: a.limit] if a.limit is not None else list(range(len(items)))
        final = out_dir / f"{stem}{a.suffix}.json"
        progress = ProgressFile(progress_path(out_dir, stem, a.suffix))
        existing = None  # records of a complete earlier output of the same run
        if final.exists() and not a.overwrite:
            old = _read_output(final)
            if old is None or any(is_finished(r) for r in old):
                check_existing_output(final, settings)  # never another model's / other settings' predictions
            if old is not None and len(old) == len(selected):
                failed = sum(1 for r in old if not is_finished(r))
                if not failed:
                    print(f"{stem}: {final} exists with {len(selected)} records, skipped (--overwrite to redo)")
                    report = out_dir / f"{stem}_results.txt"
                    if not a.no_report and not report.exists():
                        write_report(final, report)
                    continue
                print(f"{stem}: {final} holds {failed} failed records of {len(selected)}; redoing them")
                existing = old
        if a.overwrite:
            progress.remove()
        existed = progress.path.exists()
        done = progress.resume(items, f.name, settings)
        if not existed or progress.stale:
            created.append((progress, items, f.name))
        if existing is not None:  # the finished records of the earlier output are kept, its failed ones redone
            keep = [(i, r) for i, r in zip(selected, existing, strict=True)
                    if is_finished(r) and not (i in done and is_finished(done[i]))]
            progress.append(keep)
            done.update(keep)
        pending = [i for i in selected if i not in done or not is_finished(done[i])]
        retried = sum(1 for i in pending if i in done)
        resumed += len(selected) - len(pending)
        if done:
            print(f"{stem}: resuming, {len(selected) - len(pending)} of {len(selected)} records already done"
                  + (f", {retried} failed records redone" if retried else ""))
        plan.append((f.name, stem, items, selected, final, progress))
        if pending:
            jobs.append({"prompt_file": str(f), "stem": stem, "progress": str(progress.path), "pending": pending,
                         "retry": [i for i in pending if i in done]})

    generated = 0
    if jobs:
        config = worker_config(a)
        try:
            if a.ray is not None:  # engine actors on a Ray cluster; the records land in the same progress files
                from .ray_executor import run_inference

                run_inference(config, jobs, a.ray)
                generated = sum(len(j["pending"]) for j in jobs)
            elif a.data_parallel_size == 1:
                generated = run_worker(config, jobs)
            else:
                _run_data_parallel(config, jobs, a.data_parallel_size, a.tensor_parallel_size, out_dir)
                generated = sum(len(j["pending"]) for j in jobs)
        except InputError:  # the engine (or the cluster) could not start: leave no output of this run behind
            for progress, items, name in created:
                if not any(is_finished(r) for r in progress.load(items, name, settings).values()):
                    progress.remove()
            if made_dir and not any(out_dir.iterdir()):
                out_dir.rmdir()
            raise
        except (WorkerFailed, RayRunFailed) as exc:  # finished records are kept: a rerun resumes
            print(f"error: {exc}", file=sys.stderr)
            return 1

    all_failed = []
    for name, stem, items, selected, final, progress in plan:
        done = progress.load(items, name, settings)
        missing = [i for i in selected if i not in done]
        if missing:
            print(f"error: {stem}: {len(missing)} records missing after the run (rerun to resume)", file=sys.stderr)
            return 1
        records = [done[i] for i in selected]
        write_predictions(final, records)
        write_json(run_record_path(final), {
            "model": settings["model"], "model_files": settings["model_files"], "settings": settings,
            "fingerprint": settings_fingerprint(settings), "records": len(records),
        }, indent=2)
        progress.remove()
        errors = error_summary(records)
        n_trunc = sum(1 for r in records if r.get("truncated"))
        line = f"{stem}: {len(records)} records -> {final}"
        notes = [f"{n} {k}" for k, n in sorted(errors.items())]
        if n_trunc:
            notes.append(f"{n_trunc} truncated at --max-tokens {a.max_tokens}")
        if notes:
            line += " (" + ", ".join(notes) + ")"
        if not a.no_report:
            report = out_dir / f"{stem}_results.txt"
            results = write_report(final, report)
            line += f"; ExpRate {results['exact_match_rate']:.2f}% -> {report}"
        print(line)
        if records and not any(is_finished(r) for r in records):
            all_failed.append(_all_failed_message(stem, records, a.resolved_image_root))
    print(f"done: {generated} records generated, {resumed} resumed from progress files")
    if all_failed:
        raise InputError("; ".join(all_failed) + ". Nothing was predicted there: fix the cause (--image-root, "
                         "the working folder) and rerun the same command, which redoes the failed records")
    return 0


if __name__ == "__main__":
    from ..cli import run_main

    sys.exit(run_main(worker_main))
