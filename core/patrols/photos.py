"""Photo uploads: the type is decided by the bytes (magic numbers and a little structure), never by the
file name or the Content-Type header alone; files are stored once per content under
``data_dir/photos/<sha256[:2]>/<sha256>.<ext>``."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.datafiles import private_dir

PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
PHOTO_DIR = "photos"
# Clients that do not know better send these; the content decides then.
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


class PhotoRejected(ValueError):
    """The upload is not an accepted image (type, structure or size)."""


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    path: str  # relative to data_dir, with forward slashes
    content_type: str
    size: int
    sha256: str


def sniff_image(data: bytes) -> str | None:
    """The image type of ``data`` by content, or None. Checks the signature and the first structure:
    PNG's IHDR chunk, JPEG's SOI followed by a marker, WebP's RIFF container with a plausible size."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 33 and data[12:16] == b"IHDR":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff" and len(data) >= 4 and data[3] >= 0xC0:
        return "image/jpeg"
    if len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:15] == b"VP8":
        riff_size = struct.unpack("<I", data[4:8])[0]
        if riff_size + 8 <= len(data) + 1:  # RIFF pads odd sizes; a truncated upload is shorter
            return "image/webp"
    return None


def check_photo(data: bytes, declared_type: str | None = None, max_bytes: int = 10 * 1024 * 1024) -> str:
    """The content type of an acceptable photo; PhotoRejected otherwise."""
    if len(data) == 0:
        raise PhotoRejected("empty upload")
    if len(data) > max_bytes:
        raise PhotoRejected(f"photo is {len(data)} bytes, more than the {max_bytes} allowed")
    kind = sniff_image(data)
    if kind is None:
        raise PhotoRejected("not a JPEG, PNG or WebP image")
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    if declared not in _GENERIC_TYPES and declared != kind:
        raise PhotoRejected(f"declared {declared!r} but the content is {kind}")
    return kind


def store_photo(data_dir: str | Path, data: bytes, declared_type: str | None = None,
                max_bytes: int = 10 * 1024 * 1024) -> StoredPhoto:
    """Check and store a photo; the same bytes twice give the same file (written once, atomically)."""
    kind = check_photo(data, declared_type, max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{PHOTO_DIR}/{digest[:2]}/{digest}.{PHOTO_TYPES[kind]}"
    target = Path(data_dir) / rel
    if not target.exists():
        private_dir(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)  # atomic: readers never see half a photo
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return StoredPhoto(path=rel, content_type=kind, size=len(data), sha256=digest)
