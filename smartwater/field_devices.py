"""``smartwater devices add|list|remove|import``: the SL 651 and HJ 212 devices the gateway hears.

Registered on the same ``devices`` group as ``devices credentials`` (smartwater/devices.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import typer

from smartwater.common import open_registry_ready
from smartwater.devices import devices_app

CSV_COLUMNS = ("protocol", "address", "password", "stations")


_registry = open_registry_ready


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(2)


def _address(protocol: str, address: Optional[str], mn: Optional[str]) -> str:
    if protocol == "sl651":
        if mn or not address:
            raise _fail("an SL 651 device is named by --address (the 10-digit remote station address)")
        return address
    if protocol == "hj212":
        if address or not mn:
            raise _fail("an HJ 212 device is named by --mn (its MN)")
        return mn
    raise _fail(f"--protocol must be sl651 or hj212, got {protocol!r}")


def _validation_lines(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'device'}: {e['msg'].removeprefix('Value error, ')}"
                         for e in exc.errors())
    return str(exc)


def _check_stations(registry, station_ids: list[str]) -> None:
    known = {s.id for s in registry.list_stations()}
    missing = [s for s in station_ids if s not in known]
    if missing:
        raise _fail(f"unknown station(s) {', '.join(missing)}: add them first (`smartwater init --csv ...`)")


@devices_app.command("add")
def add_cmd(protocol: str = typer.Option(..., "--protocol", help="sl651 or hj212."),
            address: Optional[str] = typer.Option(None, "--address", help="SL 651 remote station address, 10 "
                                                                            "digits (e.g. 0012345678)."),
            mn: Optional[str] = typer.Option(None, "--mn", help="HJ 212 MN of the analyser."),
            password: Optional[str] = typer.Option(None, "--password", help="The device's password (SL 651: 4 hex "
                                                   "digits; HJ 212: PW). Unset: not checked."),
            station: list[str] = typer.Option(..., "--station", help="Station it reports for; repeat for an RTU "
                                              "that measures several things (each value goes to the station "
                                              "whose kind has its metric)."),
            replace: bool = typer.Option(False, "--replace", help="Overwrite a device already registered.")) -> None:
    """Register a field device."""
    from pydantic import ValidationError

    from core.registry.devices import DeviceExists, DeviceIn, DeviceRepo
    from core.timeutil import utcnow

    addr = _address(protocol, address, mn)
    try:
        dev = DeviceIn(protocol=protocol, address=addr, password=password, station_ids=station)
    except ValidationError as exc:
        raise _fail(f"invalid device: {_validation_lines(exc)}") from None
    registry = _registry()
    try:
        _check_stations(registry, dev.station_ids)
        saved = DeviceRepo(registry.engine).add(dev, utcnow(), replace=replace)
    except DeviceExists as exc:
        raise _fail(f"{exc} (use --replace to change it)") from None
    finally:
        registry.close()
    typer.echo(f"{saved.protocol} device {saved.address} -> {', '.join(saved.station_ids)}"
               f"{'' if saved.has_password else ' (password not checked)'}")


@devices_app.command("list")
def list_cmd(protocol: Optional[str] = typer.Option(None, "--protocol", help="Only sl651 or hj212."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Registered field devices, their stations, and the codes heard from them that had no metric."""
    from core.registry.devices import DeviceRepo

    registry = _registry()
    try:
        rows = DeviceRepo(registry.engine).list(protocol)
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps([d.model_dump(mode="json") for d in rows], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("protocol", no_wrap=True)
    table.add_column("address / MN", no_wrap=True)
    for name in ("stations", "password", "unmapped (code: n)", "battery", "clock", "last seen"):
        table.add_column(name)
    for d in rows:
        unmapped = ", ".join(f"{c}: {n}" for c, n in sorted(d.unmapped.items())) or "-"
        seen = d.last_seen_at.isoformat(timespec="seconds") if d.last_seen_at else "never"
        battery = f"{d.health['battery_v']:.2f} V" if "battery_v" in d.health else "-"
        clock = f"{d.health['clock_drift_s']:+.0f} s" if "clock_drift_s" in d.health else "-"
        table.add_row(d.protocol, d.address, ", ".join(d.station_ids), "checked" if d.has_password else "-",
                      unmapped, battery, clock, seen)
    Console().print(table)
    if not rows:
        typer.echo("no field devices: add one with `smartwater devices add`", err=True)


@devices_app.command("remove")
def remove_cmd(protocol: str = typer.Option(..., "--protocol", help="sl651 or hj212."),
               address: Optional[str] = typer.Option(None, "--address", help="SL 651 remote station address."),
               mn: Optional[str] = typer.Option(None, "--mn", help="HJ 212 MN.")) -> None:
    """Forget a field device: its frames become dead letters (unknown device)."""
    from core.registry.devices import DeviceNotFound, DeviceRepo

    addr = _address(protocol, address, mn)
    registry = _registry()
    try:
        DeviceRepo(registry.engine).remove(protocol, addr)
    except DeviceNotFound as exc:
        raise _fail(str(exc)) from None
    finally:
        registry.close()
    typer.echo(f"{protocol} device {addr} removed")


def read_devices_csv(path: Path) -> list:
    """protocol,address,password,stations (stations separated by ';'): every row checked, all errors at once."""
    from pydantic import ValidationError

    from core.registry.devices import DeviceIn

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("protocol", "address", "stations") if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(CSV_COLUMNS)})")
    out, errors, seen = [], [], set()
    for n, row in enumerate(reader, start=2):
        try:
            dev = DeviceIn(protocol=(row.get("protocol") or "").strip(), address=(row.get("address") or "").strip(),
                           password=(row.get("password") or "").strip() or None,
                           station_ids=[s.strip() for s in (row.get("stations") or "").split(";") if s.strip()])
        except ValidationError as exc:
            errors.append(f"line {n}: {_validation_lines(exc)}")
            continue
        if (dev.protocol, dev.address) in seen:
            errors.append(f"line {n}: {dev.protocol} device {dev.address} listed twice")
        seen.add((dev.protocol, dev.address))
        out.append(dev)
    if errors:
        raise ValueError(f"{path}: {len(errors)} problem(s)\n" + "\n".join(errors))
    return out


@devices_app.command("import")
def import_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                           help="CSV with columns protocol,address,password,stations "
                                                "(stations separated by ';')."),
               replace: bool = typer.Option(False, "--replace", help="Overwrite devices already registered.")) -> None:
    """Register many field devices from a CSV: all rows or none."""
    from core.registry.devices import DeviceExists, DeviceRepo
    from core.timeutil import utcnow

    try:
        devices = read_devices_csv(file)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    registry = _registry()
    try:
        _check_stations(registry, sorted({s for d in devices for s in d.station_ids}))
        repo = DeviceRepo(registry.engine)
        existing = {(d.protocol, d.address) for d in repo.list()}
        clash = [f"{d.protocol} {d.address}" for d in devices if (d.protocol, d.address) in existing]
        if clash and not replace:
            raise _fail(f"already registered: {', '.join(clash[:10])} (use --replace)")
        now = utcnow()
        for d in devices:
            repo.add(d, now, replace=replace)
    except DeviceExists as exc:
        raise _fail(str(exc)) from None
    finally:
        registry.close()
    typer.echo(f"{len(devices)} field devices registered")
