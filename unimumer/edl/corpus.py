"""Cross-fold error corpus for error-driven learning (Uni-MuMER paper Sec. 3.3, Fig. 4).

The paper builds the EDL data from the model's *own* mistakes on training images it has not seen: the training set
is split into K folds, a model is trained on K−1 folds and samples predictions on the held-out fold; the wrong
predictions form the error corpus, turned into ``error_find`` / ``error_fix`` data. The official release has no
code for it. Pipeline (every stage writes under ``--work-dir`` and is skipped when its outputs exist, so an
interrupted run resumes where it stopped):

1. ``split``   seeded K-fold split of the vanilla training file, grouped by image (an image never lands on both
   sides): ``data/<name>_fold<k>_train.json`` (the other K−1 folds) and ``data/<name>_fold<k>_heldout.json``,
   registered in the work dir's own ``data/dataset_info.json``; ``data/split.json`` marks the stage done.
2. ``train``   per fold, a LLaMA-Factory config derived from ``--base-config`` (dataset list replaced by the fold's
   training set, ``dataset_dir`` / ``media_dir`` / ``output_dir`` in the work dir, model from ``--model``, then the
   ``--train-override key=value`` pairs) in ``fold<k>/train.yaml``, run with ``llamafactory-cli train`` as a
   subprocess (log ``fold<k>/train.log``, model ``fold<k>/model``, marker ``fold<k>/train_done.json``).
3. ``sample``  per fold, vLLM samples N candidates per held-out image -- one request with ``SamplingParams(n=N)``
   at the given temperature -- in a child process (it owns the engine, which frees its memory on exit);
   resumable batch by batch (``fold<k>/.samples_pred.progress.jsonl``), output ``fold<k>/samples_pred.json``
   (prediction records ``gt, pred, image_path, img_id, sample``).
4. ``collect`` every wrong candidate (token list ≠ gt, engine failures left out) → ``wrong_pred.json``.
5. ``edl``     :func:`unimumer.edl.write_edl_datasets` → ``<name>_error_find.json`` / ``<name>_error_fix.json``,
   registered in ``--dataset-info``.

Defaults where the paper is not specific (justified in ``docs/edl.md``): K = 5, N = 4, T = 1.0 (top-p 0.8 / top-k 50
of the released evaluation), seed 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, UniMuMERError
from ..files import (
    read_json,
    read_json_list,
    register_datasets,
    relative_file_name,
    sharegpt_fields,
    write_json,
)
from ..paths import DATASET_INFO, REPO_ROOT
from ..tasks import dataset_name, task_for_prompt

DEFAULT_FOLDS = 5
DEFAULT_SAMPLES = 4
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 0.8
DEFAULT_TOP_K = 50


class StageError(UniMuMERError):
    """A pipeline stage (training / sampling subprocess) failed; the message names the stage and its log."""


# --------------------------------------------------------------------------------------------------- settings
@dataclass
class CorpusSettings:
    """Everything that determines the pipeline's outputs (stored in ``settings.json`` of the work dir).

    A work dir made with other settings is refused (outputs of two settings are never mixed).
    """

    train: str
    name: str
    folds: int = DEFAULT_FOLDS
    samples: int = DEFAULT_SAMPLES
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    max_tokens: int = 2048
    seed: int = 0
    base_config: str = ""
    model: str = ""
    train_overrides: list[str] = field(default_factory=list)
    image_root: str = "."
    preprocessing: str = "official"

    def generation(self):
        """The :class:`~unimumer.inference.settings.GenerationSettings` of the sampling stage."""
        from ..inference.settings import GenerationSettings

        return GenerationSettings(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                                  top_k=self.top_k, seed=self.seed, preprocessing=self.preprocessing)

    def fingerprint(self) -> dict:
        """The stored form: the settings plus the sha256 of the training file and of the base config."""
        d = dict(self.__dict__)
        d["train_sha256"] = _sha256(self.train)
        d["base_config_sha256"] = _sha256(self.base_config)
        return d


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_settings(work_dir: Path, settings: CorpusSettings) -> None:
    """Write ``settings.json`` in a new work dir, or check that an existing one was made with the same settings.

    Raises :class:`InputError` listing the differing settings (resuming with other settings would mix outputs).
    """
    path = work_dir / "settings.json"
    now = settings.fingerprint()
    if path.exists():
        old = read_json(path)
        if not isinstance(old, dict):
            raise InputError(f"{path}: not a settings file; delete the work dir")
        diff = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
        if diff:
            raise InputError(
                f"{work_dir} was made with other settings ({', '.join(diff)}); use a new --work-dir or delete it"
            )
        return
    write_json(path, now, indent=2)


# --------------------------------------------------------------------------------------------------- split
def resolve_image_path(image_path: str, image_root: str | Path | None) -> Path:
    """Where LLaMA-Factory finds an image: ``image_root / image_path`` when that file exists, else the path as given.

    Follows LLaMA-Factory 0.9.5 (``data/converter.py``: ``os.path.join(media_dir, path)`` if it is a file, else the
    original path, relative to the working directory); absolute paths are kept.
    """
    p = Path(image_path)
    if image_root is not None and not p.is_absolute():
        joined = Path(image_root) / p
        if joined.is_file():
            return joined
    return p


def default_image_root(base: dict) -> str:
    """The base config's image folder as LLaMA-Factory uses it: ``media_dir``, else ``dataset_dir``, else ``data``."""
    return str(base.get("media_dir") or base.get("dataset_dir") or "data")


