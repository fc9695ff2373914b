"""``--executor ray``: batch inference and error-corpus sampling on a Ray cluster, with the records of a local run.

Input: the manifest rows of a run (one request each, stable ``row_id``), an engine-actor class and its arguments,
:class:`RayOptions`. A Ray Data pipeline (``read_parquet`` → ``map_batches`` over an ``ActorPoolStrategy`` pool,
checkpointed on ``row_id`` → ``write_parquet``) runs them in ``<work-dir>/<label>-<key>/``; :func:`execute` merges
the output (a success beats an error retry, duplicates dropped, the count checked) and hands the records to the
caller, which writes the official files with its local code (byte-identical). Errors: :class:`InputError` for
bad options (exit 2), :class:`RayRunFailed` for a failed run or missing rows (exit 1). Design, run-folder layout,
failures and the cluster recipe: ``docs/inference.md`` ("On a Ray cluster"). Ray is imported lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, UniMuMERError

EXECUTORS = ("local", "ray")
#: seconds between two progress lines
PROGRESS_SECONDS = 10.0
#: rows per manifest shard (the blocks sent to the actors are cut to --batch-size rows after reading)
MANIFEST_SHARD_ROWS = 10000
#: an actor that died is restarted this many times; its unfinished batch is retried as often
MAX_RESTARTS = 3
#: the pipeline starts once the minimum number of replicas has its engine up (so the first blocks are spread
#: over all of them), waiting at most this long (a cluster without the resources for them fails clearly)
WAIT_FOR_REPLICAS_S = 1800
#: test / debugging hook: path of a marker file; the first actor that creates it kills its own engine process
#: once before generating (simulates an engine that died), so the restart and retry path is exercised
CRASH_ONCE_ENV = "UNIMUMER_RAY_CRASH_ONCE"


class RayRunFailed(UniMuMERError):
    """The Ray run did not produce every row (actors kept failing, rows missing); rerunning resumes it."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how a run goes on Ray.

    ``address``: ``ray.init`` address (``None``: start a local cluster); ``replicas``: (min, max) engine actors;
    ``work_dir``: folder of the run folders (shared storage); ``gpus_per_replica``: ``--tensor-parallel-size``
    (used where the cluster has GPUs); ``batch_size``: rows per block / generate call.
    """

    address: str | None
    replicas: tuple[int, int]
    work_dir: Path
    gpus_per_replica: int = 1
    batch_size: int = 64


def parse_replicas(text: str) -> tuple[int, int]:
    """``"N"`` → (N, N); ``"MIN,MAX"`` → (MIN, MAX) (an autoscaling pool). Raises :class:`InputError`."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2) or min(nums) < 1 or (len(nums) == 2 and nums[0] > nums[1]):
        raise InputError(f"--replicas {text}: expected N or MIN,MAX with 1 <= MIN <= MAX")
    return (nums[0], nums[-1])


def add_executor_args(p: argparse.ArgumentParser, work_dir: bool = True) -> None:
    """``--executor``, ``--ray-address``, ``--replicas`` (and ``--work-dir`` where the command has none)."""
    g = p.add_argument_group("--executor ray (Ray Data over a cluster; see docs/inference.md, 'On a Ray cluster')")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (default: engines on this machine) or ray (engine actors on a Ray cluster; same "
                        "records, resumable across nodes)")
    g.add_argument("--ray-address", default=None,
                   help="--executor ray: the cluster to join (ray.init address, e.g. auto or HEAD_IP:6379; "
                        "default: start a local one-machine cluster)")
    g.add_argument("--replicas", default=None, metavar="N|MIN,MAX",
                   help="--executor ray: engine actors, each with --tensor-parallel-size GPUs (default 1; MIN,MAX "
                        "lets Ray Data scale the pool)")
    if work_dir:
        g.add_argument("--work-dir", default=None, metavar="DIR",
                       help="--executor ray: folder of the run's manifest, Ray Data checkpoint and settings, on "
                            "storage every node sees (default: <output-dir>/.ray)")


