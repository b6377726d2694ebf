"""A real HTTP server on 127.0.0.1 for the download tests (``http.server`` in a thread).

It serves files put in ``server.files`` (path -> bytes), counts the GETs per path, and has
three misbehaving paths a real network produces: ``/truncated/…`` announces more bytes than
it sends, ``/huge/…`` announces a body far larger than any cap, ``/flaky/…`` fails with 503
the first time and then serves the file.
"""

from __future__ import annotations

import http.server
import threading
from collections import Counter


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet test output
        pass

    def _send(self, body: bytes, announce: int | None = None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if announce is None else announce))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.command == "GET":
            self.server.gets[path] += 1
        for prefix in ("/truncated", "/huge", "/flaky"):
            if path.startswith(prefix + "/"):
                body = self.server.files.get(path[len(prefix) :])
                if body is None:
                    break
                if prefix == "/truncated":
                    self._send(body[: len(body) // 2], announce=len(body))
                    self.close_connection = True
                elif prefix == "/huge":
                    self._send(b"", announce=10**12) if self.command == "HEAD" else self._send(body, announce=10**12)
                    self.close_connection = True
                else:
                    if self.server.gets[path] <= 1 and self.command == "GET":
                        self._send(b"busy", status=503)
                    else:
                        self._send(body)
                return
        body = self.server.files.get(path)
        if body is None:
            self._send(b"not found", status=404)
            return
        self._send(body)

    do_GET = _route
    do_HEAD = _route


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.gets: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_server() -> _Server:
    """Start the server in a daemon thread; call ``shutdown()`` and ``server_close()`` after."""
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
