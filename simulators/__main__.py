"""``python -m simulators --scenario storm --speed 60 --duration 30``: publish the registry's stations' readings."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from simulators.scenarios import SCENARIOS

log = logging.getLogger("simulators")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--scenario", default="normal", metavar="NAME|FILE.yaml",
                   help="a scenario file, or one shipped: " + "; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()))
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many real seconds (default: run until Ctrl-C)")
    p.add_argument("--seed", type=int, default=None, help="scenario seed (default: SMARTWATER_DISTRICT_SEED)")
    p.add_argument("--stations", type=Path, default=None, metavar="CSV",
                   help="read stations from this CSV instead of the registry DB")
    p.add_argument("--start", type=datetime.fromisoformat, default=None, metavar="ISO8601",
                   help="simulated start time with UTC offset (default: far enough back that no reading "
                        "is stamped in the future)")
    return p


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for the message
        return "<registry URL>"


def _load_stations(settings, csv_path: Path | None):
    from core.importers import load_stations_csv

    if csv_path is not None:
        return load_stations_csv(csv_path)
    from sqlalchemy.exc import SQLAlchemyError

    from core.registry import open_registry

    registry = open_registry(settings.db_url)
    try:
        return registry.list_stations()
    except SQLAlchemyError as exc:
        # A fresh database has no stations table yet: the same remedy as an empty one.
        log.debug("registry not readable", exc_info=exc)
        return []
    finally:
        registry.close()


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (systemd, docker stop) takes the same clean path as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.start is not None and args.start.tzinfo is None:
        print("--start needs a UTC offset, e.g. 2026-06-28T08:00:00+08:00", file=sys.stderr)
        return 2
    from core.logs import configure_logging
    from pydantic import ValidationError

    from core.settings import describe_settings_error, get_settings
    from simulators.runner import Simulator

    try:
        settings = get_settings()
    except ValidationError as exc:  # the variable and why, never its value (it may hold a password)
        print(f"invalid settings: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    try:
        stations = _load_stations(settings, args.stations)
    except (OSError, ValueError) as exc:
        print(f"cannot load stations: {exc}", file=sys.stderr)
        return 2
    if not stations:
        print(f"the station registry ({_safe_url(settings.db_url)}) has no stations: run `smartwater init` "
              "first (or pass --stations FILE)", file=sys.stderr)
        return 2

    try:
        sim = Simulator(settings, stations, scenario=args.scenario, speed=args.speed, duration_s=args.duration,
                        seed=args.seed, sim_start=args.start)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    interrupted = False
    try:
        sim.start()
        while not sim.join(0.5):
            pass
    except KeyboardInterrupt:
        interrupted = True
        log.info("interrupted, stopping")
    except ConnectionError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        sim.stop()
    print(f"published {sim.published} messages" + (" (interrupted)" if interrupted else ""))
    return 1 if sim.error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
