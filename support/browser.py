"""Debian's Chromium for the browser tests, launched through Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_env() -> dict[str, str]:
    """The environment for the browser: ours without libfaketime. Under `make test-at` Chromium does not load a
    page at all with libfaketime preloaded (docs/testing.md), so it keeps the real clock while the services run
    on the shifted one."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


@contextmanager
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test-servers` installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=browser_env())
        try:
            yield b
        finally:
            b.close()
