"""The review page's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1, in a thread.

    GET  /                          the page (static/index.html, with static/app.js and static/style.css)
    GET  /api/queue[?worker=W]      {"loops": [...]}: the human loops waiting for worker W (default
                                    local-reviewer), least confident first
    GET  /api/loops/<name>          one loop's document: text, labels, the model's spans and scores
    POST /api/loops/<name>/answer   {"entities": [{"label", "startOffset", "endOffset"}], "seconds": n,
                                    "worker": W}: 200 when A2I has it, 202 when taken and queued for the
                                    service's next round (desk.ReviewDesk.answer)
    GET  /api/status                review counts, versions, trainings (see desk.page_status)
    GET  /report/...                the workspace's HTML report (`nerloop report`), when there is one

API errors are JSON {"error": message} with a 4xx status: 400 a bad answer, 404 an unknown loop, 409 a
loop answered already (by this worker), 411/413/415 a body missing, too large or not JSON, 422 a loop whose input is
not an entity review. Only this machine can reach the server, and a request must name it in its
Host header (so a web page on another site cannot read the API through DNS rebinding); an answer
must be JSON, and when it says where it comes from (Origin), from this page (so no other site's
form can post one).
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
import sys
import threading
import traceback
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

from nerloop_local.review.desk import ReviewDesk, ReviewError

HOST = "127.0.0.1"
MAX_BODY_BYTES = 1_048_576
STATIC_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
LOOP_PATH = re.compile(r"^/api/loops/([a-z0-9](?:-*[a-z0-9]){0,62})(/answer)?$")


@cache
def static_file(name: str) -> bytes:
    """A file of the page, from the installed package."""
    return resources.files("nerloop_local.review").joinpath("static", name).read_bytes()


def missing_report_page(report_dir: Path) -> bytes:
    """What /report shows before a report was made."""
    where = html.escape(str(report_dir / "index.html"))
    return (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>No report yet</title>'
            f"<h1>No report yet</h1><p>Run <code>nerloop report</code> on this workspace: it writes "
            f"<code>{where}</code>, which this address then shows.</p><p><a href=\"/\">Back to the review</a></p>"
            f"</html>").encode()


class ReviewServer:
    """The review page for one desk, served until `stop` (or the end of a `with` block)."""

    def __init__(self, desk: ReviewDesk, report_dir: Path, port: int, host: str = HOST) -> None:
        """Bind now (OSError when the port is taken); port 0 takes any free port."""
        self.desk = desk
        self.report_dir = report_dir
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.review = self  # type: ignore[attr-defined]
        self.host, self.port = host, int(self._httpd.server_address[1])
        self.allowed_hosts = {f"{self.host}:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> ReviewServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nerloop-review", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_version = "nerloop-review"
    protocol_version = "HTTP/1.1"

    @property
    def review(self) -> ReviewServer:
        return self.server.review  # type: ignore[attr-defined,no-any-return]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: `nerloop up` prints the loop's deliveries, not every request of the page."""

    # --- routing ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _dispatch(self, route: Callable[[str], None]) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if self.headers.get("Host") not in self.review.allowed_hosts:
                raise ReviewError(403, f"this server answers requests for {self.review.url} only")
            route(path)
        except ReviewError as exc:
            self._error(path, exc.status, exc.message)
        except Exception as exc:  # the page gets an answer, the terminal the traceback
            traceback.print_exc(file=sys.stderr)
            self._error(path, 500, f"internal error: {type(exc).__name__}: {exc}")

    def _get(self, path: str) -> None:
        desk = self.review.desk
        if path == "/":
            self._static("index.html")
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC_TYPES:
            self._static(path[len("/static/"):])
        elif path == "/api/queue":
            query = parse_qs(self.path.partition("?")[2])
            workers = query.get("worker") or []
            self._json({"loops": desk.queue(workers[0] if workers else None)})
        elif path == "/api/status":
            self._json(desk.status())
        elif (match := LOOP_PATH.match(path)) and not match.group(2):
            self._json(desk.document(match.group(1)))
        elif path == "/favicon.ico":  # asked for by every browser: none, and no error in its console
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path == "/report":
            self._send(HTTPStatus.PERMANENT_REDIRECT, b"", "text/plain", {"Location": "/report/"})
        elif path.startswith("/report/"):
            self._report(unquote(path[len("/report/"):]))
        else:
            raise ReviewError(404, f"nothing at {path}")

    def _post(self, path: str) -> None:
        match = LOOP_PATH.match(path)
        if not (match and match.group(2)):
            raise ReviewError(404, f"nothing takes a POST at {path}")
        origin = self.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] not in self.review.allowed_hosts:
            raise ReviewError(403, f"answers come from {self.review.url} only, not {origin}")
        taken = self.review.desk.answer(match.group(1), self._json_body())
        self._json(taken, HTTPStatus.ACCEPTED if taken["queued"] else HTTPStatus.OK)

    # --- requests and responses ---------------------------------------------------------------------

    def _json_body(self) -> Any:
        if self.headers.get_content_type() != "application/json":
            raise ReviewError(415, "send the answer as application/json")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ReviewError(411, "a Content-Length is needed")
        if int(length) > MAX_BODY_BYTES:
            raise ReviewError(413, f"the answer is larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(self.rfile.read(int(length)))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ReviewError(400, f"the answer is not JSON: {exc}") from exc

    def _report(self, relative: str) -> None:
        root = self.review.report_dir.resolve()
        target = (root / (relative or "index.html")).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            if relative in ("", "index.html"):
                self._send(HTTPStatus.NOT_FOUND, missing_report_page(self.review.report_dir),
                           "text/html; charset=utf-8")
                return
            raise ReviewError(404, f"the report has no {relative}")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, target.read_bytes(), kind + ("; charset=utf-8" if kind.startswith("text/") else ""))

    def _static(self, name: str) -> None:
        self._send(HTTPStatus.OK, static_file(name), STATIC_TYPES[name], {"Content-Security-Policy": PAGE_POLICY})

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _error(self, path: str, status: int, message: str) -> None:
        self.close_connection = True  # a request body may be left unread: this connection cannot go on
        if path.startswith("/api/"):
            self._json({"error": message}, status)
        else:
            self._send(status, message.encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


__all__ = ["HOST", "ReviewServer", "missing_report_page", "static_file"]
