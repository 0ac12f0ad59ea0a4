"""Run every benchmark: ``python -m benchmarks`` (``make bench``).

ARGS go to the ingest benchmark; the alert, river-chief, gateway and report benchmarks run with their defaults after it.
"""

from benchmarks import alerts, gateway, ingest, patrols, reports

if __name__ == "__main__":
    ingest.main()
    alerts.main([])
    patrols.main([])
    gateway.main([])
    reports.main([])