def read_vanilla(path: str | Path, image_root: str | Path) -> list[dict]:
    """Read a vanilla ShareGPT training file and check it.

    Every record must be a ShareGPT record whose prompt is the vanilla recognition prompt and whose image exists
    (found with :func:`resolve_image_path`, i.e. as LLaMA-Factory finds it with ``media_dir = image_root``).
    Output: the records, unchanged. Raises :class:`InputError` naming the file and record otherwise.
    """
    records = read_json_list(path)
    for i, rec in enumerate(records):
        image, prompt, target = sharegpt_fields(rec, i)
        try:
            task = task_for_prompt(prompt)
        except InputError:
            task = None
        if task is None or task.name != "vanilla":
            raise InputError(f"{path} record {i}: not a vanilla recognition record (the error corpus samples "
                             "the vanilla task; pass the vanilla training file)")
        if not target.strip():
            raise InputError(f"{path} record {i}: empty ground truth")
        if not resolve_image_path(image, image_root).is_file():
            raise InputError(f"{path} record {i}: image {image} not found (looked up under --image-root "
                             f"{image_root}, then the current directory)")
    return records


def kfold_split(records: Sequence[dict], folds: int, seed: int) -> list[list[int]]:
    """Seeded K-fold split of record indices, grouped by image.

    Inputs: ShareGPT records, the number of folds K (≥ 2) and the seed. The distinct image paths are shuffled with
    ``random.Random(seed)`` and dealt round-robin into K folds (fold sizes differ by at most one image); all records
    of one image go to the same fold, so a held-out image is never seen in training. Output: K sorted index lists.
    Raises :class:`InputError` when K < 2 or there are fewer distinct images than folds.
    """
    if folds < 2:
        raise InputError(f"--folds {folds}: need at least 2 folds")
    by_image: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_image.setdefault(rec["images"][0], []).append(i)
    images = list(by_image)
    if len(images) < folds:
        raise InputError(f"--folds {folds}: the training file has only {len(images)} distinct images")
    random.Random(seed).shuffle(images)
    out: list[list[int]] = [[] for _ in range(folds)]
    for j, image in enumerate(images):
        out[j % folds].extend(by_image[image])
    return [sorted(f) for f in out]


def fold_dataset(name: str, k: int, part: str) -> str:
    """Dataset name of fold ``k``'s ``train`` (the other folds) or ``heldout`` part: ``<name>_fold<k>_<part>``."""
    return f"{name}_fold{k}_{part}"


