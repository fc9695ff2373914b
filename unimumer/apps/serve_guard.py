"""The ASGI middleware in front of every route of ``scripts/serve.py``: API key, body size, file paths.

:class:`Guard` refuses, before any route runs: a request without the key (when one is set; header, bearer token or
the HMAC cookie ``POST /auth`` sets) with 401; a body over the limit, declared or counted as it arrives, with 413;
Gradio's URL-fetching routes (403) and a Gradio request naming a file outside the private upload folder (400).
Every refusal is one JSON error (the key form for a browser) and one ``serve:`` line on stderr; a request that
passes reaches the app unchanged. Threat model: docs/inference.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from collections.abc import Callable
from urllib.parse import parse_qs

COOKIE = "unimumer_auth"
#: on a 413: the server closes the connection after the reply instead of reading the rest of the body
_CLOSE = [(b"connection", b"close")]
LOGIN_PATH = "/auth"
API_KEY_ENV = "UNIMUMER_API_KEY"

_LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Uni-MuMER: API key</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 28em; margin: 4em auto">
<h2>Uni-MuMER</h2><p>{message}</p>
<form method="post" action="{action}">
<input type="password" name="key" placeholder="API key" autofocus required style="width: 100%; padding: .4em">
<p><button type="submit">Open the page</button></p></form></body></html>
"""


def log(message: str) -> None:
    """One line on stderr (the server's log), prefixed ``serve:``."""
    print(f"serve: {message}", file=sys.stderr, flush=True)


