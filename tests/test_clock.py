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
import time
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# 1 December 00:20 and 29 February 23:50 in Asia/Shanghai.
MOMENTS = {"month-start-local": "2026-12-01T00:20:00+08:00", "leap-day-end-local": "2028-02-29T23:50:00+08:00"}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("moment", MOMENTS.values(), ids=MOMENTS.keys())
def test_river_chief_tests_pass_whatever_the_machine_clock_says(moment):
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.fail("faketime is missing: `make test-servers` installs Debian's faketime")
    # An offset from the real clock (libfaketime's "+Ns"), the same in every process the tests start.
    offset = int(datetime.fromisoformat(moment).timestamp() - time.time())
    # The wall clock only: the monotonic clock stays real, and Python's sleep goes through a timed wait
    # (.ci/faketime/sitecustomize.py says why), as in `make test-at`.
    env = {**os.environ, "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / ".ci" / "faketime"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [faketime, "-f", f"{offset:+d}s", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "tests/test_patrols.py", "tests/test_patrol_api.py", "-k", "not postgresql"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"under faketime at {moment}:\n{tail}"
    assert " passed" in tail and "failed" not in tail
