"""``unimumer serve`` / ``scripts/serve.py``: web page and JSON API of a model (logic: unimumer.apps.serve)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

from ..apps.serve import DEFAULT_MAX_IMAGES, DEFAULT_MAX_UPLOAD_MB, Predictor, build_app, is_loopback
from ..apps.serve_guard import API_KEY_ENV
from ..errors import InputError
from ..inference.settings import Default
from .common import command_parser
from .engine_options import add_enforce_eager_arg, add_engine_args, engine_from_args

DESCRIPTION = """\
Serve a model: a web page at / and a JSON API on the same port, one engine loaded once.

API: GET /health; POST /api/predict (multipart image=@FILE, repeatable; task=vanilla|tree|can) ->
{"task", "seconds", "results": [{"filename", "latex", "output"}]}; bad requests get a 4xx JSON {"error"} naming
the file (e.g. 413 over --max-upload-mb).
Exposure: the default --host 127.0.0.1 serves this machine only; beyond it set UNIMUMER_API_KEY (or --api-key).
Model options are those of scripts/predict.py; the API returns the LaTeX predict.py prints for the same image.
Errors: a model that cannot be loaded, a port already taken or unusable options -> "error: ..." and exit 2.
Details (status codes, threat model): docs/inference.md, "Web page and HTTP API".
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/serve.py``."""
    p = command_parser("serve.py", DESCRIPTION)
    add_engine_args(p, temperature=Default(0.0, "greedy here: the API returns what scripts/predict.py prints "
                                                "(scripts/vllm_infer.py keeps the released script's 0.2)"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"require this key on every request (page and API); default: the {API_KEY_ENV} "
                        "environment variable (preferred: a command line is visible to other users), else none")
    add_enforce_eager_arg(p)
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest accepted image file, MB (default: {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES,
                   help=f"most images in one API request (default: {DEFAULT_MAX_IMAGES})")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most images generated together across concurrent requests (default: 32)")
    return p


def _check_listen(host: str, port: int) -> None:
    """Raise :class:`InputError` when ``host:port`` cannot be listened on (port taken, unknown address)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def _exit_on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/serve.py`` (see :data:`DESCRIPTION`): load the engine, serve until interrupted, return 0.

    Raises :class:`InputError` for unusable options or a model that cannot be loaded.
    """
    from ..inference.lifecycle import exit_on_signals

    exit_on_signals()  # SIGTERM: uvicorn stops, then re-raises it; the engine is closed in ``finally`` below
    a = build_parser().parse_args(argv)
    if a.max_upload_mb <= 0 or a.max_images < 1 or a.max_batch < 1:
        raise InputError("--max-upload-mb, --max-images and --max-batch must be positive")
    if not 0 < a.port < 65536:
        raise InputError(f"--port {a.port}: not a TCP port")
    api_key = a.api_key if a.api_key is not None else os.environ.get(API_KEY_ENV)
    if api_key is not None and not api_key.strip():
        raise InputError(f"--api-key / {API_KEY_ENV}: empty key")
    _check_listen(a.host, a.port)  # before the engine loads (minutes for a released model on a GPU)
    if api_key is None and not is_loopback(a.host):
        print(f"WARNING: serving on {a.host}, beyond this machine, WITHOUT an API key: anyone who reaches port "
              f"{a.port} can use the page and the API. Set {API_KEY_ENV} (or --api-key) to require a key.",
              file=sys.stderr, flush=True)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    engine, backend = engine_from_args(a, enforce_eager=a.enforce_eager)
    predictor = Predictor(engine, model=a.model, backend=backend, max_batch=a.max_batch)
    upload_dir = None
    try:
        import uvicorn

        upload_dir = tempfile.mkdtemp(prefix="unimumer-serve-")  # mode 0700: private to this user
        app = build_app(predictor, max_upload_bytes=int(a.max_upload_mb * 1024 * 1024), max_images=a.max_images,
                        upload_dir=upload_dir, api_key=api_key)
        print(f"serving {a.model} ({backend}) on http://{a.host}:{a.port}/  (API: /health, /api/predict; "
              f"{'API key required' if api_key else 'no API key'}; upload cache {upload_dir})", flush=True)
        # uvicorn stops gracefully on SIGTERM, then raises the signal again: with Python's default action the
        # process would die there, before the clean-up below; this handler turns it into a normal exit (0)
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        if upload_dir is not None:
            shutil.rmtree(upload_dir, ignore_errors=True)
        predictor.close()
    return 0
