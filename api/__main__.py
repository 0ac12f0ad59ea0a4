"""``python -m api [--host H] [--port P]``: serve the API alone, from Settings, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from api.app import create_app
from api.server import UvicornServer, bind_socket, server_options
from core.logs import configure_logging, kv
from core.registry import open_registry
from core.settings import Settings, describe_settings_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description="Serve the smart-water monitoring API.")
    parser.add_argument("--host", help="listen address (default SMARTWATER_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default SMARTWATER_API_PORT, 8000)")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:  # the variable and why, never its value (it may hold a password)
        print(f"invalid settings: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    log = logging.getLogger("api")
    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port

    try:
        sock = bind_socket(host, port)
    except RuntimeError as exc:
        log.error(str(exc))
        return 1
    port = sock.getsockname()[1]

    assert settings.db_url is not None
    registry = open_registry(settings.db_url)
    try:
        registry.create_schema()  # harmless when it exists; lets the API start on a fresh data directory
        app = create_app(settings, registry=registry)
        log.info("api listening", extra=kv(url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs"))
        # uvicorn handles Ctrl-C / SIGTERM in the main thread, runs the app's shutdown, then re-raises the signal.
        server = UvicornServer(uvicorn.Config(app, **server_options(settings)))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
    finally:
        sock.close()
        registry.close()
    log.info("api stopped")
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
