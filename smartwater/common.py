"""What every ``smartwater`` subcommand shares: the settings, or a clear error and exit code 2."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from core.redact import redact_text
from core.settings import Settings, describe_settings_error, get_settings


def settings_or_exit() -> Settings:
    """The settings; a bad variable ends the command with its name, never its value (it may hold a password)."""
    try:
        return get_settings()
    except ValidationError as exc:
        typer.secho(f"invalid settings: {describe_settings_error(exc)}", fg="red", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        typer.secho(f"invalid settings: {redact_text(str(exc))}", fg="red", err=True)
        raise typer.Exit(2) from None


def open_registry_ready():
    """The registry of the settings, its schema created or migrated (the commands that read or write it)."""
    from core.registry import open_registry

    registry = open_registry(settings_or_exit().db_url)
    registry.create_schema()
    return registry
