"""Run every benchmark: ``python -m benchmarks`` (``make bench``).

ARGS go to the ingest benchmark; the alert and river-chief benchmarks run with their defaults after it.
"""

from benchmarks import alerts, ingest, patrols

if __name__ == "__main__":
    ingest.main()
    alerts.main([])
    patrols.main([])