def ray_options(a: argparse.Namespace, work_dir: str | os.PathLike, batch_size: int, gpus_per_replica: int,
                own_work_dir_flag: bool = False) -> RayOptions | None:
    """The :class:`RayOptions` of parsed arguments (``None`` for ``--executor local``). ``work_dir``: the folder
    of the run folders; ``own_work_dir_flag``: the command's ``--work-dir`` is this module's (``vllm_infer.py``),
    so it is refused with ``--executor local`` too. Raises :class:`InputError` when a Ray option is given with
    ``--executor local`` or ``--replicas`` is malformed."""
    flags = [("--ray-address", a.ray_address), ("--replicas", a.replicas)]
    if own_work_dir_flag:
        flags.append(("--work-dir", a.work_dir))
    given = [f for f, v in flags if v is not None]
    if a.executor != "ray":
        if given:
            raise InputError(f"{', '.join(given)}: only with --executor ray")
        return None
    replicas = parse_replicas(a.replicas) if a.replicas is not None else (1, 1)
    return RayOptions(address=a.ray_address, replicas=replicas, work_dir=Path(work_dir),
                      gpus_per_replica=gpus_per_replica, batch_size=batch_size)


# --------------------------------------------------------------------------------------------------- manifest
def manifest_rows(items: Sequence, row_id: Callable[[object], str], **extra) -> list[dict]:
    """One manifest row per :class:`~unimumer.inference.jobs.PromptItem`: ``row_id``, ``index``, ``image_path``,
    ``prompt``, ``gt``, ``task`` (name) and the ``extra`` columns (same value for every row)."""
    return [{"row_id": row_id(it), "index": it.index, "image_path": it.image_path, "prompt": it.prompt,
             "gt": it.gt, "task": it.task.name, **extra} for it in items]


def items_of(batch: dict) -> list:
    """The :class:`~unimumer.inference.jobs.PromptItem` s of a batch of manifest rows (column dict)."""
    from ..tasks import get_task
    from .jobs import PromptItem

    return [PromptItem(int(i), str(p), str(pr), str(g), get_task(str(t))) for i, p, pr, g, t in
            zip(batch["index"], batch["image_path"], batch["prompt"], batch["gt"], batch["task"], strict=True)]


def run_key(label: str, settings: dict, rows: Sequence[dict]) -> str:
    """sha256 (16 hex digits) of the label, the settings and every manifest row."""
    h = hashlib.sha256(json.dumps({"label": label, "settings": settings}, sort_keys=True).encode())
    for r in rows:
        h.update(json.dumps(r, sort_keys=True).encode() + b"\n")
    return h.hexdigest()[:16]


