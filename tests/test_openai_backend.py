"""``--backend openai``: a model behind an OpenAI-compatible endpoint, against real servers on 127.0.0.1.

- a real vLLM OpenAI-compatible server (``vllm.entrypoints.openai.api_server``) serving the tiny Qwen2.5-VL
  checkpoint, started once for the module: greedy predictions over real CROHME 2014 images equal the local vLLM
  backend's, the run record names the endpoint and the served model and no file or log holds the key;
- a stub chat-completions server (stdlib ``http.server`` in a thread) that answers 429 once and then 200, or 500
  forever, depending on a marker in the prompt: the client retries the first, the second becomes an error record
  counted in the summary while the run completes; the request the stub receives has the official layout;
- an API key variable that is not set: one ``error:`` line, exit 2, no request sent;
- a client killed mid-run resumes from its progress file to the uninterrupted result; a server killed mid-run
  leaves error records that the rerun against the restarted server redoes, to the uninterrupted result;
  predict.py and the eval scripts pass the endpoint options through.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from unimumer.files import read_json, sharegpt_record, write_json
from unimumer.tasks import TASKS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
GREEDY = ["--temperature", "0", "--max-tokens", "16"]
KEY_VAR = "UNIMUMER_TEST_API_KEY"
KEY = "sk-test-secret-4711"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model: Path, port: int, name: str) -> tuple[subprocess.Popen, object]:
    """A real vLLM OpenAI-compatible server for ``model`` (float32, eager, as the local tests run it) on
    ``127.0.0.1:port``, in its own process group, once ``/health`` answers: ``(process, log file)``."""
    cmd = [PY, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--enforce-eager", "--max-model-len", "8192", "--seed", "0"]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"unimumer-api-server-{port}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, f"the vLLM server exited with {proc.returncode}; log: {log.name}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return proc, log
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the vLLM server did not come up; log: {log.name}"
            time.sleep(1)
    except BaseException:
        _stop_server(proc, log)
        raise


def _stop_server(proc: subprocess.Popen, log, sig: int = signal.SIGTERM) -> None:
    """Stop the server's whole process group (``sig``, then SIGKILL after 60 s) and close its log."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


class _Server:
    """The vLLM OpenAI-compatible server of :func:`_start_server` on a fixed address: ``url``, ``name``, ``port``;
    ``kill()`` (SIGKILL of its process group) and ``start()`` again on the same address, ``stop()``."""

    def __init__(self, model: Path, name: str):
        self.model, self.name, self.port = model, name, _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = self.log = None

    def start(self) -> None:
        self.proc, self.log = _start_server(self.model, self.port, self.name)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop_server(self.proc, self.log, sig)
        elif self.log is not None:
            self.log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def api_server(tiny_qwen2_5_vl):
    """A real vLLM OpenAI-compatible server for the tiny checkpoint (:class:`_Server`), started once for the module
    (a test that kills it starts it again on the same address). Stopped at the end of the module."""
    server = _Server(tiny_qwen2_5_vl, "tiny-qwen")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, crohme_samples) -> Path:
    """A run folder with data/CROHME/prompts/crohme_2014.json: every bundled CROHME 2014 image plus a missing one."""
    root = tmp_path_factory.mktemp("openai_root")
    img_dir = root / "data/CROHME/2014/images"
    img_dir.mkdir(parents=True)
    for s in crohme_samples:
        shutil.copy(s.path, img_dir / s.path.name)
    rel = "./data/CROHME/2014/images/"
    van = TASKS["vanilla"].prompt()
    rows = [(rel + s.path.name, van, s.caption) for s in crohme_samples]
    rows.insert(2, (rel + "does_not_exist.png", van, "x + 1"))
    write_json(root / "data/CROHME/prompts/crohme_2014.json", [sharegpt_record(*r) for r in rows])
    return root


def _infer(root: Path, out: Path, *extra: str, env: dict | None = None, prompts: str = "data/CROHME/prompts"):
    cmd = [PY, str(REPO / "scripts/vllm_infer.py"), "--input-dir", str(root / prompts), "--output-dir", str(out),
           *extra]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def _ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return res


