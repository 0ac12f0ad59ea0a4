"""What every ``smartwater`` subcommand shares: the settings, or a clear error and exit code 2."""

from __future__ import annotations

import typer

from core.settings import Settings, get_settings


def settings_or_exit() -> Settings:
    """The settings; a bad variable ends the command with its name, not a traceback."""
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable
        typer.secho(f"invalid settings: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
