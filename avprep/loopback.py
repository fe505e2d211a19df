"""A loopback HTTP server: serve a folder on 127.0.0.1 (a free port) from a thread.

``make demo`` serves the SynthAV videos with it and fetches them with
``avprep download`` exactly as remote clips are fetched; the tests serve
their generated media with it (``tests/httpserver.py`` adds routes that
misbehave on purpose by subclassing :class:`LoopbackHandler`). It binds to
127.0.0.1 only and never to another interface.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LoopbackHandler(SimpleHTTPRequestHandler):
    """Files under the served folder; each request counted and kept on the server."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep output clean
        log.debug("http: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits[self.path] += 1
        self.server.requests.append((self.path, dict(self.headers.items())))
        self.serve()

    def serve(self) -> None:
        """Answer the (counted) request; subclasses add routes here."""
        super().do_GET()


class LoopbackServer:
    """``with LoopbackServer(folder) as srv: srv.url("a.mp4")``.

    ``hits`` counts requests per path, ``requests`` keeps each request's path
    and headers, ``stopping`` is set when the server shuts down (for handlers
    that wait).
    """

    def __init__(self, root: str | os.PathLike, handler: type[LoopbackHandler] = LoopbackHandler):
        self.root = Path(root)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.httpd.hits = collections.Counter()
        self.httpd.requests = []
        self.httpd.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="loopback-http", daemon=True
        )

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    @property
    def hits(self) -> collections.Counter:
        return self.httpd.hits

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return self.httpd.requests

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serve_folder(folder: str | os.PathLike) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 while the block runs; yield the base URL (ends in ``/``)."""
    with LoopbackServer(folder) as srv:
        yield srv.base + "/"


def bypass_proxy_for_loopback() -> None:
    """Keep a user's http(s)_proxy away from the loopback server (set before workers start)."""
    for var in ("no_proxy", "NO_PROXY"):
        have = [h for h in os.environ.get(var, "").split(",") if h.strip()]
        for host in ("127.0.0.1", "localhost"):
            if host not in have:
                have.append(host)
        os.environ[var] = ",".join(have)
