"""The alert benchmark still measures what it claims (a short run; its figures are `make bench`'s business).

A rule change can quietly stop the probes from raising anything, and then the benchmark measures nothing: this
runs it briefly and checks that every probe raised the alert it was built for, once. No timing is asserted.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_alert_benchmark_probes_all_raise_their_alert_and_the_pass_runs():
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.alerts", "--parts", "latency,evaluation", "--duration", "2",
         "--warmup", "0.5", "--rate", "200", "--drain-timeout", "30", "--mix", "20,10,10,60", "--repeat", "1",
         "--profile-top", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    cases = {c["case"]: c for c in (json.loads(line) for line in res.stdout.splitlines() if line.startswith("{"))}
    lat = cases["alerts/latency"]
    assert lat["probes_sent"] >= 5 and lat["all_received"], lat["missing"]
    assert (lat["wrong_rule_or_severity"], lat["duplicate_raised"], lat["unexpected_raised"]) == ([], [], [])
    assert {p["kind"] for p in lat["worst"]} | {"river", "village_water"} == {"river", "village_water"}
    assert cases["alerts/pass"]["stations"] == 100 and cases["alerts/pass"]["median_ms"] > 0
    assert cases["alerts/summary"]["targets"]
