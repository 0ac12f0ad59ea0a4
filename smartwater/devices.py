"""Per-device and per-service MQTT accounts for Mosquitto: password file, ACL, credentials for installers.

Sensors never use the API: each RTU gets its own broker account (username = station id) and an ACL that lets
it publish only to its own topic ``water/{kind}/{station_id}``. The services get one account each with just
what their stage needs. Nothing else can connect: the broker has no anonymous access.

Output of ``smartwater devices credentials --out DIR``:

* ``passwd`` -- Mosquitto password file, PBKDF2-SHA512 (``$7$``, Mosquitto 2's default), computed here so no
  Mosquitto tools are needed on the machine that generates it;
* ``acl`` -- Mosquitto ACL file (explicit lines per account, no ``pattern``: a pattern applies to every
  account, services included);
* ``credentials.csv`` -- the plaintext passwords for the installers and the next run (mode 0600);
* ``services.env`` -- the service passwords as the variables docker-compose.yml reads (mode 0600).

A re-run keeps every existing password (read back from ``credentials.csv``), adds new stations and drops
removed ones; ``--rotate`` gives every account a new password, ``--rotate-account NAME`` just that one.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import typer

from core.csvcell import FORMULA_STARTS, safe_cell, unquote_cell
from core.domain import KINDS, Station
from core import topics

PASSWD_FILE = "passwd"
ACL_FILE = "acl"
CREDENTIALS_FILE = "credentials.csv"
SERVICES_ENV_FILE = "services.env"
# Where docker-compose.yml mounts passwd and acl from.
DEFAULT_OUT = Path("deploy/mosquitto/auth")
CSV_FIELDS = ("username", "password", "role", "kind", "station_id")

# Mosquitto 2's own salt length and iteration count (mosquitto_passwd). More iterations would buy nothing:
# the passwords are 144 random bits, not words, and every extra round is broker CPU on each reconnect.
SALT_BYTES = 12
PBKDF2_ITERATIONS = 101

# What each stage needs and nothing more. Kinds are listed for the simulator so it cannot write our own
# notification topics (water/alerts/…, water/reports/…), which the API streams to people. Topics: core.topics.
def service_acl(shared_group: str = topics.DEFAULT_SHARED_GROUP) -> dict[str, tuple[tuple[str, str], ...]]:
    """(access, topic) of each service account; the ingest workers share their subscription in ``shared_group``."""
    return {
        "ingest": (("read", topics.ALL), ("read", topics.shared(shared_group, topics.ALL))),
        "alerts": (("read", topics.ALL), ("write", topics.ALERTS), ("write", topics.REPORTS)),
        "api": (("read", topics.ALERTS),),
        "simulator": tuple(("write", topics.readings_of_kind(kind)) for kind in KINDS),
        # The field-protocol gateway publishes for every station an SL 651 or HJ 212 device feeds.
        "gateway": tuple(("write", topics.readings_of_kind(kind)) for kind in KINDS),
        # The broker's health check in docker-compose.yml reads one $SYS topic, nothing else.
        "health": (("read", "$SYS/broker/uptime"),),
    }


SERVICE_ACL = service_acl()  # the accounts' names and grants with the default group
# compose variable that carries each service password (docker-compose.yml, .env.example).
SERVICE_ENV = {name: f"MQTT_{name.upper()}_PASSWORD" for name in SERVICE_ACL}

_SAFE_USERNAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # no ':' (passwd), no '+', '#', '/' (topics)


@dataclass
class Account:
    username: str
    password: str
    role: str  # "service" or "device"
    kind: str = ""
    station_id: str = ""


@dataclass
class Summary:
    out_dir: Path
    accounts: list[Account]
    new: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def devices(self) -> list[Account]:
        return [a for a in self.accounts if a.role == "device"]


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's ``$7$`` format: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    _, scheme, iterations, salt, digest = hashed.split("$")
    if scheme != "7":
        raise ValueError(f"only Mosquitto's $7$ hashes are understood, got ${scheme}$")
    expected = hash_password(password, salt=base64.b64decode(salt), iterations=int(iterations))
    return secrets.compare_digest(expected.rsplit("$", 1)[1], digest)


def new_password() -> str:
    # URL-safe, so it also works inside an mqtt://user:password@host URL without escaping; never starting with '-'
    # (a CSV cell starting so is quoted against spreadsheet formulas, core/csvcell.py).
    while (password := secrets.token_urlsafe(18)).startswith(FORMULA_STARTS):
        pass
    return password


def read_credentials(path: Path) -> dict[str, Account]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "username" not in (reader.fieldnames or ()) or "password" not in (reader.fieldnames or ()):
            raise ValueError(f"{path} lacks the username and password columns; move it away to start afresh")
        return {unquote_cell(row["username"]): Account(**{k: unquote_cell(row.get(k) or "") for k in CSV_FIELDS})
                for row in reader}


def plan_accounts(stations: Iterable[Station], existing: dict[str, Account], *, rotate: bool = False,
                  rotate_accounts: Sequence[str] = ()) -> tuple[list[Account], Summary]:
    """Accounts for the services and the stations; existing passwords kept unless rotated."""
    wanted: list[tuple[str, str, str, str]] = [(name, "service", "", "") for name in SERVICE_ACL]
    seen = set(SERVICE_ACL)
    for st in sorted(stations, key=lambda s: s.id):
        if not _SAFE_USERNAME.match(st.id):
            raise ValueError(f"station id {st.id!r} cannot be an MQTT username (letters, digits, '_', '-')")
        if st.id in seen:
            what = "a service account name" if st.id in SERVICE_ACL else "listed twice"
            raise ValueError(f"station id {st.id!r} is {what}; device accounts must be unique")
        seen.add(st.id)
        wanted.append((st.id, "device", st.kind.value, st.id))
    unknown = set(rotate_accounts) - seen
    if unknown:
        raise ValueError(f"no such account to rotate: {', '.join(sorted(unknown))}")
    summary = Summary(out_dir=Path(), accounts=[])
    for username, role, kind, station_id in wanted:
        old = existing.get(username)
        if old is None or not old.password:
            password = new_password()
            summary.new.append(username)
        elif rotate or username in rotate_accounts:
            password = new_password()
            summary.rotated.append(username)
        else:
            password = old.password
            summary.kept.append(username)
        summary.accounts.append(Account(username, password, role, kind, station_id))
    summary.removed = sorted(set(existing) - seen)
    return summary.accounts, summary


def acl_text(accounts: Sequence[Account], shared_group: str = topics.DEFAULT_SHARED_GROUP) -> str:
    lines = ["# Generated by `smartwater devices credentials`; re-run it rather than editing this file.",
             "# Services read and write what their stage needs; a device may publish only to its own topic.", ""]
    grants = service_acl(shared_group)
    for acc in accounts:
        lines.append(f"user {acc.username}")
        if acc.role == "service":
            lines += [f"topic {access} {topic}" for access, topic in grants[acc.username]]
        else:
            lines.append(f"topic write {topics.reading(acc.kind, acc.station_id)}")
        lines.append("")
    return "\n".join(lines)


def passwd_text(accounts: Sequence[Account]) -> str:
    return "".join(f"{a.username}:{hash_password(a.password)}\n" for a in accounts)


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file; mode set before any byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _credentials_csv(accounts: Sequence[Account]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for a in accounts:
        w.writerow({k: safe_cell(getattr(a, k)) for k in CSV_FIELDS})
    return buf.getvalue()


def services_env(accounts: Sequence[Account]) -> dict[str, str]:
    return {SERVICE_ENV[a.username]: a.password for a in accounts if a.role == "service"}


def upsert_env_file(path: Path, values: dict[str, str]) -> None:
    """Set ``KEY=value`` lines in a .env file, keeping every other line (and the file's comments) as it was."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    todo = dict(values)
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in todo:
            lines[i] = f"{key}={todo.pop(key)}"
    lines += [f"{k}={v}" for k, v in todo.items()]
    _write_private(path, "\n".join(lines) + "\n")


def write_credentials(stations: Iterable[Station], out_dir: Path, *, rotate: bool = False,
                      rotate_accounts: Sequence[str] = (), shared_group: str | None = None) -> Summary:
    """Write the four files; ``shared_group``: the ingest workers' group (settings), default the compose one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = read_credentials(out_dir / CREDENTIALS_FILE)
    accounts, summary = plan_accounts(stations, existing, rotate=rotate, rotate_accounts=rotate_accounts)
    summary.out_dir = out_dir
    # credentials.csv first: if a later write fails, a re-run still knows every password the broker may get.
    _write_private(out_dir / CREDENTIALS_FILE, _credentials_csv(accounts))
    _write_private(out_dir / SERVICES_ENV_FILE, "".join(f"{k}={v}\n" for k, v in services_env(accounts).items()))
    _write_private(out_dir / PASSWD_FILE, passwd_text(accounts))
    acl = acl_text(accounts, shared_group or topics.DEFAULT_SHARED_GROUP)
    _write_private(out_dir / ACL_FILE, acl, mode=0o644)  # no secret in it
    return summary


# ---------------------------------------------------------------------------------------------------------
# CLI: smartwater devices …
# ---------------------------------------------------------------------------------------------------------

devices_app = typer.Typer(no_args_is_help=True, help="Field devices the gateway hears (SL 651 RTUs, HJ 212 analysers: "
                          "add, list, remove, import) and the broker accounts of stations and services (credentials).")


@devices_app.command("credentials")
def credentials_cmd(
        out: Path = typer.Option(DEFAULT_OUT, "--out", file_okay=False,
                                 help="Directory for passwd, acl, credentials.csv and services.env."),
        csv_file: Optional[Path] = typer.Option(None, "--csv", exists=True, dir_okay=False,
                                                help="Stations from this CSV (as `smartwater init --stations`)."),
        district: bool = typer.Option(False, "--district",
                                      help="Stations of the generated demo district (as `smartwater init "
                                           "--demo-data`)."),
        rotate: bool = typer.Option(False, "--rotate", help="New passwords for every account."),
        rotate_account: list[str] = typer.Option([], "--rotate-account", help="New password for this account "
                                                 "(station id or service name); repeatable."),
        env_file: Optional[Path] = typer.Option(None, "--env-file", dir_okay=False,
                                                help="Also set the service passwords in this .env file."),
) -> None:
    """Write Mosquitto's password and ACL files and the installers' credentials from the station registry."""
    from smartwater.common import settings_or_exit as _settings

    if csv_file and district:
        typer.secho("choose one of --csv and --district", fg="red", err=True)
        raise typer.Exit(2)
    try:
        if csv_file:
            from core.importers import load_stations_csv

            stations = load_stations_csv(csv_file)
        elif district:
            from simulators import generate_district

            stations = generate_district(_settings().district_seed, _settings().flood_season)
        else:
            from core.registry import open_registry

            registry = open_registry(_settings().db_url)
            registry.create_schema()
            stations = registry.list_stations()
            registry.close()
            if not stations:
                typer.secho("the station registry is empty: run `smartwater init` first, or pass --csv or "
                            "--district", fg="red", err=True)
                raise typer.Exit(2)
        summary = write_credentials(stations, out, rotate=rotate, rotate_accounts=rotate_account,
                                    shared_group=_settings().ingest_shared_group)
    except (OSError, ValueError) as exc:
        typer.secho(f"cannot write credentials: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if env_file is not None:
        upsert_env_file(env_file, services_env(summary.accounts))
    typer.echo(f"{out}: {len(summary.devices)} device and {len(summary.accounts) - len(summary.devices)} service "
               f"accounts; {len(summary.new)} new, {len(summary.rotated)} rotated, {len(summary.kept)} kept, "
               f"{len(summary.removed)} removed")
    typer.echo(f"give installers their lines of {out / CREDENTIALS_FILE}; reload the broker "
               "(`docker compose restart mosquitto`) so it reads the new files")
