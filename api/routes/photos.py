"""Photos of patrols and issues: multipart upload (JPEG, PNG or WebP, decided by the bytes) and download.

The size limit is enforced while reading the spooled upload, so an oversized one never sits in memory whole;
files are kept once per content under ``data_dir/photos``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Path, UploadFile
from fastapi.responses import FileResponse

from api.auth import ANY_ROLE, Principal, require
from api.errors import not_found
from api.patrol_schemas import PhotoOut
from api.routes.patrol_scope import (PatrolsDep, domain_errors, scoped_issue, scoped_patrol, sees_issue,
                                     sees_patrol)
from api.schemas import ErrorOut
from core.auth import Role
from core.patrols.models import OwnerKind
from core.patrols.repo import NotFound, PatrolRepo

router = APIRouter(tags=["photos"])

PHOTO_WRITERS = require(Role.admin, Role.supervisor, Role.chief)
ObjId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_CHUNK = 256 * 1024

_UPLOAD_ERRORS = {
    404: {"model": ErrorOut, "description": "no such object, or not one the caller may see"},
    413: {"model": ErrorOut, "description": "larger than photo_max_bytes"},
    415: {"model": ErrorOut, "description": "not a JPEG, PNG or WebP image (by content), or not what it claims"},
}
_FileField = Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")]


def _read_capped(upload: UploadFile, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := upload.file.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status_code=413, detail=f"photo rejected: more than the {max_bytes} bytes allowed")
        parts.append(chunk)
    return b"".join(parts)


def _store(repo: PatrolRepo, kind: OwnerKind, owner_id: int, file: UploadFile, user: Principal) -> PhotoOut:
    data = _read_capped(file, repo.settings.photo_max_bytes)
    with domain_errors():
        photo = repo.add_photo(kind, owner_id, data, file.content_type, uploaded_by=user.username)
    return PhotoOut.from_domain(photo)


@router.post("/patrols/{patrol_id}/photos", response_model=PhotoOut, status_code=201,
             summary="Upload a photo of a patrol", responses=_UPLOAD_ERRORS)
def upload_patrol_photo(patrol_id: ObjId, file: _FileField, repo: PatrolsDep,
                              user: Annotated[Principal, Depends(PHOTO_WRITERS)]) -> PhotoOut:
    scoped_patrol(repo, user, patrol_id)
    return _store(repo, OwnerKind.patrol, patrol_id, file, user)


@router.post("/issues/{issue_id}/photos", response_model=PhotoOut, status_code=201,
             summary="Upload a photo of an issue (as found, or of the rectification)", responses=_UPLOAD_ERRORS)
def upload_issue_photo(issue_id: ObjId, file: _FileField, repo: PatrolsDep,
                             user: Annotated[Principal, Depends(PHOTO_WRITERS)]) -> PhotoOut:
    scoped_issue(repo, user, issue_id)
    return _store(repo, OwnerKind.issue, issue_id, file, user)


@router.get("/photos/{photo_id}", response_class=FileResponse, summary="A photo's image",
            description="Served with its content type; visible to whoever may see its patrol or issue.",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                       404: {"model": ErrorOut}})
def get_photo(photo_id: ObjId, repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)]) -> FileResponse:
    try:
        photo = repo.get_photo(photo_id)
        visible = (sees_patrol(repo, user, repo.get_patrol(photo.owner_id, with_points=False))
                   if photo.owner_kind is OwnerKind.patrol else sees_issue(user, repo.get_issue(photo.owner_id, False)))
    except NotFound:
        visible = False
    path = repo.photo_file(photo) if visible else None
    if path is None or not path.is_file():
        not_found("photo", photo_id)
    return FileResponse(path, media_type=photo.content_type,
                        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})