def stage_split(work_dir: Path, settings: CorpusSettings, log=print) -> Path:
    """Stage 1: write the fold files and their ``dataset_info.json`` under ``work_dir/data``; skipped when done.

    Output: the data folder. Raises :class:`InputError` on a bad training file.
    """
    data_dir = work_dir / "data"
    marker = data_dir / "split.json"
    if marker.exists():
        log(f"[split] done before: {marker}")
        return data_dir
    records = read_vanilla(settings.train, settings.image_root)
    folds = kfold_split(records, settings.folds, settings.seed)
    entries = {}
    for k, held in enumerate(folds):
        held_set = set(held)
        train = [records[i] for i in range(len(records)) if i not in held_set]
        for part, recs in (("train", train), ("heldout", [records[i] for i in held])):
            p = write_json(data_dir / f"{fold_dataset(settings.name, k, part)}.json", recs, indent=4)
            entries[fold_dataset(settings.name, k, part)] = relative_file_name(p, data_dir)
    register_datasets(data_dir / "dataset_info.json", entries)
    write_json(marker, {"records": len(records), "folds": [len(f) for f in folds], "seed": settings.seed,
                        "heldout_images": [sorted({records[i]["images"][0] for i in f}) for f in folds]}, indent=2)
    log(f"[split] {len(records)} records → {settings.folds} folds of {', '.join(str(len(f)) for f in folds)}")
    return data_dir


