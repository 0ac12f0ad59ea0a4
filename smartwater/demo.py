"""``smartwater demo``: the whole pipeline on one machine, nothing to install but Python.

Embedded MQTT broker (amqtt), SQLite under the data directory, ingest, alerts, the API, the field-device
gateway with a few simulated SL 651 RTUs and HJ 212 analysers, and the storm scenario, in one process. With a duration it stops by itself and prints a JSON summary.

The API needs a login like any other: the demo keeps a staff account ``duty`` (role duty), a river chief ``chief``
(linked to a village chief of the generated river network) and a ``supervisor`` of that chief's town, and gives them
new random passwords each run, printed right after the API's address.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from datetime import datetime
from pathlib import Path

from core.broker import EmbeddedBroker
from core.logs import kv
from core.mqtt import wait_for
from core.registry import Registry, UserRepo
from core.settings import Settings
from core.timeutil import utcnow
from smartwater.bootstrap import ensure_demo_network as ensure_river_network  # the demo's river network
from smartwater.bootstrap import store_demo_data
from smartwater.runner import Supervisor, build_stages, open_backends

log = logging.getLogger("smartwater.demo")

SUMMARY_KINDS = ("reservoir", "rain", "river", "village_water")


def demo_settings(base: Settings, broker_url: str, data_dir: Path) -> Settings:
    from core.broker import free_port

    return base.model_copy(update={
        # The field-device gateway on this machine only, on free ports: a demo never clashes with a real one.
        "gateway_host": "127.0.0.1",
        "gateway_sl651_port": free_port(),
        "gateway_hj212_port": free_port(),
        # The simulated devices keep the simulated clock (hours behind at --speed 60): not a fault worth a warning.
        "gateway_clock_drift_s": 366 * 86400.0,
        "mqtt_url": broker_url,
        "mqtt_protocol": "3.1.1",  # amqtt speaks MQTT 3.1.1 only
        "data_dir": data_dir,
        "tsdb_url": f"sqlite:///{data_dir / 'timeseries.sqlite3'}",
        "db_url": f"sqlite:///{data_dir / 'registry.sqlite3'}",
    })


DEMO_USER = "duty"
DEMO_CHIEF_USER = "chief"
DEMO_SUPERVISOR_USER = "supervisor"


def demo_login(registry: Registry, username: str = DEMO_USER, role: str = "duty",
               display_name: str = "Demo duty officer", **kw: str | None) -> tuple[str, str]:
    """A demo account: created when missing, given a fresh random password either way (so the printed login always
    works, also with --keep); (user name, password). ``kw``: town, chief_id."""
    from core.auth import hash_password, new_user

    users = UserRepo(registry.engine)
    password = secrets.token_urlsafe(12)  # 16 characters
    user = users.get(username)
    if user is None:
        users.add(new_user(username, password, role, display_name=display_name, **kw))
    else:
        users.set_password_hash(username, hash_password(password))
        if not user.active:
            users.set_active(username, True)
    return username, password


# The default bulletin shows the last complete month with the week straddling its start: at the end of a long
# month that reaches back 31 + 31 + 6 days; 75 days cover it on every day of the year.
DEMO_HISTORY_DAYS = 75


def seed_patrol_history(registry: Registry, settings: Settings, days: int = DEMO_HISTORY_DAYS,
                        now: datetime | None = None) -> dict[str, int] | None:
    """The last ``days`` of patrols of the demo registry's chiefs, so the dashboard's chief table and the public
    bulletin show real compliance rates; only into a registry without patrols. The counts inserted, or None."""
    from core.patrols.repo import PatrolRepo
    from simulators.patrol_history import load_recent_patrols

    repo = PatrolRepo(registry.engine, settings)
    if repo.counts()["patrols"]:
        return None
    return load_recent_patrols(registry.engine, repo.list_chiefs(), repo.frequencies, now or utcnow(), days=days,
                               tz=repo.tz, seed=settings.district_seed)


def river_chief_logins(registry: Registry, settings: Settings) -> list[tuple[str, str, str]]:
    """A chief login linked to the first village chief and a supervisor of that chief's town:
    [(what, user name, password)]; none when the registry holds no village chief."""
    from core.patrols.repo import PatrolRepo

    chiefs = PatrolRepo(registry.engine, settings).list_chiefs(level="village")
    if not chiefs:
        return []
    chief = chiefs[0]
    out = [("River-chief login", *demo_login(registry, DEMO_CHIEF_USER, "chief", f"Demo chief {chief.name}",
                                             town=chief.town, chief_id=chief.id)),
           ("Supervisor login", *demo_login(registry, DEMO_SUPERVISOR_USER, "supervisor",
                                            f"Demo supervisor, {chief.town}", town=chief.town))]
    return out


DEMO_DEVICE_PASSWORD = {"sl651": "1234", "hj212": "123456"}


def demo_field_fleet(registry: Registry, settings: Settings, speed: float, duration: float | None):
    """A mixed fleet of simulated field devices talking to the demo's gateway over TCP: an SL 651 RTU measuring
    rain and a river level (two stations), one at a reservoir, two HJ 212 analysers at village water works.
    Registered when missing; their reports cover the demo's simulated span, sent at its speed."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from core.registry.devices import DeviceIn, DeviceRepo
    from gateway.simulated import FieldFleet, SimulatedDevice, hj212_reports, sl651_reports

    by_kind: dict[str, list[str]] = {}
    for s in registry.list_stations():
        by_kind.setdefault(s.kind.value, []).append(s.id)
    plan = [("sl651", "0012345001", ["rain", "river"]), ("sl651", "0012345002", ["reservoir"]),
            ("hj212", "DEMOQA0001", ["village_water"]), ("hj212", "DEMOQA0002", ["village_water"])]
    repo = DeviceRepo(registry.engine)
    known = {(d.protocol, d.address): d for d in repo.list()}
    step = timedelta(minutes=5)
    count = max(1, int((duration or 86400 / speed) * speed / step.total_seconds()))
    first = (utcnow() - count * step).astimezone(ZoneInfo(settings.display_timezone)).replace(
        tzinfo=None, second=0, microsecond=0)
    taken: dict[str, int] = {}
    devices = []
    for i, (protocol, address, kinds) in enumerate(plan):
        stations = []
        for k in kinds:
            ids = by_kind.get(k, [])
            if taken.get(k, 0) < len(ids):
                stations.append(ids[taken.get(k, 0)])
                taken[k] = taken.get(k, 0) + 1
        if not stations:
            continue
        if (protocol, address) not in known:
            repo.add(DeviceIn(protocol=protocol, address=address, password=DEMO_DEVICE_PASSWORD[protocol],
                              station_ids=stations), utcnow())
        make = sl651_reports if protocol == "sl651" else hj212_reports
        devices.append(SimulatedDevice(protocol, "127.0.0.1", 0,
                                       make(address, DEMO_DEVICE_PASSWORD[protocol], kinds, first, count, step,
                                            seed=settings.district_seed + i),
                                       pace_s=step.total_seconds() / speed))
    port_of = {"sl651": settings.gateway_sl651_port, "hj212": settings.gateway_hj212_port}
    return FieldFleet(devices, port_of.__getitem__)