def test_greedy_predictions_equal_the_local_vllm_backend(api_server, tiny_qwen2_5_vl, data_root, crohme_samples):
    base_url, name = api_server.url, api_server.name
    out_api, out_local = data_root / "out_api", data_root / "out_local"
    res = _ok(_infer(data_root, out_api, "--backend", "openai", "--base-url", base_url, "--api-model", name,
                     "--api-key-env", KEY_VAR, "--max-concurrency", "3", *GREEDY, env={KEY_VAR: KEY}))
    _ok(_infer(data_root, out_local, "--model", str(tiny_qwen2_5_vl), *GREEDY, "--dtype", "float32",
               "--enforce-eager", "--batch_size", "3"))
    api = read_json(out_api / "crohme_2014_pred.json")
    local = read_json(out_local / "crohme_2014_pred.json")
    assert len(api) == len(crohme_samples) + 1
    assert [r["image_path"] for r in api] == [r["image_path"] for r in local]
    assert [r["pred"] for r in api] == [r["pred"] for r in local]
    assert [r.get("truncated") for r in api] == [r.get("truncated") for r in local]
    assert sum(1 for r in api if r["pred"]) == len(crohme_samples)  # the tiny model answers something
    assert api[2]["error"].startswith("image not found") and "1 image not found" in res.stdout
    run = read_json(out_api / "crohme_2014_pred.run.json")
    assert run["settings"]["backend"] == "openai"
    assert run["settings"]["base_url"] == base_url and run["model"] == name
    # the key is read from the environment only: no output file, log line or run record holds it
    for f in out_api.iterdir():
        assert KEY not in f.read_text(encoding="utf-8"), f
    assert KEY not in res.stdout + res.stderr
    # a second run with the same endpoint and model (fingerprint unchanged) keeps the finished records and redoes
    # only the failed one (the missing image, failed again before any request): the file is unchanged
    before = (out_api / "crohme_2014_pred.json").read_bytes()
    again = _ok(_infer(data_root, out_api, "--backend", "openai", "--base-url", base_url, "--api-model", name,
                       *GREEDY))
    assert "holds 1 failed records of 7; redoing them" in again.stdout
    assert (out_api / "crohme_2014_pred.json").read_bytes() == before
    other = _infer(data_root, out_api, "--backend", "openai", "--base-url", base_url, "--api-model", "other",
                   *GREEDY)
    assert other.returncode == 2 and "made by another run" in other.stderr


def test_killed_run_resumes_to_the_uninterrupted_result(api_server, data_root):
    """The client killed after its first flushed batch (the runner's test hook), rerun: the finished records are
    kept, the rest is asked, and the final file equals an uninterrupted run's byte for byte."""
    base_url, name = api_server.url, api_server.name
    out = data_root / "out_api_killed"
    args = ("--backend", "openai", "--base-url", base_url, "--api-model", name, "--batch_size", "2", *GREEDY)
    killed = _infer(data_root, out, *args, env={"UNIMUMER_INFER_KILL_AFTER_BATCHES": "1"})
    assert killed.returncode != 0 and not (out / "crohme_2014_pred.json").exists()
    progress = list(out.glob(".crohme_2014_pred.progress.jsonl"))
    # header, the missing image's error record (written before any request), one batch of two
    assert progress and len(progress[0].read_text(encoding="utf-8").splitlines()) == 1 + 1 + 2
    res = _ok(_infer(data_root, out, *args))
    assert "resuming, 2 of 7 records already done" in res.stdout
    full = data_root / "out_api_full"
    _ok(_infer(data_root, full, *args))
    assert (out / "crohme_2014_pred.json").read_bytes() == (full / "crohme_2014_pred.json").read_bytes()


