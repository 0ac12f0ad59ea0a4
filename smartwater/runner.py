"""Start/stop long-running parts alone or together under one supervisor."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Callable, Protocol

from core.catalog import StationCatalog
from core.logs import configure_logging, kv
from core.registry import Registry, open_registry
from core.settings import Settings, get_settings
from core.tsdb import TimeSeriesStore, store_from_settings

log = logging.getLogger("smartwater")

STAGES = ("ingest", "alerts", "api", "gateway", "all")


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class Supervisor:
    """Starts components in order, stops them in reverse; a failed start stops what already runs."""

    def __init__(self) -> None:
        self.components: list[tuple[str, Component]] = []
        self._running: list[tuple[str, Component]] = []
        self.stop_requested = threading.Event()

    def add(self, name: str, component: Component) -> Component:
        self.components.append((name, component))
        return component

    def start(self) -> None:
        for name, c in self.components:
            try:
                c.start()
            except BaseException:
                log.error("failed to start", extra=kv(component=name))
                self.stop()
                raise
            self._running.append((name, c))
            log.info("started", extra=kv(component=name))

    def stop(self) -> None:
        while self._running:
            name, c = self._running.pop()
            try:
                c.stop()
                log.info("stopped", extra=kv(component=name))
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("failed to stop cleanly", extra=kv(component=name))

    def install_signal_handlers(self) -> None:
        def _handler(signum: int, _frame: object) -> None:
            log.info("signal received, stopping", extra=kv(signal=signal.Signals(signum).name))
            self.stop_requested.set()

        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


def open_backends(settings: Settings) -> tuple[Registry, TimeSeriesStore]:
    registry = open_registry(settings.db_url)
    registry.create_schema()
    return registry, store_from_settings(settings)


def _add_health(sup: Supervisor, name: str, host: str, port: int, health: Callable[[], dict]) -> None:
    from core.health import HealthServer

    try:
        sup.add(name, HealthServer(host, port, health, name=name))
    except OSError as exc:
        # Metrics are secondary to the data: run without them rather than not at all.
        log.error(f"{name} disabled: cannot listen", extra=kv(port=port, error=str(exc)))


def build_stages(sup: Supervisor, settings: Settings, registry: Registry, store: TimeSeriesStore, stage: str,
                 port: int | None = None) -> dict[str, Component]:
    built: dict[str, Component] = {}
    # One catalogue of stations for the stages of this process: one registry read per refresh, one view.
    catalog = StationCatalog.of(registry, settings.station_refresh_s)
    if stage in ("ingest", "all"):
        from ingest import Ingestor

        built["ingest"] = sup.add("ingest", Ingestor(settings, registry, store, catalog=catalog))
        if settings.ingest_metrics_port:
            _add_health(sup, "ingest-metrics", settings.ingest_metrics_host, settings.ingest_metrics_port,
                        built["ingest"].health)
    if stage in ("alerts", "all"):
        from alerts import AlertService

        built["alerts"] = sup.add("alerts", AlertService(settings, registry, store, catalog=catalog))
        if settings.alerts_metrics_port:
            _add_health(sup, "alerts-metrics", settings.alerts_metrics_host, settings.alerts_metrics_port,
                        built["alerts"].health)
    if stage in ("gateway", "all"):
        from gateway import GatewayService

        built["gateway"] = sup.add("gateway", GatewayService(settings, registry))
        if settings.gateway_metrics_port:
            _add_health(sup, "gateway-metrics", settings.gateway_metrics_host, settings.gateway_metrics_port,
                        built["gateway"].health)
    if stage in ("api", "all"):
        from api.server import ApiServer

        built["api"] = sup.add("api", ApiServer(settings, registry, store, port=port or settings.api_port))
    return built


def run_stage(stage: str, port: int | None = None, settings: Settings | None = None) -> None:
    """Run one stage (or all of them) until SIGINT/SIGTERM."""
    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    registry, store = open_backends(settings)
    if not registry.count_stations():
        log.warning("the station registry is empty: load stations with `smartwater init --stations FILE` "
                    "(or --demo-data); the stages pick them up while running")
    sup = Supervisor()
    sup.install_signal_handlers()
    build_stages(sup, settings, registry, store, stage, port)
    sup.start()
    try:
        sup.stop_requested.wait()
    finally:
        sup.stop()
        store.close()
        registry.close()
