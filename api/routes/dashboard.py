"""The dashboard's pages and static files: public (they hold no data) and left out of the OpenAPI schema.

``/`` is the staff dashboard (it asks for a login before it loads anything), ``/bulletin`` the public river-chief
bulletin, ``/static/...`` their scripts and styles. Only files that ship in ``api/dashboard/static`` are served:
the set is fixed when the module loads, so no request path ever reaches the file system.
"""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from api.dashboard import DASHBOARD_DIR, STATIC_DIR

router = APIRouter(include_in_schema=False)

# The browser enforces the closed-network rule too: scripts, styles, images and connections from this origin only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Revalidate on every load: an upgraded server must not run yesterday's scripts against today's API.
HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}

ASSETS = {p.relative_to(STATIC_DIR).as_posix(): p for p in sorted(STATIC_DIR.rglob("*"))
          if p.is_file() and not p.name.startswith(".")}


def _file(path, media_type: str | None = None) -> FileResponse:
    media_type = media_type or _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=HEADERS)


@router.get("/")
def dashboard_page() -> FileResponse:
    return _file(DASHBOARD_DIR / "index.html")


@router.get("/bulletin")
def bulletin_page() -> FileResponse:
    return _file(DASHBOARD_DIR / "bulletin.html")


@router.get("/reports")
def reports_page() -> FileResponse:
    return _file(DASHBOARD_DIR / "reports.html")


@router.get("/static/{name:path}")
def static_file(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail="not found")
    return _file(path)
