"""``unimumer serve`` / ``scripts/serve.py``: a Gradio page at ``/`` and a JSON API (``GET /health``,
``POST /api/predict``) around one engine (:func:`unimumer.inference.engines.make_engine`).

Input: uploaded images (``load_image``, the engine's ``prepare_image``) and a task; output: the task's answer
(``Task.extract_answer``), the same as ``scripts/predict.py`` prints for the image and settings. One worker thread
owns the engine and generates every request queued meanwhile as one batch. :class:`serve_guard.Guard` stands in
front of every route. Status codes, page and threat model: docs/inference.md ("Web page and HTTP API").
"""

import asyncio
import io
import os
import queue
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import load_image
from ..paths import DATA_DIR
from ..tasks import GT_TASKS, get_task
from .serve_guard import Guard, log

#: Tasks offered by the page and the API, with their labels (paper Sec. 3: vanilla, Tree-CoT, symbol counting).
TASK_LABELS = {"vanilla": "Vanilla (image → LaTeX)", "tree": "Tree-CoT", "can": "Symbol counting"}
#: The bundled real CROHME 2014 test images shown as one-click examples on the page.
EXAMPLES_DIR = DATA_DIR / "sample" / "crohme" / "2014" / "img"
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_IMAGES = 16


class UploadError(Exception):
    """An upload the API refuses: ``status`` (HTTP 4xx) and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Prediction:
    """One recognized image: ``latex`` (the final answer, ``Task.extract_answer``), ``output`` (the whole model
    output), ``reasoning`` (the output before the answer line for Tree-CoT / counting, ``""`` for vanilla)."""

    latex: str
    output: str
    reasoning: str


def split_output(task_name: str, output: str) -> Prediction:
    """Split a model output into reasoning and answer with the task's own answer extraction.

    ``tree`` / ``can`` answer on the last non-empty line (:mod:`unimumer.tasks`); everything before it is
    the reasoning (the serialized syntax tree or the symbol counts). ``vanilla``: the whole output is the answer.
    """
    task = get_task(task_name)
    latex = task.extract_answer(output)
    reasoning = ""
    if task.answer == "last_line":
        lines = output.rstrip().splitlines()
        reasoning = "\n".join(lines[:-1]).strip() if lines else ""
    return Prediction(latex=latex, output=output, reasoning=reasoning)


def decode_upload(data: bytes, name: str = "upload", max_bytes: int | None = None):
    """Turn uploaded bytes into the RGB black-on-white ``PIL.Image`` the model reads.

    The bytes are checked (empty → 400, over ``max_bytes`` → 413), identified by Pillow (not an image → 415),
    written to a temporary file and read with :func:`unimumer.images.load_image`, the reader of
    ``scripts/predict.py`` (undecodable → 422; more pixels than Pillow's decompression-bomb limit → 413).
    Raises :class:`UploadError`.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError(400, f"{name}: empty upload")
    if max_bytes is not None and len(data) > max_bytes:
        raise UploadError(413, f"{name}: {len(data)} bytes, over the upload limit of {max_bytes} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = (im.format or "png").lower()
        except Image.DecompressionBombError:
            raise UploadError(413, f"{name}: too many pixels (Pillow's decompression-bomb limit)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise UploadError(415, f"{name}: not an image (Pillow cannot identify it)") from None
        fd, tmp = tempfile.mkstemp(suffix="." + fmt, prefix="unimumer-serve-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return load_image(tmp)
        except Image.DecompressionBombError:
            raise UploadError(413, f"{name}: too many pixels (Pillow's decompression-bomb limit)") from None
        except InputError:
            raise UploadError(422, f"{name}: cannot decode the {fmt.upper()} image (truncated or corrupt)") from None
        finally:
            os.unlink(tmp)


_STOP = object()


@dataclass
class _Job:
    images: list
    prompts: list[str]
    future: Future


class Predictor:
    """The one engine of the server behind a batching worker thread.

    ``engine``: an engine from :func:`unimumer.inference.engines.make_engine` (owned: :meth:`close` closes it).
    :meth:`predict` may be called from any thread (page handlers, API requests); requests queued while a batch
    runs are generated together as the next batch, at most ``max_batch`` images (a larger single request is one
    batch of its own).
    """

    def __init__(self, engine, *, model: str, backend: str, max_batch: int = 32):
        self.engine = engine
        self.model = model
        self.backend = backend
        self.max_batch = max_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="unimumer-engine", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        pending = None
        while True:
            job = self._queue.get() if pending is None else pending
            pending = None
            if job is _STOP:
                return
            batch, size = [job], len(job.images)
            while size < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or size + len(nxt.images) > self.max_batch:
                    pending = nxt
                    break
                batch.append(nxt)
                size += len(nxt.images)
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            try:
                outs = self.engine.generate(
                    [im for j in live for im in j.images], [p for j in live for p in j.prompts]
                ) if live else []
            except Exception as exc:  # the engine failed: every caller of this batch gets the error
                for j in live:
                    j.future.set_exception(exc)
                continue
            start = 0
            for j in live:
                j.future.set_result(outs[start:start + len(j.images)])
                start += len(j.images)

    def submit(self, images: Sequence, task: str, names: Sequence[str] | None = None) -> Future:
        """Queue loaded images (from :func:`decode_upload` / ``load_image``) for ``task``; the future resolves
        to ``list[Prediction]`` in input order. Raises :class:`InputError` for an unknown task or an image the
        engine refuses (aspect ratio over 200; the message starts with the image's name from ``names``)."""
        if task not in GT_TASKS:
            raise InputError(f"unknown task {task!r} (choose from {', '.join(GT_TASKS)})")
        prompt = get_task(task).prompt()
        prepared = []
        for i, im in enumerate(images):
            try:
                prepared.append(self.engine.prepare_image(im, prompt))
            except InputError as exc:
                name = names[i] if names is not None else f"image #{i + 1}"
                raise InputError(f"{name}: {exc}") from None
        raw: Future = Future()
        self._queue.put(_Job(prepared, [prompt] * len(prepared), raw))
        out: Future = Future()

        def done(f: Future) -> None:
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
            else:
                out.set_result([split_output(task, text) for text in f.result()])

        raw.add_done_callback(done)
        return out

    def predict(self, images: Sequence, task: str = "vanilla", names: Sequence[str] | None = None
                ) -> list[Prediction]:
        """Blocking :meth:`submit`: one :class:`Prediction` per image, in order."""
        return self.submit(images, task, names).result()

    def close(self) -> None:
        """Stop the worker thread after the queued batches and close the engine."""
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
        self.engine.close()


# ------------------------------------------------------------------------------------------------ JSON API
def build_api(predictor: Predictor, *, max_upload_bytes: int, max_images: int = DEFAULT_MAX_IMAGES):
    """The FastAPI app with ``GET /health`` and ``POST /api/predict`` (see :data:`DESCRIPTION`).

    Every refused request is a JSON ``{"error": message}`` with a 4xx status; an engine failure is a 503 JSON
    error; the server keeps serving.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="unimumer", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/health")
    def health() -> dict:
        """Liveness and the model served."""
        return {"status": "ok", "model": predictor.model, "backend": predictor.backend, "tasks": list(GT_TASKS)}

    @app.post("/api/predict")
    async def predict(request: Request):
        """Multipart ``image`` (one or more files) and optional ``task`` → the LaTeX of each image."""
        t0 = time.perf_counter()  # the body size is limited while it arrives: Guard, body_limits()
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            return error(415, "send the image(s) as multipart/form-data in the field 'image'")
        try:
            form = await request.form(max_files=max_images + 1, max_fields=16, max_part_size=1 << 16)
        except HTTPException as exc:  # malformed multipart body, too many files or fields
            if str(exc.detail).startswith("Too many files"):  # Starlette stops counting at max_files
                return error(413, f"more than {max_images} images, over the limit of {max_images} per request")
            return error(400 if exc.status_code >= 500 else exc.status_code, f"bad multipart body: {exc.detail}")
        try:
            task = form.get("task") or "vanilla"
            if not isinstance(task, str) or task not in GT_TASKS:
                return error(400, f"unknown task {task!r} (choose from {', '.join(GT_TASKS)})")
            files = form.getlist("image")
            if not files:
                return error(400, "no 'image' field in the form")
            if len(files) > max_images:
                return error(413, f"{len(files)} images, over the limit of {max_images} per request")
            images, names = [], []
            for i, f in enumerate(files):
                if isinstance(f, str):
                    return error(400, f"image #{i + 1}: a text field, not a file upload")
                name = f.filename or f"image #{i + 1}"
                if f.size is not None and f.size > max_upload_bytes:
                    return error(413, f"{name}: {f.size} bytes, over the upload limit of {max_upload_bytes} bytes")
                data = await f.read(max_upload_bytes + 1)
                try:
                    images.append(await asyncio.to_thread(decode_upload, data, name, max_upload_bytes))
                except UploadError as exc:
                    return error(exc.status, exc.message)
                except Exception as exc:  # noqa: BLE001 - a Pillow decoder failing in an unforeseen way
                    return error(422, f"{name}: cannot decode the image ({exc.__class__.__name__})")
                names.append(name)
            try:
                fut = await asyncio.to_thread(predictor.submit, images, task, names)  # resizing off the loop
            except InputError as exc:
                return error(422, str(exc))
            try:
                preds = await asyncio.wrap_future(fut)
            except Exception as exc:  # noqa: BLE001 - the engine failed; report it, keep serving
                return error(503, f"the engine failed: {exc.__class__.__name__}: {str(exc)[:300]}")
        finally:
            await form.close()
        results = [{"filename": n, "latex": p.latex, "output": p.output} for n, p in zip(names, preds, strict=True)]
        body = {"task": task, "seconds": round(time.perf_counter() - t0, 4), "results": results}
        if len(results) == 1:
            body.update(latex=results[0]["latex"], output=results[0]["output"])
        return body

    return app


# ------------------------------------------------------------------------------------------------ web page
def example_images(limit: int = 8) -> list[str]:
    """The first ``limit`` bundled CROHME 2014 test images (sorted paths), the page's one-click examples."""
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.png"))[:limit]]


def _page_recognizer(predictor: Predictor, max_upload_bytes: int):
    """``recognize(image, task, source) -> (latex, rendered Markdown, reasoning, latency line)`` of the page's two
    buttons; every refusal is a ``gr.Error`` with the API's one-line message and one ``serve:`` log line."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    def fail(source: str, message: str) -> Exception:
        log(f"page {source}: {message}")
        return gr.Error(message, print_exception=False)

    def uploaded_bytes(image: dict) -> tuple[bytes, str]:
        path = image.get("path") if isinstance(image, dict) else None
        name = Path(str(image.get("orig_name") or path or "upload")).name if isinstance(image, dict) else "upload"
        folder = os.path.realpath(get_upload_folder())
        if not isinstance(path, str) or not os.path.realpath(path).startswith(folder + os.sep):
            raise fail("image", f"{name}: not a file uploaded to this server")  # Guard and Gradio refuse first
        if os.path.getsize(path) > max_upload_bytes:
            raise fail("image", f"{name}: {os.path.getsize(path)} bytes, over the upload limit of "
                                f"{max_upload_bytes} bytes")
        return Path(path).read_bytes(), name

    def recognize(image, task: str, source: str):
        if image is None:
            raise fail(source, "Draw a formula or give an image first.")
        if source == "drawing":  # Sketchpad value: {"background", "layers", "composite"} as PIL images
            comp = image.get("composite") if isinstance(image, dict) else None
            if comp is None or (comp.mode in ("RGBA", "LA") and comp.getchannel("A").getbbox() is None):
                raise fail(source, "The canvas is empty: draw a formula first.")
            buf = io.BytesIO()
            comp.save(buf, format="PNG")
            data, name = buf.getvalue(), "sketch"
        else:
            data, name = uploaded_bytes(image)
        t0 = time.perf_counter()
        try:
            pred = predictor.predict([decode_upload(data, name, max_upload_bytes)], task, [name])[0]
        except UploadError as exc:
            raise fail(source, exc.message) from None
        except InputError as exc:
            raise fail(source, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - shown on the page, the server keeps serving
            raise fail(source, f"recognition failed: {exc.__class__.__name__}: {str(exc)[:300]}") from None
        seconds = time.perf_counter() - t0
        rendered = f"$$\n{pred.latex}\n$$" if pred.latex else "*(empty answer)*"
        latency = f"{source}: {seconds:.2f} s ({predictor.backend}, task {task})"
        return pred.latex, rendered, pred.reasoning, latency

    return recognize


def build_page(predictor: Predictor, *, max_upload_bytes: int):
    """The Gradio ``Blocks`` of the page (sketch / upload / paste → LaTeX, rendering, reasoning, latency).

    The upload event gets Gradio's raw ``FileData`` (no Gradio preprocessing): the uploaded file's bytes go through
    :func:`decode_upload` as an API upload does, so a bad file is the API's one-line message on the page and one
    ``serve:`` log line, not a Gradio traceback.
    """
    import gradio as gr

    recognize = _page_recognizer(predictor, max_upload_bytes)
    with gr.Blocks(title="Uni-MuMER: handwritten math → LaTeX") as page:
        gr.Markdown(f"## Uni-MuMER: handwritten mathematical expression → LaTeX\n"
                    f"Model `{predictor.model}` · backend `{predictor.backend}`")
        with gr.Row():
            with gr.Column(scale=1):
                task = gr.Radio([(label, name) for name, label in TASK_LABELS.items()], value="vanilla",
                                label="Task", elem_id="task")
                with gr.Tabs():
                    with gr.Tab("Upload / paste", id="upload"):
                        upload = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Image",
                                          elem_id="upload-image", height=260)
                        upload_btn = gr.Button("Recognize image", variant="primary", elem_id="recognize-upload")
                        gr.Examples(example_images(), inputs=[upload], label="CROHME 2014 test images",
                                    elem_id="examples")
                    with gr.Tab("Draw", id="draw"):
                        sketch = gr.Sketchpad(type="pil", label="Draw a formula (pick the brush on the left)", elem_id="sketch",
                                              layers=False,
                                              canvas_size=(800, 260),
                                              brush=gr.Brush(default_size=4, colors=["#000000"],
                                                             color_mode="fixed"))
                        sketch_btn = gr.Button("Recognize drawing", variant="primary", elem_id="recognize-sketch")
            with gr.Column(scale=1):
                latex = gr.Textbox(label="LaTeX", buttons=["copy"], lines=2, elem_id="latex", interactive=False)
                rendered = gr.Markdown(latex_delimiters=[{"left": "$$", "right": "$$", "display": True}],
                                       elem_id="rendered", label="Rendered")
                reasoning = gr.Textbox(label="Reasoning (Tree-CoT tree / symbol counts)", lines=4,
                                       elem_id="reasoning", interactive=False)
                latency = gr.Markdown(elem_id="latency")
        outputs = [latex, rendered, reasoning, latency]
        # several visitors' requests may run at once: the predictor batches them with the API's
        upload_btn.click(lambda im, t: recognize(im, t, "image"), [upload, task], outputs, api_name="recognize_image",
                         concurrency_limit=16, preprocess=False)
        sketch_btn.click(lambda im, t: recognize(im, t, "drawing"), [sketch, task], outputs,
                         api_name="recognize_drawing", concurrency_limit=16)
    return page


def body_limits(max_upload_bytes: int, max_images: int) -> tuple[int, int]:
    """Largest request body in bytes: ``(POST /api/predict, every other route)`` — the images plus 64 KiB of
    form overhead."""
    return max_images * max_upload_bytes + (1 << 16), max_upload_bytes + (1 << 16)


def build_app(predictor: Predictor, *, max_upload_bytes: int, upload_dir: str, max_images: int = DEFAULT_MAX_IMAGES,
              api_key: str | None = None):
    """The whole server: the JSON API routes, then the Gradio page mounted at ``/`` (one engine for both), behind
    :class:`unimumer.apps.serve_guard.Guard` (API key, body size, no foreign files or URLs).

    ``upload_dir``: an existing private folder (the caller creates and removes it) that becomes Gradio's upload
    cache (``GRADIO_TEMP_DIR``, set here, before the page's components read it). Gradio's own file checks are on:
    ``mount_gradio_app`` leaves the Blocks "not launched", and Gradio skips its allowed-path check for such Blocks,
    so the flags ``launch()`` sets are set here; an event may then only name files uploaded to this server.
    Gradio's error details (paths included) are not sent to clients (``show_error=False``), its run history (which
    can connect to the Hugging Face Hub) is off.
    """
    import gradio as gr

    os.environ["GRADIO_TEMP_DIR"] = upload_dir
    os.environ["GRADIO_EXAMPLES_CACHE"] = os.path.join(upload_dir, "examples")
    app = build_api(predictor, max_upload_bytes=max_upload_bytes, max_images=max_images)
    page = build_page(predictor, max_upload_bytes=max_upload_bytes)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: the page works offline
    app = gr.mount_gradio_app(app, page, path="/", allowed_paths=[str(EXAMPLES_DIR)], theme=theme,
                              max_file_size=max_upload_bytes, ssr_mode=False, footer_links=[], show_error=False,
                              run_history=False, mcp_server=False)
    page.has_launched = page.is_running = True  # what Blocks.launch() sets: Gradio's file checks apply
    api_limit, page_limit = body_limits(max_upload_bytes, max_images)
    return Guard(app, api_key=api_key, upload_dir=upload_dir,
                 body_limit=lambda path: api_limit if path.rstrip("/") == "/api/predict" else page_limit)


# ------------------------------------------------------------------------------------------------ CLI


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (only this machine can connect)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)
