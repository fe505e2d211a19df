"""A loopback HTTP server (127.0.0.1 only) serving test media.

Routes beyond plain files under ``root``:
  /redirect/<name>  302 to /<name>
  /stall/<name>     sends headers, then stalls (for timeout tests)
  /truncated/<name> announces the full length, sends half, closes
  /missing/...      404
  /status/<code>/<name>  answers with HTTP status <code> (429, 503, 410, ...)
  /flaky/<n>/<name> 503 for the first <n> requests of that path, then the file
  /gate/<name>      sends half the file, then waits until ``srv.gate`` is set
Files under ``.../play/orig/`` (SoundNet's Flickr address shape) are served
as video/mp4.
A request for an absolute URL (``GET http://host/path``) is served as a
forward proxy would, and counted in ``proxied``.
The server counts requests per path in ``hits`` so tests can check retries,
and keeps each request's path and headers in ``requests``.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from pathlib import Path

from avprep.loopback import LoopbackHandler, LoopbackServer


class _Handler(LoopbackHandler):
    stall_seconds = 30.0

    def guess_type(self, path):
        # Flickr's SoundNet addresses (.../play/orig/<secret>) have no extension
        if "/play/orig/" in str(path).replace("\\", "/"):
            return "video/mp4"
        return super().guess_type(path)

    def do_GET(self):  # noqa: N802
        if self.path.startswith(("http://", "https://")):
            # a forward-proxy request: serve the path part ourselves
            self.path = "/" + self.path.split("/", 3)[3] if self.path.count("/") >= 3 else "/"
            self.server.proxied[self.path] += 1
        super().do_GET()  # counts the request, then serve()

    def serve(self):
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_error(code)
            return
        if self.path.startswith("/flaky/"):
            _, _, n, name = self.path.split("/", 3)
            if self.server.hits[self.path] <= int(n):
                self.send_error(503)
                return
            self.path = "/" + name
        if self.path.startswith("/gate/"):
            name = self.path[len("/gate/") :]
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may hang up early
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                while not self.server.gate.wait(0.05):
                    if self.server.stopping.is_set():
                        return
                self.wfile.write(data[len(data) // 2 :])
            return
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path[len("/redirect/") :])
            self.end_headers()
            return
        if self.path.startswith("/stall/"):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            deadline = time.monotonic() + self.stall_seconds
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                time.sleep(0.05)
            return
        if self.path.startswith("/truncated/"):
            name = self.path[len("/truncated/") :]
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        super().serve()


class MediaServer(LoopbackServer):
    """Context manager: ``with MediaServer(root) as srv: srv.url('a.mp4')``."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root, handler=_Handler)
        self.httpd.gate = threading.Event()
        self.httpd.proxied = collections.Counter()

    @property
    def proxied(self) -> collections.Counter:
        return self.httpd.proxied

    @property
    def gate(self) -> threading.Event:
        return self.httpd.gate

    def __exit__(self, *exc) -> None:
        self.httpd.stopping.set()
        with contextlib.suppress(Exception):
            self.httpd.shutdown()
        self.httpd.server_close()
