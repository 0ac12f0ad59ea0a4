"""The ``smartwater`` command."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from core.auth import Role
from core.domain import KINDS
from smartwater.common import open_registry_ready, settings_or_exit

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="District smart-water monitoring: MQTT ingest, flood and water-quality alerts, API.")


class Stage(str, Enum):
    ingest = "ingest"
    alerts = "alerts"
    api = "api"
    gateway = "gateway"
    all = "all"


_settings = settings_or_exit


@app.command()
def init(
        stations: Optional[Path] = typer.Option(None, "--stations", dir_okay=False,
                                                help="Load the bureau's stations from this CSV."),
        csv: Optional[Path] = typer.Option(None, "--csv", dir_okay=False, hidden=True,
                                           help="The former name of --stations."),
        rivers: Optional[Path] = typer.Option(None, "--rivers", dir_okay=False,
                                              help="Load rivers from this GeoJSON file (cut into village and town "
                                                   "segments by the registry's villages)."),
        chiefs: Optional[Path] = typer.Option(None, "--chiefs", dir_okay=False,
                                              help="Load river chiefs from this CSV (their segments must exist)."),
        intake_users: Optional[Path] = typer.Option(None, "--intake-users", dir_okay=False,
                                                    help="Load licensed intake users (取水户) from this CSV."),
        meters: Optional[Path] = typer.Option(None, "--meters", dir_okay=False,
                                              help="Load intake meters from this CSV (their users and intake "
                                                   "stations must exist)."),
        wells: Optional[Path] = typer.Option(None, "--wells", dir_okay=False,
                                             help="Load groundwater monitoring wells from this CSV."),
        sources: Optional[Path] = typer.Option(None, "--sources", dir_okay=False,
                                               help="Load water sources (水源地) from this CSV."),
        supplies: Optional[Path] = typer.Option(None, "--supplies", dir_okay=False,
                                                help="Load village supplies (type, population, volume, "
                                                     "disinfectant, service head) from this CSV."),
        demo_data: bool = typer.Option(False, "--demo-data",
                                       help="Load the generated demo district: stations, rivers and invented "
                                            "chiefs, intake users and village supplies. Never for a real bureau."),
) -> None:
    """Create or upgrade the registry, add the default alert rules to a fresh one, and load what it is given
    (idempotent). Each file is validated whole first: nothing is written while any has a problem."""
    from core.importers import InvalidFile
    from core.logs import configure_logging
    from smartwater.bootstrap import SupplyFiles, read_files, store, store_demo_data
    from smartwater.runner import open_backends

    if csv is not None and stations is not None:
        raise _fail("--csv is the former name of --stations: give one of them")
    stations = stations or csv
    supply_files = SupplyFiles(intake_users=intake_users, meters=meters, wells=wells, sources=sources,
                               supplies=supplies)
    if demo_data and (stations or rivers or chiefs or any(vars(supply_files).values())):
        raise _fail("--demo-data loads the generated district; it does not mix with --stations, --rivers, --chiefs "
                    "or the water-resources files")
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    registry, store_ = open_backends(settings)
    try:
        if demo_data:
            counts = store_demo_data(registry, settings)
            from smartwater.reports_setup import ensure_towns

            if ensure_towns(registry):  # a bureau's own stations come with its boundaries (reports import-towns)
                typer.echo("town boundaries generated for the demo district")
        else:
            try:
                bundle = read_files(registry, settings, stations, rivers, chiefs, supply_files)
            except InvalidFile as exc:
                typer.secho(f"{len(exc.problems)} problem(s), nothing loaded:", fg="red", err=True)
                for problem in str(exc).splitlines():
                    typer.secho(f"  {problem}", fg="red", err=True)
                raise typer.Exit(2) from None
            counts = store(registry, settings, bundle)
        station_counts = registry.count_stations()
        from core.redact import redact_url

        typer.echo(f"registry {redact_url(settings.db_url)}: {counts.get('stations', 0)} stations loaded; now " +
                   (", ".join(f"{k} {v}" for k, v in sorted(station_counts.items())) or "no stations"))
        network = {k: counts[k] for k in ("rivers", "segments", "chiefs") if k in counts}
        if network:
            typer.echo("river network loaded: " + ", ".join(f"{v} {k}" for k, v in network.items()))
        water = {k: counts[k] for k in ("intake users", "meters", "wells", "water sources", "village supplies")
                 if k in counts}
        if water:
            typer.echo("water resources loaded: " + ", ".join(f"{v} {k}" for k, v in water.items()))
        if not registry.list_rules():  # a fresh registry starts with the default rule set; never overwrite edits
            from core.rules import default_rules

            typer.echo(f"{registry.upsert_rules(default_rules())} default alert rules loaded")
        if not station_counts:
            typer.echo("no stations yet: load them with `smartwater init --stations FILE.csv` "
                       "(or `--demo-data` for the generated demo district)")
        from core.registry import UserRepo

        if not UserRepo(registry.engine).count():
            typer.echo("no API users yet: add one with `smartwater user add NAME --role admin`")
    finally:
        store_.close()
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
def run(stage: Stage = typer.Argument(..., help="ingest, alerts, api, gateway (SL 651 / HJ 212 devices) or all"),
        port: Optional[int] = typer.Option(None, help="API port (default from SMARTWATER_API_PORT, 8000)")) -> None:
    """Run one stage, or all of them, against the configured broker and stores."""
    from smartwater.runner import run_stage

    run_stage(stage.value, port=port, settings=_settings())


@app.command()
def simulate(scenario: str = typer.Option(
                 "normal", help="A shipped scenario (normal, storm, dosing-failure, sensor-faults), a YAML file, or "
                           "patrols (river chiefs through the API)."),
             speed: float = typer.Option(1.0, min=0.01, help="Simulated seconds per real second."),
             duration: Optional[str] = typer.Option(
                 None, help="How long: real time when publishing, simulated time with --to-csv. "
                            "Seconds, or with a unit: 90s, 30m, 6h, 2d."),
             seed: Optional[int] = typer.Option(
                 None, help="Scenario seed (default: the file's, else SMARTWATER_DISTRICT_SEED)."),
             to_csv: Optional[Path] = typer.Option(
                 None, "--to-csv", dir_okay=False, help="Write the readings to this replay CSV instead of publishing."),
             start: Optional[str] = typer.Option(
                 None, help="Simulated start, ISO 8601 with offset (default with --to-csv: the duration before now; "
                            "patrols: --days before now)."),
             chiefs: int = typer.Option(40, min=1, help="patrols: how many river chiefs patrol."),
             days: float = typer.Option(30.0, min=0.01, help="patrols: the simulated period in days, ending now "
                                                             "unless --start says otherwise."),
             api_url: Optional[str] = typer.Option(
                 None, help="patrols: the API (default http://SMARTWATER_API_HOST:SMARTWATER_API_PORT)."),
             protocol: Optional[str] = typer.Option(
                 None, help="sl651 or hj212: the registered field devices of that protocol talk to the gateway over "
                            "TCP instead (`smartwater devices add`)."),
             reports: int = typer.Option(12, min=1, help="--protocol: reports per device."),
             interval: float = typer.Option(300.0, min=1, help="--protocol: seconds of data time between reports."),
             password: Optional[str] = typer.Option(None, help="--protocol: the devices' password (default: none "
                                                    "sent for HJ 212, 0000 for SL 651)."),
             gateway_host: str = typer.Option("127.0.0.1", help="--protocol: where the gateway listens.")
             ) -> None:
    """Publish simulated station readings to the configured broker, or write them to a replay CSV; with
    `--scenario patrols`, drive the API as river chiefs and their supervisors over a simulated period."""
    import time

    from core.logs import configure_logging
    from core.registry import open_registry
    from simulators import Simulator
    from simulators.patrols import SCENARIO as PATROLS
    from simulators.spec import load_scenario, parse_duration

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    if protocol is not None:
        _simulate_devices(settings, protocol, reports, interval, speed, seed, start, password, gateway_host)
        return
    if scenario == PATROLS:  # not a station scenario file: chiefs talk to the API, not to the broker
        if to_csv is not None:
            raise _fail("--to-csv writes station readings; the patrols scenario drives the API")
        _simulate_patrols(settings, chiefs, days, seed, start, api_url)
        return
    try:
        spec = load_scenario(scenario)
        duration_s = None if duration is None else parse_duration(duration)
        start_at = None if start is None else _aware(start)
    except ValueError as exc:
        raise _fail(str(exc))
    if to_csv is not None and duration_s is None:
        raise _fail("--to-csv needs --duration (simulated time, e.g. 6h)")
    registry = open_registry(settings.db_url)
    registry.create_schema()
    rows = registry.list_stations()
    if not rows:
        typer.secho("the station registry is empty: run `smartwater init` first", fg="red", err=True)
        raise typer.Exit(2)
    if to_csv is not None:
        _simulate_to_csv(settings, rows, spec, seed, start_at, duration_s, to_csv)
        return
    sim = Simulator(settings, rows, scenario=spec, speed=speed, duration_s=duration_s, seed=seed, sim_start=start_at)
    try:
        sim.start()
    except ConnectionError as exc:
        raise _fail(str(exc), 1)
    try:
        with _progress(duration_s is not None) as bar:
            task = bar.add_task(f"simulating {spec.name}", total=duration_s)
            began = time.monotonic()
            while not sim.join(0.5):
                bar.update(task, completed=min(duration_s or 0, time.monotonic() - began),
                           description=f"{spec.name}: {sim.published} messages, at {_clock(sim.sim_time())}")
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    typer.echo(f"published {sim.published} messages")


def _simulate_devices(settings, protocol: str, reports: int, interval: float, speed: float, seed, start,
                      password, host: str) -> None:
    """Registered SL 651 / HJ 212 devices send simulated reports to the gateway, each until confirmed."""
    import asyncio
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from core.registry.devices import DeviceRepo
    from core.timeutil import utcnow
    from gateway.simulated import SimulatedDevice, hj212_reports, sl651_reports

    if protocol not in ("sl651", "hj212"):
        raise _fail(f"--protocol must be sl651 or hj212, got {protocol!r}")
    registry = _open_registry()
    try:
        devices = DeviceRepo(registry.engine).list(protocol)
        kinds = {s.id: s.kind.value for s in registry.list_stations()}
    finally:
        registry.close()
    if not devices:
        raise _fail(f"no {protocol} devices registered: `smartwater devices add --protocol {protocol} ...`")
    step = timedelta(seconds=interval)
    zone = ZoneInfo(settings.display_timezone)
    # Beijing time without a zone, as the devices send it; by default the reports end now.
    first = (_aware(start) if start else utcnow() - reports * step).astimezone(zone).replace(tzinfo=None, microsecond=0)
    port = settings.gateway_sl651_port if protocol == "sl651" else settings.gateway_hj212_port
    make = sl651_reports if protocol == "sl651" else hj212_reports
    pw = password if password is not None else ("0000" if protocol == "sl651" else "")
    fleet = [SimulatedDevice(protocol, host, port,
                             make(d.address, pw, [kinds[s] for s in d.station_ids if s in kinds], first, reports,
                                  step, seed=(seed or 0) + i), pace_s=interval / speed)
             for i, d in enumerate(devices)]

    async def main() -> None:
        await asyncio.gather(*(d.run() for d in fleet))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    confirmed = sum(len(d.confirmed) for d in fleet)
    typer.echo(f"{len(fleet)} {protocol} devices: {confirmed} reports confirmed by the gateway, "
               f"{sum(d.reconnects for d in fleet)} reconnects")


def _simulate_patrols(settings, chiefs: int, days: float, seed, start: Optional[str], api_url: Optional[str]) -> None:
    from simulators.patrols import PatrolSimError, format_summary, prepare

    try:
        sim = prepare(settings, api_url, n_chiefs=chiefs, days=days, seed=seed,
                      start=None if start is None else _aware(start))
        with _progress(True) as bar:
            task = bar.add_task(f"patrols of {len(sim.chiefs)} chiefs", total=len(sim.chiefs))
            summary = sim.run(progress=lambda n: bar.advance(task, n))
    except (PatrolSimError, ValueError) as exc:
        raise _fail(str(exc), 1)
    for line in format_summary(summary, settings.display_timezone):
        typer.echo(line)
    typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
    if summary.errors:
        raise typer.Exit(1)


def _aware(text: str):
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text!r} is not ISO 8601 (e.g. 2026-06-28T08:00:00+08:00)") from None
    if value.tzinfo is None:
        raise ValueError(f"--start {text!r} needs a UTC offset, e.g. 2026-06-28T08:00:00+08:00")
    return value


def _clock(ts) -> str:
    return "-" if ts is None else ts.isoformat(timespec="minutes")


def _progress(wanted: bool):
    """A progress bar on a terminal only: CI logs and pipes stay clean."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if wanted and sys.stdout.isatty():
        return Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), transient=True)

    class _Silent:
        def add_task(self, *_args, **_kwargs) -> int:
            return 0

        def update(self, *_args, **_kwargs) -> None:
            pass

        def advance(self, *_args, **_kwargs) -> None:
            pass

    return nullcontext(_Silent())


