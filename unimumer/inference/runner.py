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
from ..files import atomic_write_text, read_json, write_json
from ..images import load_image
from ..layout import run_record_path
from ..paths import REPO_ROOT
from .jobs import (
    PromptItem,
    device_groups,
    make_record,
    read_prompt_file,
    resolve_image,
    shard,
    visible_devices,
)
from .lifecycle import child_env, exit_on_signals, exit_with_parent, guard_descendants, stop_processes
from .progress import ProgressFile, error_summary, is_finished, progress_path, write_predictions
from .ray_executor import RayRunFailed
from .settings import EndpointOptions, EngineOptions, GenerationSettings

#: Test / debugging hook: the worker SIGKILLs itself after this many flushed batches (simulates a killed job).
KILL_AFTER_ENV = "UNIMUMER_INFER_KILL_AFTER_BATCHES"

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
    """Everything that changes the outputs (``.run.json`` ``settings``; its :func:`settings_fingerprint`); a
    progress file or prediction file made with other settings is not reused. ``a``: the checked arguments with
    ``a.generation`` / ``a.engine`` / ``a.endpoint`` (:mod:`unimumer.inference.settings`); the decoding part is
    :meth:`GenerationSettings.fingerprint_parts` (the mode's own fields, e.g. training's pixel bounds, last)."""
    common, mode = a.generation.fingerprint_parts()
    d = {
        "model": _model_id(a.engine.model),
        "model_files": model_files_fingerprint(a.engine.model),
        "backend": a.backend,
        "task": a.task,
        **common,
        "dtype": a.engine.dtype,
        "save_raw": a.save_raw,
        # where relative image paths were looked up (None: every path absolute); set by main()
        "image_root": getattr(a, "resolved_image_root", None),
        # the adapter is part of the model: a progress file of another adapter (or none) is not resumed
        **({"lora": a.lora_info.fingerprint()} if getattr(a, "lora_info", None) else {}),
        **mode,
    }
    if a.backend == "openai":  # the endpoint and served model name the model (never the key)
        d.update(model=a.endpoint.api_model, base_url=a.endpoint.base_url.rstrip("/"))
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
    """The JSON-serialisable configuration a worker (process or Ray actor) needs: the run's ``settings``
    (:func:`run_settings`), ``backend``, ``task``, ``batch_size``, ``image_root``, ``save_raw`` and the three
    settings objects as ``asdict()`` (``generation``, ``engine``, ``endpoint``; rebuilt by
    :func:`settings_from_config`)."""
    return {
        "settings": run_settings(a), "backend": a.backend, "task": a.task, "batch_size": a.batch_size,
        "image_root": getattr(a, "resolved_image_root", None), "save_raw": a.save_raw,
        "generation": a.generation.asdict(), "engine": a.engine.asdict(), "endpoint": a.endpoint.asdict(),
    }


def settings_from_config(config: dict) -> tuple[GenerationSettings, EngineOptions, EndpointOptions]:
    """The settings objects of a :func:`worker_config`, rebuilt with ``Cls(**d)``."""
    return (GenerationSettings(**config["generation"]), EngineOptions(**config["engine"]),
            EndpointOptions(**config["endpoint"]))


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
    """The engine of a :func:`worker_config` (``make_engine`` with the run's generation settings and engine /
    endpoint options); used by the local workers and by the Ray actors. Raises :class:`InputError` when it cannot
    start."""
    from .engines import make_engine

    generation, engine, endpoint = settings_from_config(config)
    return make_engine(config["backend"], engine.model, generation, **engine.engine_kwargs(),
                       **endpoint.engine_kwargs())


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


# --------------------------------------------------------------------------------------------------- run
def run(a: argparse.Namespace, parsed: Sequence[tuple[Path, list[PromptItem]]]) -> int:
    """The run of ``scripts/vllm_infer.py`` after its checks (``a``: the checked arguments, see
    :mod:`unimumer.commands.infer`; ``parsed``: every prompt file with its records): plan what is left
    (:func:`plan_file`), generate it (:func:`generate_jobs`), write every output (:func:`write_outputs`).
    Returns 0, or 1 when a worker failed. Raises :class:`InputError` when the engine cannot start, and after
    writing the outputs when every record of a prompt file failed."""
    out_dir = Path(a.output_dir)
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = run_settings(a)
    plan, jobs, created, resumed = [], [], [], 0  # created: progress files removed again when no engine starts
    for f, items in parsed:
        entry, job, new, done = plan_file(a, f, items, out_dir, settings)
        resumed += done
        plan += [entry] if entry else []
        jobs += [job] if job else []
        created += [new] if new else []
    generated = generate_jobs(a, jobs, out_dir, settings, created, made_dir) if jobs else 0
    if generated is None:
        return 1
    return write_outputs(a, plan, out_dir, settings, generated, resumed)


