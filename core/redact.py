"""Credentials out of output: URLs with their password masked, known secret values masked in any text.

Used by the settings' error messages, the CLI and a logging filter (``core.logs``), so that a password given in
``SMARTWATER_DB_URL`` or ``SMARTWATER_MQTT_URL`` never reaches a terminal or a log collector.
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@host — also in free text, and when urlsplit would choke on the rest of the URL.
_USERINFO = re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@'\"]*)(?P<at>@)")
# key=value pairs naming a secret in query strings and text: ?token=…, password=…
_KEYED = re.compile(r"(?P<pre>\b(?:password|passwd|pwd|token|secret|access_token|api_key)=)(?P<val>[^\s&'\"]+)",
                    re.IGNORECASE)


def redact_url(url: str | None) -> str:
    """The URL with its password (and secret query values) replaced by ***; safe to print."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            netloc = f"{parts.username or ''}:{MASK}@{host}"
            if parts.port is not None:
                netloc += f":{parts.port}"
            url = urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # a malformed URL (a bad port …): mask by pattern
        pass
    return redact_text(url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, ``password=…``-style values and each of ``secrets`` masked."""
    text = _USERINFO.sub(lambda m: f"{m['pre']}{MASK}{m['at']}", text)
    text = _KEYED.sub(lambda m: f"{m['pre']}{MASK}", text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