def _simulate_to_csv(settings, stations, spec, seed, start, duration_s, path: Path) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from simulators.export import count_reports, write_csv

    seed = seed if seed is not None else spec.seed if spec.seed is not None else settings.district_seed
    if start is None:  # end now, on a whole minute, so a replay lands in the recent past and nothing is "future"
        now = datetime.now(ZoneInfo(settings.display_timezone)).replace(second=0, microsecond=0)
        start = now - timedelta(seconds=duration_s)
    total = count_reports(stations, start, duration_s, seed)
    try:
        with _progress(True) as bar:
            task = bar.add_task(f"writing {spec.name} to {path.name}", total=total)
            rows = write_csv(path, stations, spec, seed, start, duration_s, progress=lambda n: bar.advance(task, n))
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror or exc}")
    end = start + timedelta(seconds=duration_s)
    typer.echo(f"wrote {rows} readings of {total} reports ({start.isoformat()} … {end.isoformat()}) to {path}")


@app.command()
def replay(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with ts,station_id,metric,value"),
           speed: float = typer.Option(0.0, min=0, help="Data seconds per real second; 0 = as fast as possible.")) -> None:
    """Publish historical readings to the broker in time order (a past storm through the alert engine)."""
    from core.logs import configure_logging
    from core.registry import open_registry
    from simulators.replay import read_replay_csv
    from simulators.replay import replay as run_replay

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    registry = open_registry(settings.db_url)
    registry.create_schema()
    stations = {s.id: s for s in registry.list_stations()}
    if not stations:
        typer.secho("the station registry is empty: run `smartwater init` first", fg="red", err=True)
        raise typer.Exit(2)
    try:
        messages = read_replay_csv(file, stations)
    except (OSError, ValueError) as exc:
        typer.secho(f"cannot replay: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        with _progress(True) as bar:
            task = bar.add_task(f"replaying {len(messages)} messages", total=len(messages))
            sent = run_replay(settings, stations, messages, speed=speed, progress=lambda n: bar.advance(task, n))
    except ConnectionError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"replayed {sent} of {len(messages)} messages"
               + (f" ({messages[0][0].isoformat()} … {messages[-1][0].isoformat()})" if messages else ""))


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
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    try:
        summary = run_demo(settings, port=port, speed=speed, duration=duration, mqtt_port=mqtt_port, keep=keep,
                           scenario=scenario)
    except OSError as exc:
        typer.secho(f"demo failed to start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    print_summary(summary)


reports_app = typer.Typer(no_args_is_help=True, help="Rain and inflow reports: town boundaries, rain history.")
app.add_typer(reports_app, name="reports")


@reports_app.command("import-towns")
def reports_import_towns(path: Path = typer.Argument(..., help="GeoJSON FeatureCollection, properties.name = town")) -> None:
    """Replace the towns' boundaries (areal rainfall weighs the gauges over them); nothing is stored on an error."""
    from smartwater.reports_setup import import_towns

    registry = _open_registry()
    try:
        n = import_towns(registry, path)
    except (OSError, ValueError) as exc:
        typer.secho(f"cannot import towns: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    finally:
        registry.close()
    typer.echo(f"{n} town boundaries stored")


@reports_app.command("seed-history")
def reports_seed_history(years: int = typer.Option(10, min=1, max=50, help="Past years to generate.")) -> None:
    """Write a plausible daily rain history of the gauges (demo and tests): past years up to yesterday."""
    from core.timeutil import utcnow, zone
    from simulators.rain_history import seed_history
    from smartwater.runner import open_backends

    settings = _settings()
    registry, store = open_backends(settings)
    try:
        n = seed_history(store, registry.list_stations(kind="rain"), utcnow(), years,
                         zone(settings.display_timezone), seed=settings.district_seed)
    finally:
        store.close()
        registry.close()
    typer.echo(f"{n} daily rain readings written")


rules_app = typer.Typer(no_args_is_help=True, help="Alert rules in the registry: list, load from YAML, defaults.")
app.add_typer(rules_app, name="rules")


_open_registry = open_registry_ready


def _rule_errors(exc: Exception) -> list[str]:
    """Each problem of a rule in one line: 'field: reason' (a pydantic ValidationError lists several)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return [str(exc)]
    out = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e.get("loc", ()))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where else msg)
    return out


def _read_rules_file(path: Path) -> tuple[list, list[str]]:
    """Every rule of a YAML file (a list, or a mapping with a 'rules' list), validated; and every problem found."""
    import yaml
    from pydantic import ValidationError

    from core.rules import Rule

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [], [f"cannot read {path}: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return [], [f"{path} is not UTF-8 text"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return [], [f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]
    if isinstance(doc, dict):
        doc = doc.get("rules")
    if not isinstance(doc, list):
        return [], [f"{path}: expected a list of rules (or a 'rules:' key holding one)"]
    rules, problems = [], []
    for i, item in enumerate(doc, 1):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"rule #{i}" + (f" {name!r}" if isinstance(name, str) else "")
        if not isinstance(item, dict):
            problems.append(f"{label}: expected a mapping of rule fields, got {type(item).__name__}")
            continue
        try:
            rules.append(Rule.model_validate(item))
        except (ValidationError, ValueError) as exc:
            problems += [f"{label}: {p}" for p in _rule_errors(exc)]
    seen: dict[str, list[int]] = {}
    for i, item in enumerate(doc, 1):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            seen.setdefault(item["name"], []).append(i)
    problems += [f"rules {', '.join(f'#{i}' for i in idx)} share the name {n!r}"
                 for n, idx in seen.items() if len(idx) > 1]
    return rules, problems


def _print_rules(rules: list, as_json: bool) -> None:
    if as_json:
        json.dump([r.model_dump(mode="json") for r in rules], sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    def level(lv) -> str:
        if lv.value is not None:
            return f"{lv.severity.value} {'≥' if r.direction == 'above' else '≤'}{lv.value:g}"
        if lv.windows_h:
            return f"{lv.severity.value} " + " ".join(f"{h}h≥{mm:g}" for h, mm in lv.windows_h.items())
        return lv.severity.value

    table = Table("id", "name", "type", "kind", "metric")
    table.add_column("levels", min_width=24)
    table.add_column("on")
    for r in rules:
        table.add_row(str(r.id), r.name, r.type.value, r.station_kind.value, r.metric or "",
                      ", ".join(level(lv) for lv in r.levels), "yes" if r.enabled else "no")
    # Piped into a file or grep, rich would assume 80 columns and cut names short.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@rules_app.command("list")
def rules_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
               enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled",
                                                      help="Only enabled (or only disabled) rules.")) -> None:
    """List the alert rules in the registry."""
    registry = _open_registry()
    try:
        rules = registry.list_rules(enabled=enabled)
    finally:
        registry.close()
    _print_rules(rules, as_json)
    if not rules and not as_json:
        typer.echo("no rules: run `smartwater rules defaults` or `smartwater rules load FILE.yaml`", err=True)


@rules_app.command("load")
def rules_load(file: Path = typer.Argument(..., help="YAML file: a list of rules, or a mapping with a 'rules' list."),
               check: bool = typer.Option(False, "--check", help="Only validate the file; write nothing.")) -> None:
    """Create or replace rules by name from a YAML file. The whole file is validated first: nothing is written
    unless every rule is valid."""
    rules, problems = _read_rules_file(file)
    if problems:
        typer.secho(f"{file}: {len(problems)} problem(s), nothing loaded:", fg="red", err=True)
        for p in problems:
            typer.secho(f"  {p}", fg="red", err=True)
        raise typer.Exit(2)
    if check:
        typer.echo(f"{file}: {len(rules)} valid rules")
        return
    registry = _open_registry()
    try:
        existing = {r.name for r in registry.list_rules()}
        n = registry.upsert_rules(rules)
    finally:
        registry.close()
    replaced = sum(r.name in existing for r in rules)
    typer.echo(f"{n} rules loaded from {file} ({n - replaced} new, {replaced} replaced)")


@rules_app.command("defaults")
def rules_defaults() -> None:
    """Create or replace (by name) the default rule set shipped with smartwater."""
    from core.rules import default_rules

    rules = default_rules()
    registry = _open_registry()
    try:
        n = registry.upsert_rules(rules)
    finally:
        registry.close()
    typer.echo(f"{n} default rules loaded")


# -- users and tokens (core/auth.py) ------------------------------------------
user_app = typer.Typer(no_args_is_help=True, help="API users: add, list, disable, enable, password, revoke. Roles: admin, supervisor, duty, "
                                                  "chief, viewer.")
app.add_typer(user_app, name="user")


def _fail(message: str, code: int = 2) -> "typer.Exit":
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


def _read_password(from_stdin: bool, username: str) -> str:
    from core.auth import WeakPassword, check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise _fail("no terminal to ask for the password on: pipe it in with --password-stdin")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    try:
        check_password(password, username)
    except WeakPassword as exc:
        raise _fail(f"password refused: {exc}") from None
    return password


@user_app.command("add")
def user_add(name: str = typer.Argument(..., help="Login name: 2-64 lowercase letters, digits, '.', '_' or '-'."),
             role: Role = typer.Option(..., "--role", help="admin, supervisor, duty, chief or viewer."),
             town: Optional[str] = typer.Option(None, help="Supervisors and chiefs: their town (default: the "
                                                           "whole district)."),
             display_name: Optional[str] = typer.Option(None, "--display-name", help="Full name (default: NAME)."),
             chief_id: Optional[str] = typer.Option(None, "--chief-id", help="Chiefs: their river-chief record id."),
             password_stdin: bool = typer.Option(False, "--password-stdin",
                                                 help="Read the password from the first line of stdin instead of "
                                                      "asking twice.")) -> None:
    """Create an API user. The password (at least 10 characters) is asked for twice, or read from stdin."""
    from pydantic import ValidationError

    from core.auth import USERNAME_HELP, new_user, normalise_username, valid_username
    from core.registry import DuplicateUser, UserRepo

    username = normalise_username(name)
    if not valid_username(username):
        raise _fail(f"invalid user name {name!r}: use {USERNAME_HELP}")
    registry = _open_registry()
    try:
        users = UserRepo(registry.engine)
        if users.get(username) is not None:
            raise _fail(f"a user named {username!r} exists")
        password = _read_password(password_stdin, username)
        try:
            user = new_user(username, password, role.value, display_name=display_name, town=town, chief_id=chief_id)
        except ValidationError as exc:
            raise _fail("cannot add the user: " + "; ".join(_rule_errors(exc))) from None
        try:
            user = users.add(user)
        except DuplicateUser as exc:
            raise _fail(str(exc)) from None
    finally:
        registry.close()
    where = f" for {user.town}" if user.town else ""
    typer.echo(f"user {user.username!r} added: {user.role.value}{where}")


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the API users (never their password hashes)."""
    from core.registry import UserRepo

    registry = _open_registry()
    try:
        users = UserRepo(registry.engine).list()
    finally:
        registry.close()
    rows = [{"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role.value,
             "town": u.town, "chief_id": u.chief_id, "active": u.active, "created_at": u.created_at.isoformat()}
            for u in users]
    if as_json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "username", "display name", "role", "town", "chief", "active", "created (UTC)")
    for r in rows:
        table.add_row(str(r["id"]), r["username"], r["display_name"], r["role"], r["town"] or "(district)",
                      r["chief_id"] or "", "yes" if r["active"] else "no", r["created_at"][:19])
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if not rows:
        typer.echo("no users: add one with `smartwater user add NAME --role admin`", err=True)


@contextmanager
def _user_repo(name: str) -> Iterator[Any]:
    """The user accounts for one command about ``name``; an unknown user ends it with a clear error."""
    from core.registry import UserNotFound, UserRepo

    registry = _open_registry()
    try:
        yield UserRepo(registry.engine)
    except UserNotFound:
        raise _fail(f"no user named {name.strip().lower()!r}") from None
    finally:
        registry.close()


@user_app.command("disable")
def user_disable(name: str = typer.Argument(..., help="The user to disable.")) -> None:
    """Disable a user: no more logins, and their tokens are refused (by a running API within
    SMARTWATER_AUTH_USER_CACHE_S seconds)."""
    with _user_repo(name) as users:
        user = users.set_active(name, False)
    typer.echo(f"user {user.username!r} disabled")


@user_app.command("enable")
def user_enable(name: str = typer.Argument(..., help="The user to enable again.")) -> None:
    """Enable a disabled user: they can log in again (tokens issued before stay refused if revoked)."""
    with _user_repo(name) as users:
        user = users.set_active(name, True)
    typer.echo(f"user {user.username!r} enabled")


@user_app.command("password")
def user_password(name: str = typer.Argument(..., help="The user whose password to set."),
                  password_stdin: bool = typer.Option(False, "--password-stdin",
                                                      help="Read the new password from the first line of stdin.")
                  ) -> None:
    """Set (reset) a user's password. Every token issued to them before is refused from then on (by a running
    API within SMARTWATER_AUTH_USER_CACHE_S seconds)."""
    from core.auth import hash_password, normalise_username
    from core.registry import UserNotFound, UserRepo

    username = normalise_username(name)
    registry = _open_registry()
    try:
        users = UserRepo(registry.engine)
        if users.get(username) is None:
            raise _fail(f"no user named {username!r}")
        password = _read_password(password_stdin, username)
        try:
            user = users.set_password_hash(username, hash_password(password), revoke_tokens=True)
        except UserNotFound:
            raise _fail(f"no user named {username!r}") from None
    finally:
        registry.close()
    typer.echo(f"password of {user.username!r} changed; their earlier tokens are revoked")


@user_app.command("revoke")
def user_revoke(name: str = typer.Argument(..., help="The user whose tokens to revoke.")) -> None:
    """Refuse every token issued to a user so far (a lost phone, a leaked token); they can log in again."""
    with _user_repo(name) as users:
        user = users.revoke_tokens(name)
    typer.echo(f"all tokens of {user.username!r} revoked")


@app.command()
def token(name: str = typer.Argument(..., help="The user the token speaks for."),
          ttl: Optional[int] = typer.Option(None, "--ttl", min=60, max=30 * 86400,
                                            help="Lifetime in seconds (default SMARTWATER_TOKEN_TTL_S, 12 h; at "
                                                 "most 30 days).")) -> None:
    """Print a bearer token for NAME (for scripts and operators), signed like the API's own.

    Run it where the API's data directory (or SMARTWATER_AUTH_SECRET) is. Only the token goes to stdout."""
    from core.auth import TokenSigner, load_secret
    from core.registry import UserRepo

    settings = _settings()
    registry = _open_registry()
    try:
        user = UserRepo(registry.engine).get(name)
    finally:
        registry.close()
    if user is None:
        raise _fail(f"no user named {name.strip().lower()!r}")
    if not user.active:
        raise _fail(f"user {user.username!r} is disabled")
    try:
        signer = TokenSigner(load_secret(settings))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the token secret: {exc}") from None
    value, claims = signer.issue(user.username, user.role, ttl or settings.token_ttl_s, gen=user.token_generation)
    typer.echo(value)
    typer.echo(f"token for {user.username} ({user.role.value}), expires {claims.expires_at.isoformat()}", err=True)


# -- broker accounts of stations and services (smartwater/devices.py) --------
from smartwater.devices import devices_app  # noqa: E402 - next to its registration, like the other sub-apps
import smartwater.field_devices  # noqa: E402,F401 - adds add/list/remove/import to the same `devices` group

app.add_typer(devices_app, name="devices")


if __name__ == "__main__":
    app()
