"""Run every benchmark: ``python -m benchmarks`` (``make bench``).

ARGS go to the ingest benchmark; the alert benchmark runs with its defaults after it.
"""

from benchmarks import alerts, ingest

if __name__ == "__main__":
    ingest.main()
    alerts.main([])