def test_server_killed_mid_run_then_restarted_resumes_to_the_uninterrupted_result(api_server, tmp_path):
    """The server dies (SIGKILL of its process group) while the client runs over the 48 bundled CROHME 2014
    images: the requests that find no server become error records and the run completes; with the server
    restarted on the same address, the rerun asks only those again, and the final file equals an uninterrupted
    run's byte for byte."""
    sample = REPO / "data/sample/crohme/2014"
    van = TASKS["vanilla"].prompt()
    rows = [line.split("\t", 1) for line in (sample / "caption.txt").read_text(encoding="utf-8").splitlines()]
    write_json(tmp_path / "prompts/crohme_2014.json",
               [sharegpt_record(str(sample / "img" / f"{i}.png"), van, c) for i, c in rows])
    args = ("--backend", "openai", "--base-url", api_server.url, "--api-model", api_server.name,
            "--batch_size", "1", "--max-concurrency", "1", "--max-retries", "0", *GREEDY)
    out = tmp_path / "out"
    cmd = [PY, str(REPO / "scripts/vllm_infer.py"), "--input-dir", str(tmp_path / "prompts"),
           "--output-dir", str(out), *args]
    client = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = out / ".crohme_2014_pred.progress.jsonl"
        deadline = time.monotonic() + 300
        while not (progress.exists() and len(progress.read_text(encoding="utf-8").splitlines()) >= 1 + 3):
            assert client.poll() is None and time.monotonic() < deadline, client.communicate()
            time.sleep(0.05)
        api_server.kill()  # the server dies with requests still to come
        stdout, stderr = client.communicate(timeout=600)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, stdout[-3000:] + stderr[-3000:]
    first = read_json(out / "crohme_2014_pred.json")
    failed = [r for r in first if r.get("error")]
    assert len(first) == 48 and 0 < len(failed) <= 45  # 3 or more were answered before the kill
    assert all(r["error"].startswith("API error") for r in failed)
    assert f"{len(failed)} API error" in stdout
    api_server.start()  # the same address again
    res = _ok(_infer(tmp_path, out, *args, prompts="prompts"))
    assert f"holds {len(failed)} failed records of 48" in res.stdout + res.stderr
    full = tmp_path / "full"
    _ok(_infer(tmp_path, full, *args, prompts="prompts"))
    assert (out / "crohme_2014_pred.json").read_bytes() == (full / "crohme_2014_pred.json").read_bytes()
    assert not any(r.get("error") for r in read_json(full / "crohme_2014_pred.json"))


