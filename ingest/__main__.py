"""Run the ingestor alone: ``python -m ingest``."""

from smartwater.runner import run_stage

if __name__ == "__main__":
    run_stage("ingest")
