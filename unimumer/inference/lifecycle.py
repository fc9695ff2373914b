"""Process lifecycle: engine and worker processes end with the process that started them.

vLLM runs its engine in child processes (``VLLM::EngineCore``, which starts ``VLLM::Worker`` processes; on CPU and
whenever CUDA is initialised they are *spawned* interpreters, so nothing set in the parent runs in them, and vLLM
0.32 has no parent-death check in EngineCore). They are shut down only by the parent's ``LLM`` finalizers, which
never run when the parent dies of a signal's default action. Two pieces close that gap:

- :func:`exit_on_signals` (called first by every command that owns an engine or worker processes): SIGTERM and
  SIGHUP raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so ``finally`` blocks close the
  engine exactly as after Ctrl-C; :func:`unimumer.cli.run_main` then exits with ``128 + signal``.
- :func:`exit_with_parent` (called first by this project's own child processes: the data-parallel workers of
  ``scripts/vllm_infer.py``, the error corpus's sampling child): ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so the
  child stops (and closes its engine) the moment its parent dies instead of working on as an orphan.
- :func:`guard_descendants` (called before an engine or worker process is started): a small watchdog process
  (``python -m unimumer.inference.lifecycle PID TOKEN``) that keeps a list of PID's descendants and, once PID has
  ended (``kill -9`` included), sends them SIGTERM and, after :data:`GRACE_S`, SIGKILL. Orphans it had not seen
  yet are found by ``TOKEN``, which every process started after the call inherits in :data:`MARK_ENV`. It works for every start method
  and every child (vLLM engines, data-parallel workers, training / sampling children) without code in them.

Linux / POSIX only (``psutil``, ``getppid``); both are no-ops elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence

#: seconds between SIGTERM and SIGKILL for processes left behind (vLLM's own shutdown waits 5 s per process)
GRACE_S = 10.0
#: how often the watchdog looks at the watched process's descendants (seconds)
POLL_S = 0.5
#: seconds the watchdog lets descendants end on their own once the watched process has ended (multiprocessing's
#: resource tracker and vLLM's workers notice their parent's end by themselves)
SETTLE_S = 3.0

_guard: tuple[int, subprocess.Popen] | None = None
_stopping = False


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM / SIGHUP after :func:`exit_on_signals`; ``exit_code`` = 128 + signal
    (143 for SIGTERM), as the shell reports a process ended by that signal."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


def _raise_terminated(signum, frame):
    global _stopping
    if _stopping:  # a second signal while unwinding: let the clean-up (engine shutdown) finish
        return
    _stopping = True
    raise Terminated(signum)


def exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (``finally`` blocks then shut engines
    and worker processes down). A signal the process was told to ignore (``nohup``: SIGHUP) stays ignored; a second
    signal during the clean-up is ignored. Call from the main thread of a command, before engines start; a no-op
    in other threads."""
    global _stopping
    if threading.current_thread() is not threading.main_thread():
        return
    _stopping = False
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _raise_terminated)


#: environment variable whose space-separated tokens name the watchdogs a process belongs to (inherited by children)
MARK_ENV = "UNIMUMER_WATCHDOG"
#: environment variable holding the PID of the process that started a child (read by :func:`exit_with_parent`)
PARENT_PID_ENV = "UNIMUMER_PARENT_PID"