# ------------------------------------------------------------------------------------------------ stub server
class _Stub:
    """Chat-completions stub: a prompt holding ``RATELIMIT`` gets 429 on its first request, one holding
    ``BROKEN`` gets 500 on every request, anything else 200 with the answer ``x ^ { 2 }``."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][1]["content"][1]["text"]
                with stub.lock:
                    stub.bodies.append(body)
                    seen = sum(1 for b in stub.bodies if b["messages"][1]["content"][1]["text"] == text)
                if "BROKEN" in text or ("RATELIMIT" in text and seen == 1):
                    code, payload = (500, {"error": {"message": "boom"}}) if "BROKEN" in text else \
                        (429, {"error": {"message": "slow down"}})
                else:
                    code, payload = 200, {
                        "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "x ^ { 2 }"}}]}
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self, marker: str) -> int:
        with self.lock:
            return sum(1 for b in self.bodies if marker in b["messages"][1]["content"][1]["text"])


@pytest.fixture()
def stub():
    s = _Stub()
    s.thread.start()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.fixture(scope="module")
def marker_root(tmp_path_factory, crohme_samples) -> Path:
    """Prompt file whose prompts tell the stub how to answer: plain, RATELIMIT (429 once), BROKEN (500 always)."""
    root = tmp_path_factory.mktemp("stub_root")
    (root / "img").mkdir()
    for s in crohme_samples[:3]:
        shutil.copy(s.path, root / "img" / s.path.name)
    rows = [(f"./img/{s.path.name}", f"{p} I have an image of a formula. Please write it in LaTeX.", s.caption)
            for s, p in zip(crohme_samples[:3], ("PLAIN", "RATELIMIT", "BROKEN"), strict=True)]
    write_json(root / "prompts/set.json", [sharegpt_record(*r) for r in rows])
    return root


def test_retries_429_and_turns_persistent_5xx_into_counted_error_records(stub, marker_root):
    out = marker_root / "out_retry"
    res = _ok(_infer(marker_root, out, "--backend", "openai", "--base-url", stub.url, "--api-model", "stub",
                     "--task", "vanilla", "--max-retries", "2", "--max-concurrency", "1", "--temperature", "0",
                     prompts="prompts"))
    recs = read_json(out / "set_pred.json")
    assert [r["pred"] for r in recs] == ["x ^ { 2 }", "x ^ { 2 }", ""]
    assert "error" not in recs[0] and "error" not in recs[1]
    assert recs[2]["error"].startswith("API error: HTTP 500")
    assert stub.count("PLAIN") == 1 and stub.count("RATELIMIT") == 2  # one 429, retried once
    assert stub.count("BROKEN") == 3  # the first try and --max-retries 2
    assert "1 API error" in res.stdout and "ExpRate" in res.stdout
    assert not list(out.glob(".*progress*"))  # the run completed


def test_request_layout_and_sampling_options(stub, marker_root, crohme_samples):
    """The request is the official chat (system turn, image, "<image>" + prompt) with the image as a lossless
    PNG data URL of the image the local engines prepare; greedy sends top_p 1 and no top_k."""
    from PIL import Image
    from qwen_vl_utils import process_vision_info

    from unimumer.images import load_image
    from unimumer.inference.engines import chat_messages

    out = marker_root / "out_layout"
    _ok(_infer(marker_root, out, "--backend", "openai", "--base-url", stub.url, "--api-model", "stub",
               "--task", "vanilla", "--temperature", "0", "--max-tokens", "77", "--limit", "1", prompts="prompts"))
    body = stub.bodies[0]
    assert body["model"] == "stub" and body["max_tokens"] == 77 and body["temperature"] == 0
    assert body["top_p"] == 1.0 and "top_k" not in body and body["seed"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    image_part, text_part = user["content"]
    prompt = "PLAIN I have an image of a formula. Please write it in LaTeX."
    assert text_part == {"type": "text", "text": "<image>" + prompt}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    expected = process_vision_info(chat_messages(load_image(crohme_samples[0].path), prompt))[0][0]
    assert sent.size == expected.size and sent.convert("RGB").tobytes() == expected.tobytes()
    # sampling: top_p and top_k (vLLM's extension) are sent
    _ok(_infer(marker_root, marker_root / "out_sampling", "--backend", "openai", "--base-url", stub.url,
               "--api-model", "stub", "--task", "vanilla", "--limit", "1", prompts="prompts"))
    body = stub.bodies[-1]
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.8, 50)


def test_unset_key_variable_is_one_error_line_before_any_request(stub, marker_root):
    out = marker_root / "out_nokey"
    env = {k: v for k, v in os.environ.items() if k != KEY_VAR}
    res = subprocess.run([PY, str(REPO / "scripts/vllm_infer.py"), "--input-dir", str(marker_root / "prompts"),
                          "--output-dir", str(out), "--backend", "openai", "--base-url", stub.url, "--api-model",
                          "stub", "--api-key-env", KEY_VAR], cwd=marker_root, capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --api-key-env " + KEY_VAR), res.stderr
    assert stub.bodies == [] and not out.exists()
    # local-model options are refused with the endpoint backend
    res = subprocess.run([PY, str(REPO / "scripts/vllm_infer.py"), "--input-dir", str(marker_root / "prompts"),
                          "--output-dir", str(out), "--backend", "openai", "--base-url", stub.url], cwd=marker_root,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: --backend openai needs --base-url")


def test_predict_openai_backend(stub, crohme_samples):
    res = subprocess.run([PY, str(REPO / "scripts/predict.py"), str(crohme_samples[0].path), "--backend", "openai",
                          "--base-url", stub.url, "--api-model", "stub", "--plain"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "x ^ { 2 }\n"
    assert stub.bodies[0]["messages"][1]["content"][1]["text"] == "<image>" + TASKS["vanilla"].prompt()
    res = subprocess.run([PY, str(REPO / "scripts/predict.py"), str(crohme_samples[0].path), "--backend", "hf"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip() == ("error: --model is required (or use --backend openai "
                                                          "with --base-url and --api-model)")


def test_eval_script_passes_the_endpoint_options_through(stub, marker_root):
    """``eval/eval_<dataset>.sh`` without -m and ``-- --backend openai ...``: the endpoint run, official layout;
    ``-k`` adds the canonical ExpRate line to the report."""
    out = marker_root / "out_eval_sh"
    res = subprocess.run(["bash", str(REPO / "eval/eval_crohme.sh"), "-i", "prompts", "-o", str(out), "-k", "--",
                          "--backend", "openai", "--base-url", stub.url, "--api-model", "stub", "--task", "vanilla",
                          "--limit", "1"], cwd=marker_root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHON": PY})
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["pred"] for r in read_json(out / "set_pred.json")] == ["x ^ { 2 }"]
    assert len(stub.bodies) == 1
    report = (out / "set_results.txt").read_text(encoding="utf-8")
    assert report.count("Canonical ExpRate:") == 1 and "eval_metrics_calculator.py --input" in res.stderr
    res = subprocess.run(["bash", str(REPO / "eval/eval_crohme.sh"), "-i", "prompts", "-m", "M", "--", "--backend",
                          "openai"], cwd=marker_root, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: -m/--model names a local model")