def _inside(path: str, folder: str) -> bool:
    real = os.path.realpath(path)
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def foreign_file(data, upload_dir: str) -> str | None:
    """The first ``"path"`` in a decoded JSON body that is a URL or a file outside ``upload_dir``, else None."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str) and path and ("://" in path or not _inside(path, upload_dir)):
                return path
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class Guard:
    """ASGI middleware (see the module docstring).

    ``app``: the ASGI app guarded. ``api_key``: the key, or None for none. ``upload_dir``: the only folder whose
    files a JSON body may name (Gradio's upload cache). ``body_limit(path) -> int``: the largest request body
    accepted for that path, in bytes.
    """

    def __init__(self, app, *, api_key: str | None, upload_dir: str, body_limit: Callable[[str], int]):
        self.app = app
        self.api_key = api_key
        self.upload_dir = os.path.realpath(upload_dir)
        self.body_limit = body_limit
        self._cookie = (hmac.new(api_key.encode(), b"unimumer page cookie", hashlib.sha256).hexdigest()
                        if api_key else None)

    # ------------------------------------------------------------------------------------------------ helpers
    @staticmethod
    async def _send(send, status: int, body: bytes, content_type: str, headers: list | None = None) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send, status: int, message: str, headers: list | None = None) -> None:
        await self._send(send, status, json.dumps({"error": message}).encode(), "application/json", headers)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        key = self.api_key.encode()
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), key):
            return True
        if hmac.compare_digest(headers.get(b"x-api-key", b""), key):
            return True
        for part in headers.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == COOKIE.encode() and hmac.compare_digest(value, self._cookie.encode()):
                return True
        return False

    async def _login_page(self, scope, send, status: int, message: str) -> None:
        page = _LOGIN_PAGE.format(message=message, action=scope.get("root_path", "") + LOGIN_PATH)
        await self._send(send, status, page.encode(), "text/html; charset=utf-8",
                         [(b"www-authenticate", b'Bearer realm="unimumer"')])

    async def _login(self, scope, receive, send) -> None:
        """``POST /auth`` (form field ``key``): the page cookie and a redirect to the page, or the form again."""
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if len(body) > 4096:
                return await self._error(send, 413, "login form over 4096 bytes")
            if not msg.get("more_body"):
                break
        key = (parse_qs(body.decode("latin-1")).get("key") or [""])[0]
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            log(f"refused: wrong API key at {LOGIN_PATH} from {_client(scope)}")
            return await self._login_page(scope, send, 401, "Wrong key. Enter the server's API key.")
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={self._cookie}; Path=/; HttpOnly; SameSite=Strict{secure}"
        await self._send(send, 303, b"", "text/plain", [(b"location", (scope.get("root_path", "") + "/").encode()),
                                                          (b"set-cookie", cookie.encode())])

    # ------------------------------------------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = "/" + scope.get("path", "").lstrip("/")
        headers = dict(scope.get("headers") or [])
        if self.api_key is not None and await self._answered_without_key(scope, receive, send, path, headers):
            return
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        low = path.lower()
        if low.startswith("/gradio_api/proxy=") or (low.startswith(("/gradio_api/file=", "/gradio_api/file/"))
                                                    and "://" in low):
            log(f"refused: server-side fetch {path[:200]} from {_client(scope)}")
            return await self._error(send, 403, "this server does not fetch URLs")

        limit = self.body_limit(path)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            log(f"refused: {scope['method']} {path} body of {length.decode('latin-1')[:20]} bytes, over {limit}")
            return await self._error(send, 413, f"request body of {length.decode('latin-1')[:20]} bytes, over the "
                                                f"limit of {limit} bytes", _CLOSE)
        state = {"received": 0, "refused": False, "started": False}

        async def counted_receive():
            if state["refused"]:  # never read the rest of a refused body
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > limit:
                    if not state["refused"] and not state["started"]:
                        log(f"refused: {scope['method']} {path} body over {limit} bytes (streamed)")
                        await self._error(send, 413, f"request body over the limit of {limit} bytes", _CLOSE)
                    state["refused"] = True
                    return {"type": "http.disconnect"}
            return msg

        async def tracked_send(msg):
            if state["refused"]:
                return
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        ctype = headers.get(b"content-type", b"").lower()
        if scope["method"] == "POST" and low.startswith("/gradio_api/") and not ctype.startswith(b"multipart/"):
            return await self._checked_json_call(scope, path, receive, counted_receive, tracked_send, send)
        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not state["refused"]:  # the app failed on a body cut short by us: already answered 413
                raise

    async def _answered_without_key(self, scope, receive, send, path: str, headers: dict) -> bool:
        """Answer a login-form post, or refuse a request without the API key; ``False`` when it may go on."""
        if scope["type"] == "http" and path == LOGIN_PATH and scope["method"] == "POST":
            await self._login(scope, receive, send)
            return True
        if self._authorized(headers):
            return False
        log(f"refused: no or wrong API key for {scope.get('method', 'WS')} {path} from {_client(scope)}")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        elif scope["method"] == "GET" and b"text/html" in headers.get(b"accept", b""):
            await self._login_page(scope, send, 401, "This server needs its API key.")
        else:
            await self._error(send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' "
                                         "or 'X-API-Key: KEY'", [(b"www-authenticate", b'Bearer realm="unimumer"')])
        return True

    async def _checked_json_call(self, scope, path: str, receive, counted_receive, tracked_send, send):
        """A Gradio API call with a small JSON body: read it whole (bounded by the limit), refuse one that names a
        file not uploaded here or a URL, else replay it to the app."""
        chunks = []
        while True:  # small JSON bodies: read whole (bounded by the limit), check the files they name
            msg = await counted_receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            data = json.loads(body) if body.strip() else None
        except (ValueError, RecursionError):
            data = None  # not JSON (or nested beyond the parser): Gradio answers it (422)
        bad = foreign_file(data, self.upload_dir) if data is not None else None
        if bad is not None:
            what = "a URL (the server fetches no URLs)" if "://" in bad else "not a file uploaded to this server"
            log(f"refused: {path} names {bad[:200]!r}: {what}")
            return await self._error(send, 400, f"file {bad[:200]!r}: {what}; upload the image instead")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, tracked_send)


def _client(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