# --------------------------------------------------------------------------------------------------- train
def load_base_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The base LLaMA-Factory config merged with the ``key=value`` overrides, as ``llamafactory-cli train`` reads it.

    Uses :func:`unimumer.training.config.load_config` (OmegaConf, LLaMA-Factory's own reader); keys whose value is
    ``null`` are dropped (``deepspeed=null`` removes DeepSpeed). Raises :class:`InputError` when the file is
    missing / not a mapping or an override is not ``key=value``.
    """
    from ..training.config import load_config

    cfg = load_config(path, list(overrides))
    return {k: v for k, v in cfg.items() if v is not None}


def fold_train_config(base: dict, settings: CorpusSettings, work_dir: Path, k: int) -> dict:
    """The LLaMA-Factory config of fold ``k``, derived from the base config (already merged with the overrides).

    Replaced: ``model_name_or_path`` (``--model``), ``dataset`` (the fold's training set), ``dataset_dir`` (the
    work dir's ``data/``), ``media_dir`` (``--image-root``, so the image paths of the training file resolve as
    they do for inference), ``output_dir`` (``fold<k>/model``), ``overwrite_output_dir: true``. Removed (they
    would point at other data or runs): ``eval_dataset``, ``tokenized_path``, ``resume_from_checkpoint``. A relative
    ``deepspeed`` path is made absolute (found relative to the current directory or the repository root). The
    replaced keys are the pipeline's: an override of one of them has no effect.
    """
    cfg = dict(base)
    for key in ("eval_dataset", "tokenized_path", "resume_from_checkpoint"):
        cfg.pop(key, None)
    cfg.update(
        model_name_or_path=settings.model,
        dataset=fold_dataset(settings.name, k, "train"),
        dataset_dir=str((work_dir / "data").resolve()),
        media_dir=str(Path(settings.image_root).resolve()),
        output_dir=str((work_dir / f"fold{k}" / "model").resolve()),
        overwrite_output_dir=True,
    )
    ds = cfg.get("deepspeed")
    if isinstance(ds, str) and ds and not Path(ds).is_absolute():
        for root in (Path.cwd(), REPO_ROOT):
            if (root / ds).is_file():
                cfg["deepspeed"] = str((root / ds).resolve())
                break
    return cfg


def _llamafactory_cli() -> str:
    here = Path(sys.executable).parent / "llamafactory-cli"
    if here.is_file():
        return str(here)
    found = shutil.which("llamafactory-cli")
    if not found:
        raise InputError("llamafactory-cli not found: install LLaMA-Factory (see README)")
    return found


def _child_env() -> dict:
    from ..inference.lifecycle import child_env

    env = child_env()  # the sampling child stops when this process dies
    env.setdefault("DISABLE_VERSION_CHECK", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    if "CUDA_VISIBLE_DEVICES" not in env:
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            import torch

            if not torch.cuda.is_available():
                env["CUDA_VISIBLE_DEVICES"] = ""  # CPU training (docs/training.md)
    return env


def run_logged(cmd: list[str], log_path: Path, what: str, env: dict, cwd: str | Path | None = None) -> float:
    """Run ``cmd`` (in ``cwd``) with stdout+stderr into ``log_path``; return its wall time in seconds.

    On failure the log's tail goes to stderr and :class:`StageError` names ``what`` and the log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    from ..inference.lifecycle import run_child

    with log_path.open("w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        # interrupted (Ctrl-C, SIGTERM): the child gets SIGTERM and time to close its engine, not SIGKILL
        returncode = run_child(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        print("\n".join(tail), file=sys.stderr)
        raise StageError(f"{what} failed (exit {returncode}); full log: {log_path}")
    return time.time() - start


def stage_train(work_dir: Path, settings: CorpusSettings, k: int, log=print) -> Path:
    """Stage 2 for fold ``k``: write ``fold<k>/train.yaml`` and run ``llamafactory-cli train`` on it.

    Skipped when ``fold<k>/train_done.json`` exists. An unfinished model folder is deleted first (the released
    configs save weights only, ``save_only_model: true``, so a partial run cannot be resumed from a checkpoint).
    Output: the model folder. Raises :class:`StageError` when training fails (log in ``fold<k>/train.log``).
    """
    fold = work_dir / f"fold{k}"
    marker = fold / "train_done.json"
    model_dir = fold / "model"
    if marker.exists():
        log(f"[train] fold {k}: done before ({model_dir})")
        return model_dir
    import yaml

    base = load_base_config(settings.base_config, settings.train_overrides)
    cfg = fold_train_config(base, settings, work_dir, k)
    cfg_path = fold / "train.yaml"
    from ..files import atomic_write_text

    atomic_write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    log(f"[train] fold {k}: llamafactory-cli train {cfg_path} (log {fold / 'train.log'})")
    seconds = run_logged([_llamafactory_cli(), "train", str(cfg_path)], fold / "train.log",
                          f"training of fold {k}", _child_env())
    if not ((model_dir / "config.json").is_file() or (model_dir / "adapter_config.json").is_file()):  # full / LoRA
        raise StageError(f"training of fold {k} wrote no model to {model_dir}; see {fold / 'train.log'}")
    write_json(marker, {"model_dir": str(model_dir), "seconds": round(seconds, 1)}, indent=2)
    log(f"[train] fold {k}: done in {seconds:.0f} s")
    return model_dir


# --------------------------------------------------------------------------------------------------- sample
def generate_n(engine, images: Sequence, prompts: Sequence[str], n: int) -> list[list[str]]:
    """``n`` sampled outputs per (loaded image, prompt) with a :class:`unimumer.inference.engines.VLLMEngine`:
    each image prepared by the engine's input mode, then :meth:`~unimumer.inference.engines.VLLMEngine.
    sample_outputs` (one request with ``n`` children), so a candidate is exactly what ``scripts/vllm_infer.py``
    would have produced with the same seed. Output: one list of ``n`` texts per input, in order."""
    prepared = [engine.prepare_image(img, p) for img, p in zip(images, prompts, strict=True)]
    return engine.sample_outputs(prepared, prompts, n)


def sample_batch(engine, batch: Sequence, n: int, image_root: str | Path | None) -> list[tuple[int, dict]]:
    """The progress entries ``(index, {"image_path", "samples": [n records]})`` of a batch of held-out
    :class:`~unimumer.inference.jobs.PromptItem` s: each image read with :func:`unimumer.images.load_model_image`
    (an unreadable image gives ``n`` error records, not a failure), then one :func:`generate_n` call. Used by the
    local sampler and by the Ray actors, so both make the same records."""
    from ..images import load_model_image
    from ..inference.jobs import make_record

    finished, ok, images = [], [], []
    for it in batch:
        try:
            images.append(load_model_image(resolve_image_path(it.image_path, image_root)))  # skip, not fail
            ok.append(it)
        except InputError as exc:
            rec = make_record(it, None, error=str(exc))
            finished.append((it.index, {"image_path": it.image_path, "samples": [rec] * n}))
    texts = generate_n(engine, images, [it.prompt for it in ok], n) if ok else []
    for it, outs in zip(ok, texts, strict=True):
        finished.append((it.index, {"image_path": it.image_path, "samples": [make_record(it, t) for t in outs]}))
    return finished


def _model_and_adapter(model: str | os.PathLike) -> tuple[str, str | None]:
    """``(base model, adapter folder or None)`` of a fold model: a LoRA fold (``finetuning_type: lora`` in the base
    config) saves a PEFT adapter, served on its ``base_model_name_or_path`` as a vLLM LoRA request."""
    cfg = Path(model) / "adapter_config.json"
    if not cfg.is_file():
        return str(model), None
    from ..files import read_json

    base = read_json(cfg).get("base_model_name_or_path") if isinstance(read_json(cfg), dict) else None
    if not base:
        raise InputError(f"{cfg}: LoRA adapter without base_model_name_or_path")
    return str(base), str(model)


def sample_candidates(
    heldout: str | Path,
    model: str,
    output: str | Path,
    n: int,
    settings,
    image_root: str | Path | None = None,
    engine_kwargs: dict | None = None,
    batch_size: int = 64,
    ray=None,
) -> dict:
    """Sample ``n`` candidates for every record of a held-out (vanilla ShareGPT) file and write a prediction file.

    Inputs: the held-out file, the model folder, the output path, ``n``, a
    :class:`unimumer.inference.engines.GenerationSettings` (temperature > 0), the image root
    (:func:`resolve_image_path`),
    vLLM engine options. Progress is appended per batch to ``.<output stem>.progress.jsonl`` next to the output
    (the inference progress file: a killed run resumes; other settings are refused), then the output is written
    atomically: ``n`` records per held-out record, ``{"gt", "pred", "image_path", "img_id", "sample"}`` in file
    order (``pred`` = the vanilla answer; engine / image failures carry an ``"error"`` key and an empty ``pred``).
    ``ray``: a :class:`unimumer.inference.ray_executor.RayOptions` runs the sampling on engine actors of a Ray
    cluster instead (same batches of records, same seeds, so the same candidates; see
    :func:`unimumer.inference.ray_executor.run_sampling`).
    Output: counts ``{"images", "candidates", "errors"}``. Raises :class:`InputError` on bad input.
    """
    from tqdm import tqdm

    from ..inference.engines import make_engine
    from ..inference.jobs import read_prompt_file
    from ..inference.progress import ProgressFile, write_predictions

    heldout, output = Path(heldout), Path(output)
    if n < 1:
        raise InputError(f"--samples {n}: must be >= 1")
    if n > 1 and settings.temperature <= 0:
        raise InputError("--temperature 0 is greedy decoding: the N candidates would all be identical")
    items = read_prompt_file(heldout, task="vanilla")
    progress = ProgressFile(output.parent / f".{output.stem}.progress.jsonl")
    prog_settings = {**settings.as_dict(), "n": n, "model": str(model)}
    done = progress.load(items, heldout.name, prog_settings)
    if not progress.path.exists():
        progress.create(heldout.name, len(items), prog_settings)
    todo = [it for it in items if it.index not in done]

    def store(finished):
        progress.append(finished)
        done.update(finished)

    if todo:
        base, lora = _model_and_adapter(model)
    if todo and ray is not None:
        from ..inference.ray_executor import run_sampling

        run_sampling(todo, heldout, base, lora, settings, n, str(image_root) if image_root is not None else None,
                     engine_kwargs or {}, ray, store)
        todo = []
    if todo:
        engine = make_engine("vllm", base, settings, lora=lora, **(engine_kwargs or {}))
        try:
            bar = tqdm(total=len(items), initial=len(done), desc=f"sampling {heldout.stem}", unit="img")
            for b in range(0, len(todo), batch_size):
                batch = todo[b:b + batch_size]
                store(sample_batch(engine, batch, n, image_root))
                bar.update(len(batch))
            bar.close()
        finally:
            engine.close()
    records = []
    for it in items:
        for j, rec in enumerate(done[it.index]["samples"]):
            records.append({**rec, "sample": j})
    write_predictions(output, records)
    progress.remove()
    return {"images": len(items), "candidates": len(records), "errors": sum(1 for r in records if "error" in r)}


def stage_sample(work_dir: Path, settings: CorpusSettings, k: int, model_dir: Path,
                 engine_kwargs: dict, batch_size: int, log=print, executor_args: Sequence[str] = ()) -> Path:
    """Stage 3 for fold ``k``: sample in a child process; skipped when ``fold<k>/samples_pred.json`` exists.

    The child owns the vLLM engine (vLLM spawns workers and needs a ``__main__`` guard; the engine's memory is
    freed when the child exits), or with ``executor_args`` (``--executor ray ...``) drives the engine actors of
    a Ray cluster (run folder ``fold<k>/.ray``). Log: ``fold<k>/sample.log``. Raises :class:`StageError` when the
    child fails.
    """
    fold = work_dir / f"fold{k}"
    out = fold / "samples_pred.json"
    if out.exists():
        log(f"[sample] fold {k}: done before ({out})")
        return out
    heldout = work_dir / "data" / f"{fold_dataset(settings.name, k, 'heldout')}.json"
    cmd = [sys.executable, "-m", "unimumer.commands.sample_child", "--heldout", str(heldout), "--model", str(model_dir),
           "--output", str(out), "--samples", str(settings.samples), *settings.generation().to_argv(),
           "--image-root", str(Path(settings.image_root).resolve()), "--batch-size", str(batch_size),
           "--engine-kwargs", json.dumps(engine_kwargs), *executor_args]
    log(f"[sample] fold {k}: {settings.samples} candidates per held-out image, temperature {settings.temperature} "
        f"(log {fold / 'sample.log'})")
    seconds = run_logged(cmd, fold / "sample.log", f"sampling of fold {k}", _child_env())
    log(f"[sample] fold {k}: done in {seconds:.0f} s")
    return out


# --------------------------------------------------------------------------------------------------- collect
def stage_collect(work_dir: Path, settings: CorpusSettings, log=print) -> tuple[Path, dict]:
    """Stage 4: gather every wrong candidate of all folds into ``wrong_pred.json``; skipped when it exists.

    A candidate is wrong when its token list differs from the gt's; candidates with an ``error`` key (image or
    engine failure) are counted and left out. Output: the file and the counts ``{"candidates", "failed",
    "correct", "wrong"}`` (also stored in ``collect.json``).
    """
    out, stats_path = work_dir / "wrong_pred.json", work_dir / "collect.json"
    if out.exists() and stats_path.exists():
        log(f"[collect] done before ({out})")
        return out, read_json(stats_path)
    wrong, counts = [], {"candidates": 0, "failed": 0, "correct": 0, "wrong": 0}
    for k in range(settings.folds):
        for rec in read_json_list(work_dir / f"fold{k}" / "samples_pred.json", allow_empty=True):
            counts["candidates"] += 1
            if "error" in rec and rec.get("error") != "empty output":
                counts["failed"] += 1
            elif rec["pred"].split() == rec["gt"].split():
                counts["correct"] += 1
            else:
                counts["wrong"] += 1
                wrong.append({**rec, "fold": k})
    from ..inference.progress import write_predictions

    write_predictions(out, wrong)
    write_json(stats_path, counts, indent=2)
    log(f"[collect] {counts['candidates']} candidates: {counts['wrong']} wrong, {counts['correct']} correct, "
        f"{counts['failed']} failed")
    return out, counts


# --------------------------------------------------------------------------------------------------- pipeline
def build_error_corpus(
    settings: CorpusSettings,
    work_dir: str | Path,
    output_dir: str | Path | None = None,
    dataset_info: str | Path | None = DATASET_INFO,
    engine_kwargs: dict | None = None,
    batch_size: int = 64,
    log=print,
    executor_args: Sequence[str] = (),
) -> dict:
    """Run (or resume) the whole cross-fold pipeline; see the module docstring for the stages and files.

    Inputs: the :class:`CorpusSettings`, the work dir, the folder of the two EDL files (default
    ``<work_dir>/edl``), the ``dataset_info.json`` to register them in (``None``: do not register), vLLM engine
    options (``dtype``, ``max_model_len``, ``gpu_memory_utilization``, ``tensor_parallel_size``) and the sampling
    batch size; ``executor_args``: the sampling child's ``--executor ray ...`` options (none: local engines).
    Output: a summary dict (also written to ``<work_dir>/summary.json``) with the counts: records,
    folds, candidates sampled, failed, correct, wrong, and the EDL build's records in / duplicates / written.
    Raises :class:`InputError` on bad input and :class:`StageError` when a training or sampling run fails.
    """
    work = Path(work_dir)
    if settings.folds < 2:
        raise InputError(f"--folds {settings.folds}: need at least 2 folds")
    if settings.samples < 1:
        raise InputError(f"--samples {settings.samples}: must be >= 1")
    if settings.samples > 1 and settings.temperature <= 0:
        raise InputError("--temperature 0 is greedy decoding: the N candidates would all be identical")
    for path, what in ((settings.train, "--train"), (settings.base_config, "--base-config")):
        if not Path(path).is_file():
            raise InputError(f"{what} {path}: file not found")
    load_base_config(settings.base_config, settings.train_overrides)
    work.mkdir(parents=True, exist_ok=True)
    check_settings(work, settings)
    stage_split(work, settings, log)
    for k in range(settings.folds):
        model_dir = stage_train(work, settings, k, log)
        stage_sample(work, settings, k, model_dir, engine_kwargs or {}, batch_size, log, executor_args)
    wrong_path, counts = stage_collect(work, settings, log)

    from .marking import write_edl_datasets

    out_dir = Path(output_dir) if output_dir is not None else work / "edl"
    names = {t: dataset_name(settings.name, t) for t in ("error_find", "error_fix")}
    edl_stats_path = work / "edl.json"
    files = {t: out_dir / f"{n}.json" for t, n in names.items()}
    if all(f.exists() for f in files.values()) and edl_stats_path.exists():
        log(f"[edl] done before ({', '.join(str(f) for f in files.values())})")
        edl = read_json(edl_stats_path)
        if dataset_info is not None:
            info = Path(dataset_info)
            register_datasets(info, {names[t]: relative_file_name(p, info.parent) for t, p in files.items()})
    else:
        _, st = write_edl_datasets([wrong_path], out_dir, settings.name, dataset_info)
        edl = {"records_in": st.records_in, "wrong": st.wrong, "duplicates": st.duplicates,
               "skipped": st.skipped, "written": st.written, "edits": dict(st.edits)}
        write_json(edl_stats_path, edl, indent=2)
        log(f"[edl] {st.summary()}")
    split = read_json(work / "data" / "split.json")
    summary = {
        "records": split["records"],
        "folds": settings.folds,
        "samples_per_image": settings.samples,
        "temperature": settings.temperature,
        "candidates_sampled": counts["candidates"],
        "failed": counts["failed"],
        "correct": counts["correct"],
        "wrong": counts["wrong"],
        "duplicates": edl["duplicates"],
        "skipped": edl["skipped"],
        "written": edl["written"],
        "edits": edl["edits"],
        "error_find": str(files["error_find"]),
        "error_fix": str(files["error_fix"]),
    }
    write_json(work / "summary.json", summary, indent=2)
    log(f"candidates sampled {summary['candidates_sampled']}, wrong {summary['wrong']}, duplicates "
        f"{summary['duplicates']}, written {summary['written']} per task → {files['error_find']}, "
        f"{files['error_fix']}")
    return summary
