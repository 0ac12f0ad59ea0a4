"""The HTTP API (FastAPI): stations, readings, alerts and dead letters over the registry and the time-series store.

``create_app`` builds the ASGI app; ``ApiServer`` runs it in a background thread; ``python -m api`` runs it alone.
"""

from api.app import create_app
from api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
