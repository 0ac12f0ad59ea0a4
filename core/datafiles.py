"""Data files only their owner can read: the registry holds password hashes, the data directory the token key.

Directories the service creates are 0700 and its database files 0600 (POSIX), whatever the umask; SQLite creates
its -wal and -shm files with the database file's own permissions, so making that file first is enough.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """``path`` and its missing parents created 0700 (existing directories are left as they are)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        if os.name == "posix":
            os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: str | Path) -> Path:
    """``path`` created empty with mode 0600 when missing (its directory 0700); an existing file is left alone."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    if os.name == "posix":
        os.chmod(path, FILE_MODE)
    return path


def private_sqlite(url: str) -> None:
    """For a ``sqlite:///path`` URL (not ``:memory:``): the database file made private before SQLite opens it."""
    if url.startswith("sqlite:///"):
        target = url.removeprefix("sqlite:///").split("?", 1)[0]
        if target and target != ":memory:":
            private_file(target)
