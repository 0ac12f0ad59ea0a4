"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from benchmarks import ingest

if __name__ == "__main__":
    ingest.main()