def plan_file(a: argparse.Namespace, f: Path, items: list[PromptItem], out_dir: Path, settings: dict):
    """What is left of one prompt file: ``(plan entry or None, job or None, created progress or None, records
    already done)``. A complete earlier output of the same run is skipped (its report written if missing); one of
    another run is refused (:func:`check_existing_output`); its failed records and those of a progress file are
    redone."""
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
                return None, None, None, 0
            print(f"{stem}: {final} holds {failed} failed records of {len(selected)}; redoing them")
            existing = old
    if a.overwrite:
        progress.remove()
    existed = progress.path.exists()
    done = progress.resume(items, f.name, settings)
    created = (progress, items, f.name) if not existed or progress.stale else None
    if existing is not None:  # the finished records of the earlier output are kept, its failed ones redone
        keep = [(i, r) for i, r in zip(selected, existing, strict=True)
                if is_finished(r) and not (i in done and is_finished(done[i]))]
        progress.append(keep)
        done.update(keep)
    pending = [i for i in selected if i not in done or not is_finished(done[i])]
    retried = sum(1 for i in pending if i in done)
    if done:
        print(f"{stem}: resuming, {len(selected) - len(pending)} of {len(selected)} records already done"
              + (f", {retried} failed records redone" if retried else ""))
    job = {"prompt_file": str(f), "stem": stem, "progress": str(progress.path), "pending": pending,
           "retry": [i for i in pending if i in done]} if pending else None
    return (f.name, stem, items, selected, final, progress), job, created, len(selected) - len(pending)


def generate_jobs(a: argparse.Namespace, jobs: list[dict], out_dir: Path, settings: dict, created: list,
                  made_dir: bool) -> int | None:
    """Generate the pending records of ``jobs`` (Ray actors, one local engine, or ``--data-parallel-size``
    worker processes); returns the number generated, or ``None`` after printing why a worker failed (finished
    records are kept). When no engine starts (:class:`InputError`) the progress files this run ``created`` and
    a folder it made are removed, then the error is raised."""
    config = worker_config(a)
    try:
        if a.ray is not None:  # engine actors on a Ray cluster; the records land in the same progress files
            from .ray_executor import run_inference

            run_inference(config, jobs, a.ray)
            return sum(len(j["pending"]) for j in jobs)
        if a.data_parallel_size == 1:
            return run_worker(config, jobs)
        _run_data_parallel(config, jobs, a.data_parallel_size, a.engine.tensor_parallel_size, out_dir)
        return sum(len(j["pending"]) for j in jobs)
    except InputError:  # the engine (or the cluster) could not start: leave no output of this run behind
        for progress, items, name in created:
            if not any(is_finished(r) for r in progress.load(items, name, settings).values()):
                progress.remove()
        if made_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    except (WorkerFailed, RayRunFailed) as exc:  # finished records are kept: a rerun resumes
        print(f"error: {exc}", file=sys.stderr)
        return None


def write_outputs(a: argparse.Namespace, plan: list, out_dir: Path, settings: dict, generated: int,
                  resumed: int) -> int:
    """Write each planned prediction file in input order (atomically), its ``.run.json`` and its report, and print
    one line per file. Returns 0, or 1 when records are missing; raises :class:`InputError` (after writing) when
    every record of a file failed."""
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
        n_trunc = sum(1 for r in records if r.get("truncated"))
        line = f"{stem}: {len(records)} records -> {final}"
        notes = [f"{n} {k}" for k, n in sorted(error_summary(records).items())]
        if n_trunc:
            notes.append(f"{n_trunc} truncated at --max-tokens {a.generation.max_tokens}")
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