def run_demo(base: Settings, port: int, speed: float, duration: float | None, mqtt_port: int | None = None,
             keep: bool = False, scenario: str = "storm", echo=print) -> dict:
    from simulators import Simulator

    data_dir = Path(base.data_dir) / "demo"
    if not keep and data_dir.exists():
        # Each demo replays its storm into recent data time; old runs' points would add to its rain sums.
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    broker = EmbeddedBroker(port=mqtt_port)
    sup = Supervisor()
    sup.install_signal_handlers()
    sup.add("broker", broker)
    settings = demo_settings(base, broker.url, data_dir)
    registry, store = open_backends(settings)
    if not registry.list_stations():
        store_demo_data(registry, settings)  # what `smartwater init --demo-data` loads
    else:
        ensure_river_network(registry, settings)  # --keep: the stations are there; the network may not be
    stations = registry.list_stations()
    start_alert_id = max((a.id for a in registry.list_alerts(limit=1)), default=0)
    login = demo_login(registry)
    seed_patrol_history(registry, settings)
    from smartwater.reports_setup import ensure_rain_history, ensure_towns

    ensure_towns(registry)  # areal rainfall needs the towns' boundaries
    ensure_rain_history(registry, store, settings, utcnow())  # "this year against past years" needs past years
    chief_logins = river_chief_logins(registry, settings)

    stages = build_stages(sup, settings, registry, store, "all", port)
    ingest = stages["ingest"]
    sim = Simulator(settings, stations, scenario=scenario, speed=speed, duration_s=duration)
    sup.add("simulator", sim)
    fleet = sup.add("field-devices", demo_field_fleet(registry, settings, speed, duration))
    try:
        sup.start()
        echo(f"Smart-water demo running: dashboard http://127.0.0.1:{port}/  (API docs: http://127.0.0.1:{port}/docs)"
             f"  MQTT {broker.url}", flush=True)
        echo(f"Staff login: {login[0]} / {login[1]}", flush=True)  # POST /api/v1/auth/login with these
        for what, user, password in chief_logins:
            echo(f"{what}: {user} / {password}", flush=True)
        while not sup.stop_requested.is_set() and not sim.done.is_set():
            sup.stop_requested.wait(0.2)
        sim.stop()
        # Let what the simulator published reach the store before we count it.
        last = -1

        def drained() -> bool:
            nonlocal last
            seen = ingest.stats.messages_in
            quiet = seen == last and ingest.pending == 0
            last = seen
            return quiet

        if not wait_for(drained, timeout=60, interval=0.5):
            log.warning("ingest did not drain within 60 s", extra=kv(pending=ingest.pending))
    finally:
        sup.stop()
    written = ingest.stats.readings_written
    alerts = registry.count_alerts_by_severity(since_id=start_alert_id)
    summary = {
        "readings": {k: written.get(k, 0) for k in SUMMARY_KINDS},
        "dead_letters": sum(ingest.stats.dead_letters.values()),
        "alerts": {s: alerts.get(s, 0) for s in ("blue", "yellow", "orange", "red")},
        "field_reports_confirmed": fleet.confirmed,  # SL 651 / HJ 212 reports the gateway confirmed
    }
    store.close()
    registry.close()
    return summary


def print_summary(summary: dict) -> None:
    print(json.dumps(summary, separators=(", ", ": ")), flush=True)


