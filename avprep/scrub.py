"""Secrets out of messages: proxy credentials and cookie facts never reach a log or a manifest.

:class:`Scrubber` removes the ``--proxy`` URL (and its user and password,
quoted or not), the ``--cookies`` file's path and name and every cookie
value from any text before it is shown or recorded; ``user:password@`` in
any URL is masked even without a configured secret (:func:`scrub_url`).
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any


class Scrubber:
    """Removes proxy credentials and cookie facts from text before it is shown."""

    _USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a URL is removed before the password inside it.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def for_config(cls, cfg: Any) -> Scrubber:
        """The scrubber of a config with ``proxy`` and ``cookies`` (a download's)."""
        secrets: list[str] = []
        if cfg.proxy:
            secrets.append(cfg.proxy)
            parts = urllib.parse.urlsplit(cfg.proxy)
            if parts.username:
                secrets.append(parts.username)
                secrets.append(urllib.parse.unquote(parts.username))
            if parts.password:
                secrets.append(parts.password)
                secrets.append(urllib.parse.unquote(parts.password))
            if "@" in parts.netloc:
                secrets.append(parts.netloc.rsplit("@", 1)[0])
        if cfg.cookies:
            secrets += [cfg.cookies, os.path.basename(cfg.cookies)]
            secrets += _cookie_values(cfg.cookies)
        return cls(secrets)

    def __call__(self, text: object) -> str:
        text = self._USERINFO.sub(r"\1***@", str(text))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _cookie_values(path: str) -> list[str]:
    """Names and values of a Netscape cookies file (to scrub them from messages)."""
    out: list[str] = []
    with contextlib.suppress(OSError):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("#HttpOnly_"):
                    line = line[len("#HttpOnly_") :]
                if not line or line.startswith("#"):
                    continue
                fields = line.split("\t")
                if len(fields) >= 7:
                    out.append(fields[6])
    return [v for v in out if len(v) >= 4]


def scrub_url(url: str) -> str:
    """The URL without user:password (safe to log and record)."""
    return Scrubber()(url)
