"""Dependencies injected into the routes: the registry, the time-series store and the settings on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.clock import Clock
from core.registry import Registry
from core.settings import Settings
from core.tsdb import TimeSeriesStore


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_store(request: Request) -> TimeSeriesStore:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_clock(request: Request) -> Clock:
    """The app's clock (create_app's ``clock``): every date-dependent default asks it, never the wall clock."""
    return request.app.state.clock


RegistryDep = Annotated[Registry, Depends(get_registry)]
StoreDep = Annotated[TimeSeriesStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