def prepare_run_dir(work_dir: Path, label: str, settings: dict, rows: Sequence[dict]) -> Path:
    """The run folder of these rows and settings, with its ``run.json`` and manifest (written once, atomically).

    An existing folder of the same key is resumed; one whose ``run.json`` names other settings is refused
    (:class:`InputError`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..files import read_json, write_json

    key = run_key(label, settings, rows)
    run = Path(work_dir).resolve() / f"{label}-{key}"  # absolute: Ray Data reads it as a file-system URI
    record = {"label": label, "key": key, "rows": len(rows), "settings": settings}
    if (run / "run.json").is_file():
        old = read_json(run / "run.json")
        if old != record:
            raise InputError(f"{run}: made by another run (run.json differs); delete it or choose another --work-dir")
        if (run / "manifest").is_dir():
            return run
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / f".manifest-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    for s in range(0, len(rows), MANIFEST_SHARD_ROWS):
        pq.write_table(pa.Table.from_pylist(list(rows[s:s + MANIFEST_SHARD_ROWS])),
                       tmp / f"part-{s // MANIFEST_SHARD_ROWS:05d}.parquet")
    shutil.rmtree(run / "manifest", ignore_errors=True)
    os.replace(tmp, run / "manifest")
    write_json(run / "run.json", record, indent=2)
    return run


# --------------------------------------------------------------------------------------------------- actors
def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class _EngineActor:
    """Base of the engine actors: one engine per actor, built once; ``__call__`` maps a batch of manifest rows to
    output rows. An exception from the engine itself means it is broken: the actor exits so that Ray restarts it
    (a fresh engine) and retries the batch."""

    def __init__(self, run_token: str):
        self.run_token = run_token
        self.engine = self.start()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def records(self, batch: dict) -> list[tuple[str, object, bool]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _maybe_crash(self) -> None:
        marker = os.environ.get(CRASH_ONCE_ENV)
        if not marker:
            return
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        import psutil

        for child in psutil.Process().children(recursive=True):
            if "EngineCore" in " ".join(child.cmdline()):
                child.kill()
        time.sleep(1.0)

    def __call__(self, batch: dict) -> dict:
        self._maybe_crash()
        try:
            out = self.records(batch)
        except Exception as exc:  # the engine is broken: a fresh actor (and engine) retries this batch
            msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            print(f"ray: engine failed ({type(exc).__name__}: {msg}); this replica exits, Ray restarts it and "
                  "retries the batch", file=sys.stderr, flush=True)
            try:
                self.engine.close()
            finally:
                os._exit(70)
        node = _node_id()
        return {"row_id": [r for r, _, _ in out], "payload": [json.dumps(p, ensure_ascii=False) for _, p, _ in out],
                "ok": [ok for _, _, ok in out], "node": [node] * len(out), "run": [self.run_token] * len(out)}


class InferenceActor(_EngineActor):
    """``scripts/vllm_infer.py``: the engine of :func:`unimumer.inference.runner.engine_from_config`; each row's
    payload is its official record from :func:`unimumer.inference.runner.batch_records`."""

    def __init__(self, run_token: str, config: dict):
        self.config = config
        super().__init__(run_token)

    def start(self):
        from .runner import engine_from_config

        return engine_from_config(self.config)

    def records(self, batch: dict) -> list[tuple[str, object, bool]]:
        from .progress import is_finished
        from .runner import batch_records

        items = items_of(batch)
        row_ids, jobs = [str(r) for r in batch["row_id"]], [int(j) for j in batch["job"]]
        out = []
        for job in sorted(set(jobs)):  # one prompt file's records per call, as locally (a block may hold several)
            pos = [k for k, j in enumerate(jobs) if j == job]
            made = batch_records(self.engine, [items[k] for k in pos], self.config["image_root"],
                                 self.config["save_raw"])
            out += [(row_ids[k], rec, is_finished(rec)) for k, (_i, rec) in zip(pos, made, strict=True)]
        return out


class SamplingActor(_EngineActor):
    """Error-corpus sampling: a vLLM engine of the fold model (``make_engine("vllm", base, settings, lora=...)``);
    each row's payload is ``{"image_path", "samples": [n records]}`` from :func:`unimumer.edl.corpus.sample_batch`."""

    def __init__(self, run_token: str, base: str, lora: str | None, settings: dict, n: int,
                 image_root: str | None, engine_kwargs: dict):
        self.args = (base, lora, settings, n, image_root, engine_kwargs)
        super().__init__(run_token)

    def start(self):
        from .engines import GenerationSettings, make_engine

        base, lora, settings, _n, _root, kwargs = self.args
        return make_engine("vllm", base, GenerationSettings(**settings), lora=lora, **kwargs)

    def records(self, batch: dict) -> list[tuple[str, object, bool]]:
        from ..edl.corpus import sample_batch

        _b, _l, _s, n, root, _k = self.args
        items = items_of(batch)
        ids = dict(zip((it.index for it in items), batch["row_id"], strict=True))  # one held-out file per run
        return [(str(ids[i]), payload, not any("error" in r for r in payload["samples"]))
                for i, payload in sample_batch(self.engine, items, n, root)]


