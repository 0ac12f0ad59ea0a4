"""Structured logging set-up (core/logs.py)."""

import io
import logging
import sys

import pytest

from core.logs import configure_logging, kv


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_logging_set_up_with_a_borrowed_stderr_keeps_working_after_it_is_closed(restore_root_logger, capsys):
    borrowed, real = io.StringIO(), sys.stderr
    sys.stderr = borrowed  # what typer's CliRunner does around an in-process CLI call
    try:
        configure_logging("INFO", "text")
        logging.getLogger("t").info("inside", extra=kv(n=1))
    finally:
        sys.stderr = real
        borrowed.close()
    logging.getLogger("t").info("after", extra=kv(n=2))
    err = capsys.readouterr().err
    assert "Logging error" not in err
    assert "t: after n=2" in err


def test_json_format_renders_the_fields(restore_root_logger, capsys):
    configure_logging("INFO", "json")
    logging.getLogger("t").warning("level high", extra=kv(station_id="RS0001", water_level_m=51.2))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert '"event": "level high"' in line and '"water_level_m": 51.2' in line and '"level": "warning"' in line