def child_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's environment) plus :data:`PARENT_PID_ENV` = this process's PID, for a
    child that calls :func:`exit_with_parent`."""
    return {**(os.environ if env is None else env), PARENT_PID_ENV: str(os.getpid())}


def exit_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``; with
    :func:`exit_on_signals` that unwinds like Ctrl-C). Should the parent named by :data:`PARENT_PID_ENV` be gone
    already, SIGTERM is sent at once. A no-op off Linux. Call from the main thread (the setting belongs to the
    process, the signal is raised in its main thread)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) != 0:
        return
    expected = os.environ.get(PARENT_PID_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def guard_descendants() -> None:
    """Start, once per process, the watchdog that ends this process's descendants when it dies (see the module
    docstring). Its stdout is closed, its stderr is this process's (it prints one line when it had to stop
    anything). Returns once the watchdog watches (a fraction of a second). Safe to call repeatedly; a forked child
    gets its own watchdog on its first call."""
    global _guard
    if os.name != "posix":
        return
    if _guard is not None and _guard[0] == os.getpid() and _guard[1].poll() is None:
        return
    import uuid

    from ..paths import REPO_ROOT

    token = uuid.uuid4().hex[:16]
    os.environ[MARK_ENV] = f"{os.environ.get(MARK_ENV, '')} {token}".strip()  # every later child inherits it
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT.resolve()), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "unimumer.inference.lifecycle", str(os.getpid()), token], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    proc.stdout.readline()  # "watching": from here on a kill of this process is noticed
    proc.stdout.close()
    _guard = (os.getpid(), proc)


def stop_processes(procs: Iterable, grace: float = GRACE_S) -> list[int]:
    """SIGTERM ``procs`` (``psutil.Process`` or ``subprocess.Popen``) and the descendants they have, wait up to
    ``grace`` seconds, then SIGKILL what is left (and its descendants). Returns the PIDs that had to be killed.
    A process that is gone already (or whose PID was reused: psutil compares start times) is skipped."""
    import psutil

    def tree(ps):
        out: dict[int, psutil.Process] = {}
        for p in ps:
            try:
                if not p.is_running():
                    continue
                out.setdefault(p.pid, p)
                for c in p.children(recursive=True):
                    out.setdefault(c.pid, c)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return list(out.values())

    def as_psutil(p):
        if isinstance(p, psutil.Process):
            return p
        try:
            return psutil.Process(p.pid) if p.poll() is None else None
        except psutil.NoSuchProcess:
            return None

    targets = tree([q for q in map(as_psutil, procs) if q is not None])
    for p in targets:
        try:
            p.terminate()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    _gone, alive = psutil.wait_procs(targets, timeout=grace)
    alive = tree(alive)
    for p in alive:
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=5)
    for p in procs:  # reap our own children
        if isinstance(p, subprocess.Popen):
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
    return [p.pid for p in alive]


def run_child(cmd: Sequence[str], grace: float = GRACE_S, **popen_kwargs) -> int:
    """``subprocess.run`` for long-running children (training, sampling): returns the exit code; when this
    process is interrupted (Ctrl-C, :class:`Terminated`, any exception) the child and its descendants get SIGTERM
    and ``grace`` seconds to shut their engines down before SIGKILL (``subprocess.run`` kills at once, which
    leaves a child's own engine processes behind). The exception is re-raised."""
    proc = subprocess.Popen(list(cmd), **popen_kwargs)
    try:
        return proc.wait()
    except BaseException:
        stop_processes([proc], grace)
        raise


def _marked(token: str, exclude: int) -> list:
    """Running processes whose :data:`MARK_ENV` holds ``token`` (those this user may read), but ``exclude``."""
    import psutil

    out = []
    for p in psutil.process_iter(["environ"]):
        env = p.info.get("environ") or {}
        if p.pid != exclude and token in env.get(MARK_ENV, "").split():
            out.append(p)
    return out


def _watch(pid: int, token: str = "") -> int:
    """The watchdog loop of ``python -m unimumer.inference.lifecycle PID TOKEN`` (PID: this watchdog's parent)."""
    import psutil

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # its life ends with PID's: Ctrl-C to the group is PID's business
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    me = os.getpid()
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0
    known: dict[int, psutil.Process] = {}
    ready = False
    while os.getppid() == pid:
        try:
            for c in parent.children(recursive=True):
                if c.pid != me:
                    known.setdefault(c.pid, c)
        except psutil.NoSuchProcess:
            break
        except psutil.AccessDenied:
            pass
        known = {k: p for k, p in known.items() if p.is_running()}
        if not ready:  # tell guard_descendants() that the first snapshot is taken
            ready = True
            try:
                print("watching", flush=True)
                sys.stdout.close()
            except OSError:
                pass
        time.sleep(POLL_S)
    if token:  # orphans started since the last look: they carry the token
        for p in _marked(token, me):
            known.setdefault(p.pid, p)
    _gone, left = psutil.wait_procs([p for p in known.values() if p.is_running()], timeout=SETTLE_S)
    if left:
        names = []
        for p in left:
            try:
                names.append(f"{p.pid} ({p.name()})")
            except psutil.Error:
                pass
        print(f"unimumer: process {pid} ended; stopping the {len(left)} processes it left: {', '.join(names)}",
              file=sys.stderr, flush=True)
        stop_processes(left)
    return 0


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))
