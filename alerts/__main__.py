"""Run the alert engine alone: ``python -m alerts``."""

from smartwater.runner import run_stage

if __name__ == "__main__":
    run_stage("alerts")