# --------------------------------------------------------------------------------------------------- running
def _connect(opts: RayOptions) -> None:
    """``ray.init``: join ``opts.address``, or start a local cluster (no dashboard; enough logical CPUs for the
    replicas, the reader / writer tasks and Ray Data's checkpoint filter). This package travels with the job
    (``runtime_env py_modules``), so every node runs the same code as the driver."""
    import ray

    import unimumer

    env: dict = {"py_modules": [str(Path(unimumer.__file__).parent)]}
    if os.environ.get(CRASH_ONCE_ENV):  # actors get the environment of the nodes, not the driver's
        env["env_vars"] = {CRASH_ONCE_ENV: os.environ[CRASH_ONCE_ENV]}
    try:
        if opts.address:
            ray.init(address=opts.address, runtime_env=env, logging_level="WARNING")
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, opts.replicas[1] + 2), include_dashboard=False,
                     runtime_env=env, logging_level="WARNING")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {opts.address}" if opts.address else "a local Ray cluster"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(f"--executor ray: cannot connect to {where} ({first}); check --ray-address "
                         "(e.g. auto on a node of a running cluster, or HEAD_IP:6379) and RAY_AUTH_MODE") from None


def _count_rows(out_dir: Path, cache: dict) -> int:
    """Rows in the finished Parquet files of ``out_dir`` (files still being written are skipped)."""
    import pyarrow.parquet as pq

    if out_dir.is_dir():
        for f in out_dir.glob("*.parquet"):
            if f.name not in cache:
                try:
                    cache[f.name] = pq.read_metadata(f).num_rows
                except Exception:  # noqa: BLE001 - a file being written: counted next time
                    pass
    return sum(cache.values())


def _progress_loop(out_dir: Path, total: int, stop: threading.Event, log: Callable[[str], None],
                   seen: dict) -> None:
    """Every :data:`PROGRESS_SECONDS`: ``ray: D/T rows done (R rows/s)``, R since the first rows of this run were
    written (before that: the engines are starting). ``seen["first"]``: seconds until those first rows."""
    cache: dict = {}
    start_rows, t0 = _count_rows(out_dir, cache), time.monotonic()
    first_rows, next_log = None, t0 + PROGRESS_SECONDS
    while not stop.wait(1.0):
        rows = _count_rows(out_dir, cache)
        now = time.monotonic()
        if first_rows is None and rows > start_rows:
            first_rows, seen["first"], seen["first_rows"] = rows, now - t0, rows
        if now >= next_log:
            next_log = now + PROGRESS_SECONDS
            if first_rows is None:
                log(f"ray: {min(rows, total)}/{total} rows done (engines starting, {now - t0:.0f} s)")
            else:
                rate = (rows - first_rows) / max(now - t0 - seen["first"], 1e-9)
                log(f"ray: {min(rows, total)}/{total} rows done ({rate:.2f} rows/s)")


def _read_outputs(out_dir: Path, wanted: set[str]) -> tuple[dict[str, dict], int]:
    """Merged output rows ``{row_id: {"payload", "ok", "node", "run"}}`` of ``out_dir`` (only ``wanted`` ids; a
    success beats an error; duplicates dropped) and the number of duplicates."""
    import pyarrow.parquet as pq

    merged: dict[str, dict] = {}
    dups = 0
    for f in sorted(out_dir.glob("*.parquet")) if out_dir.is_dir() else []:
        try:
            rows = pq.read_table(f).to_pylist()
        except Exception:  # noqa: BLE001 - a file cut short by a kill; its block was not committed
            continue
        for r in rows:
            rid = r["row_id"]
            if rid not in wanted:
                continue
            old = merged.get(rid)
            if old is None:
                merged[rid] = r
            else:
                dups += 1
                if r["ok"] and not old["ok"]:
                    merged[rid] = r
    return merged, dups


