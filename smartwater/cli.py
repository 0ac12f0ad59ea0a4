"""The ``smartwater`` command."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from core.domain import KINDS
from core.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="District smart-water monitoring: MQTT ingest, flood and water-quality alerts, API.")


class Stage(str, Enum):
    ingest = "ingest"
    alerts = "alerts"
    api = "api"
    all = "all"


def _settings():
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable
        typer.secho(f"invalid settings: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def init(csv: Optional[Path] = typer.Option(None, help="Load stations from this CSV instead of the generated district.")) -> None:
    """Create the registry DB and load the district (idempotent)."""
    from core.logs import configure_logging
    from simulators import generate_district, load_stations_csv
    from smartwater.runner import open_backends

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    registry, store = open_backends(settings)
    try:
        stations = load_stations_csv(csv) if csv else generate_district(settings.district_seed)
    except (OSError, ValueError) as exc:
        typer.secho(f"cannot load stations: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    n = registry.upsert_stations(stations)
    counts = registry.count_stations()
    typer.echo(f"registry {settings.db_url}: {n} stations loaded; now " +
               ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    store.close()
    registry.close()


@app.command()
def stations(kind: Optional[str] = typer.Option(None, help=f"One of: {', '.join(KINDS)}"),
             as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the registered stations."""
    from core.registry import open_registry

    if kind is not None and kind not in KINDS:
        typer.secho(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}", fg="red", err=True)
        raise typer.Exit(2)
    registry = open_registry(_settings().db_url)
    registry.create_schema()
    rows = registry.list_stations(kind=kind)
    if as_json:
        out = []
        for s in rows:
            d = s.model_dump(mode="json", exclude={"level_storage", "flood_limit_periods"})
            d.update({"level_storage": s.level_storage, "flood_limit_periods":
                      [p.model_dump() for p in s.flood_limit_periods] if s.flood_limit_periods else None})
            out.append(d)
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "name", "town", "lat", "lon", "interval s", "reference levels (m)")
    for s in rows:
        refs = ", ".join(f"{k.removesuffix('_level_m')} {v:g}" for k, v in s.reference_levels().items())
        table.add_row(s.id, s.kind.value, s.name, s.town, f"{s.lat:.4f}", f"{s.lon:.4f}", str(s.interval_s), refs)
    Console().print(table)
    if not rows:
        typer.echo("no stations: run `smartwater init`", err=True)


@app.command()
def run(stage: Stage = typer.Argument(..., help="ingest, alerts, api or all"),
        port: Optional[int] = typer.Option(None, help="API port (default from SMARTWATER_API_PORT, 8000)")) -> None:
    """Run one stage, or all three, against the configured broker and stores."""
    from smartwater.runner import run_stage

    run_stage(stage.value, port=port, settings=_settings())


@app.command()
def simulate(scenario: str = typer.Option("normal", help="Scenario name: normal, storm"),
             speed: float = typer.Option(1.0, min=0.01, help="Simulated seconds per real second."),
             duration: Optional[float] = typer.Option(None, min=0.1, help="Stop after this many real seconds.")) -> None:
    """Publish simulated station readings to the configured broker."""
    from core.logs import configure_logging
    from core.registry import open_registry
    from simulators import SCENARIOS, Simulator

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    if scenario not in SCENARIOS:
        typer.secho(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}", fg="red", err=True)
        raise typer.Exit(2)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    rows = registry.list_stations()
    if not rows:
        typer.secho("the station registry is empty: run `smartwater init` first", fg="red", err=True)
        raise typer.Exit(2)
    sim = Simulator(settings, rows, scenario=scenario, speed=speed, duration_s=duration)
    sim.start()
    try:
        while not sim.join(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    typer.echo(f"published {sim.published} messages")


@app.command()
def demo(port: int = typer.Option(8000, min=1, max=65535, help="API port."),
         speed: float = typer.Option(60.0, min=0.01, help="Simulated seconds per real second."),
         duration: Optional[float] = typer.Option(None, min=1, help="Stop after this many seconds and print a summary."),
         mqtt_port: Optional[int] = typer.Option(None, help="Embedded broker port (default: a free one)."),
         keep: bool = typer.Option(False, help="Keep the previous demo's data instead of starting fresh."),
         scenario: str = typer.Option("storm", help="Scenario name: normal, storm")) -> None:
    """Everything on one machine: embedded broker, SQLite, ingest, alerts, API and the storm scenario."""
    from core.logs import configure_logging
    from smartwater.demo import print_summary, run_demo

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        summary = run_demo(settings, port=port, speed=speed, duration=duration, mqtt_port=mqtt_port, keep=keep,
                           scenario=scenario)
    except OSError as exc:
        typer.secho(f"demo failed to start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    print_summary(summary)


if __name__ == "__main__":
    app()
