"""The river-chief tests with the machine's clock at awkward moments (Debian's libfaketime, docs/testing.md).

The tests themselves pass fixed moments to the code; this shows that nothing underneath still reads the wall clock
where the date matters: the same tests, in a child process whose clock says the first minutes of a month in the
bureau's zone (UTC+8: still the previous day in UTC), or the last minutes of a leap day.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# UTC times handed to faketime: 1 December 00:20 and 29 February 23:50 in Asia/Shanghai.
MOMENTS = {"month-start-local": "2026-11-30 16:20:00", "leap-day-end-local": "2028-02-29 15:50:00"}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("moment", MOMENTS.values(), ids=MOMENTS.keys())
def test_river_chief_tests_pass_whatever_the_machine_clock_says(moment):
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.fail("faketime is missing: `make test-servers` installs Debian's faketime")
    env = {**os.environ, "TZ": "UTC"}
    proc = subprocess.run(
        [faketime, moment, sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "tests/test_patrols.py", "tests/test_patrol_api.py", "-k", "not postgresql"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"under faketime {moment!r} UTC:\n{tail}"
    assert " passed" in tail and "failed" not in tail