def merge_outputs(run: Path, rows: Sequence[dict]) -> tuple[dict[str, dict], int]:
    """The merged output rows of the run folder for every manifest row (:func:`_read_outputs`) and the number of
    duplicates dropped. Raises :class:`RayRunFailed` naming the missing rows (the first ten) when any is missing."""
    merged, dups = _read_outputs(run / "output", {r["row_id"] for r in rows})
    missing = [r["row_id"] for r in rows if r["row_id"] not in merged]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise RayRunFailed(f"{len(missing)} of {len(rows)} rows missing after the Ray run ({shown}); rerun the "
                           f"same command to resume ({run} is kept)")
    return merged, dups


def execute(label: str, settings: dict, rows: list[dict], actor_cls: type, actor_args: tuple, opts: RayOptions,
            store: Callable[[dict[str, object]], None], log: Callable[[str], None] | None = None) -> dict:
    """Run ``rows`` through ``actor_cls(run_token, *actor_args)`` actors on Ray and hand the merged payloads
    ``{row_id: payload}`` to ``store`` (the caller's durable progress file); then the run folder is removed.

    Output: ``{"rows", "generated" (by this call), "resumed" (from an earlier call's checkpoint), "duplicates",
    "nodes": {node id: rows generated by this call}}``. Raises :class:`RayRunFailed` when Ray fails or rows are
    missing after the run (the run folder is kept: rerun to resume), :class:`InputError` for a run folder of
    other settings.
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    run = prepare_run_dir(opts.work_dir, label, settings, rows)
    out_dir, ckpt = run / "output", run / "checkpoint"
    wanted = {r["row_id"] for r in rows}
    token = uuid.uuid4().hex
    done_before, _ = _read_outputs(out_dir, wanted)
    todo = len(wanted) - len(done_before)
    lo, hi = opts.replicas
    log(f"ray: {label}: {len(rows)} rows, {len(done_before)} already done in {run}; {todo} to run on "
        f"{lo if lo == hi else f'{lo}..{hi}'} replica(s)")
    if todo:
        _run_pipeline(run, out_dir, ckpt, len(rows), actor_cls, (token, *actor_args), opts, log)
    merged, dups = merge_outputs(run, rows)
    nodes: dict[str, int] = {}
    for r in merged.values():
        if r["run"] == token:
            nodes[r["node"]] = nodes.get(r["node"], 0) + 1
    store({rid: json.loads(merged[rid]["payload"]) for rid in (r["row_id"] for r in rows)})
    shutil.rmtree(run, ignore_errors=True)
    try:
        opts.work_dir.rmdir()  # only when no other run folder is left in it
    except OSError:
        pass
    generated = sum(nodes.values())
    stats = {"rows": len(rows), "generated": generated, "resumed": len(rows) - generated, "duplicates": dups,
             "nodes": nodes}
    log(f"ray: {label}: {len(rows)} rows merged, {generated} generated by this run, {len(rows) - generated} "
        f"from an earlier run's checkpoint, {dups} duplicates dropped; rows per node: "
        + json.dumps(dict(sorted(nodes.items()))))
    return stats


def _run_pipeline(run: Path, out_dir: Path, ckpt: Path, total: int, actor_cls: type, actor_args: tuple,
                  opts: RayOptions, log: Callable[[str], None]) -> None:
    """read_parquet(manifest) → checkpoint filter → blocks of ``batch_size`` rows → engine actor pool →
    write_parquet(output), with Ray Data checkpointing on ``row_id``. Raises :class:`RayRunFailed`."""
    import warnings

    import ray
    import ray.data
    from ray.data import ActorPoolStrategy
    from ray.data.checkpoint import CheckpointConfig

    _connect(opts)
    stop = threading.Event()
    t0 = time.monotonic()
    seen: dict = {}
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own line: rows done / total, rate
        ctx.wait_for_min_actors_s = WAIT_FOR_REPLICAS_S
        ctx.checkpoint_config = CheckpointConfig(id_column="row_id", checkpoint_path=str(ckpt),
                                                 delete_checkpoint_on_success=False)
        lo, hi = opts.replicas
        pool = ActorPoolStrategy(size=lo) if lo == hi else ActorPoolStrategy(min_size=lo, max_size=hi)
        ds = ray.data.read_parquet(str(run / "manifest"))
        ds = ds.repartition(target_num_rows_per_block=opts.batch_size)
        with warnings.catch_warnings():  # 2.60 has no named parameter for the restart / retry counts yet
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(actor_cls, fn_constructor_args=actor_args, batch_size=opts.batch_size,
                                batch_format="numpy", compute=pool, num_cpus=1,
                                num_gpus=opts.gpus_per_replica if gpus else 0,
                                max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
        thread = threading.Thread(target=_progress_loop, args=(out_dir, total, stop, log, seen), daemon=True)
        thread.start()
        try:
            ds.write_parquet(str(out_dir))
        except Exception as exc:  # noqa: BLE001 - actors kept failing, the cluster went away, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            raise RayRunFailed(f"the Ray run failed ({type(exc).__name__}: {first}); finished rows are kept in "
                               f"{run}: rerun the same command to resume") from None
    finally:
        stop.set()
        ray.shutdown()
    wall = time.monotonic() - t0
    if "first" in seen and wall > seen["first"] + 1:
        rate = f"; first rows after {seen['first']:.1f} s, then {(total - seen['first_rows']) / (wall - seen['first']):.2f} rows/s"
    else:
        rate = ""
    log(f"ray: pipeline finished in {wall:.1f} s{rate}")


# --------------------------------------------------------------------------------------------------- the commands
def run_inference(config: dict, jobs: Sequence[dict], opts: RayOptions,
                  log: Callable[[str], None] | None = None) -> dict:
    """``scripts/vllm_infer.py --executor ray``: the pending records of every job (the runner's
    ``{"prompt_file", "stem", "progress", "pending"}``) as one manifest (``row_id`` = ``<stem>:<index>``), run by
    :class:`InferenceActor` s; the merged records are appended to each job's progress file, from which the runner
    writes the official outputs as after a local run. Returns :func:`execute`'s counts; raises as it does."""
    from .jobs import read_prompt_file
    from .progress import ProgressFile

    rows: list[dict] = []
    for j, job in enumerate(jobs):
        items = read_prompt_file(job["prompt_file"], config["task"])
        stem = job["stem"]
        rows += manifest_rows([items[i] for i in job["pending"]], lambda it, s=stem: f"{s}:{it.index}", job=j)

    def store(payloads: dict[str, object]) -> None:
        for job in jobs:
            ProgressFile(job["progress"]).append([(i, payloads[f"{job['stem']}:{i}"]) for i in job["pending"]])

    return execute("infer", config, rows, InferenceActor, (config,), opts, store, log)


