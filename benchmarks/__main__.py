"""Run every benchmark: ``python -m benchmarks`` (``make bench``).

ARGS go to the ingest benchmark; the alert, river-chief and gateway benchmarks run with their defaults after it.
"""

from benchmarks import alerts, gateway, ingest, patrols

if __name__ == "__main__":
    ingest.main()
    alerts.main([])
    patrols.main([])
    gateway.main([])
