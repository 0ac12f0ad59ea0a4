"""The duty dashboard: static HTML, CSS and ES modules served by the API (``api.routes.dashboard``).

No build step and nothing from the network (bureau networks are often closed): plain files, shipped as package
data. The pages hold no data; every data call they make carries the bearer token from the login form.
"""

from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent
STATIC_DIR = DASHBOARD_DIR / "static"