def run_sampling(items: Sequence, heldout: Path, model_base: str, lora: str | None, settings, n: int,
                 image_root: str | None, engine_kwargs: dict, opts: RayOptions, store_progress: Callable,
                 log: Callable[[str], None] | None = None) -> dict:
    """Error-corpus sampling of the held-out ``items`` on Ray (``row_id`` = ``<held-out stem>:<index>:<img_id>:
    seed<seed>``; the ``n`` candidates of a row are one vLLM request with ``n = N``, children seeded ``seed + j``,
    exactly as locally), run by :class:`SamplingActor` s; ``store_progress([(index, payload)])`` gets the merged
    entries in item order. Returns :func:`execute`'s counts; raises as it does."""
    import dataclasses

    from .jobs import img_id

    def rid(it) -> str:
        return f"{heldout.stem}:{it.index}:{img_id(it.image_path)}:seed{settings.seed}"

    rows = manifest_rows(items, rid)
    key = {"heldout": str(heldout.resolve()), "model": str(model_base), "lora": lora, "n": n,
           "settings": settings.as_dict(), "image_root": image_root, "engine": engine_kwargs}
    actor_args = (model_base, lora, dataclasses.asdict(settings), n, image_root, engine_kwargs)
    return execute(heldout.stem, key, rows, SamplingActor, actor_args, opts,
                   lambda payloads: store_progress([(it.index, payloads[rid(it)]) for it in items]), log)
