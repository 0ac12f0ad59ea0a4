"""Structured logs on stdlib logging: ``log.info("event", extra={"fields": {...}})`` renders key=value or JSON."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Iterable

from core.redact import redact_text


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}"
        if self.as_json:
            out = {"ts": ts, "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
                   **fields}
            if record.exc_info:
                out["exc"] = self.formatException(record.exc_info)
            elif record.exc_text:
                out["exc"] = record.exc_text
            return json.dumps(out, default=str, ensure_ascii=False)
        kv = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}" + (f" {kv}" if kv else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:  # set by RedactingFilter: the traceback with its secrets masked
            line += "\n" + record.exc_text
        return line


class RedactingFilter(logging.Filter):
    """Masks URL passwords, ``password=…`` values and the configured secrets in every record, its fields and its
    traceback: a library that logs a connection URL or an exception holding one must not leak it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return True
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact_text(v, self.secrets) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text, self.secrets)
            record.exc_info = None
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at configuration.

    The CLI also runs in-process (typer's CliRunner in tests, embedding tools) with a borrowed stderr that is
    closed afterwards; a handler holding that stream would fail every later record with "Logging error".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Log to stderr; ``secrets`` (``Settings.secret_values()``) are masked in every line, as are URL passwords."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(fmt == "json"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that would drown the service's own events.
    for noisy in ("amqtt", "transitions", "uvicorn.access", "httpx", "apscheduler", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def kv(**fields: Any) -> dict[str, Any]:
    return {"fields": fields}
