"""Atomic file writes: a report is either the old good one or the new complete one, never half."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from troop.errors import TroopError

# Names `asset_name` gives: a stem, a dash, 12 hex digits of the content's hash, an extension.
# Only files with such names are ever pruned from an assets folder.
_ASSET_RE = re.compile(r"^[a-z0-9_-]+-[0-9a-f]{12}\.(?:png|svg)$")


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync'd, then
    renamed over it: readers (and a crash) see the old file or the new one, nothing between."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TroopError(f"{path}: cannot write there: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file private (0600); a report gets the mode a plain open() would
        # give, or keeps the mode of the file it replaces.
        os.fchmod(fd, _mode(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise TroopError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
    _fsync_dir(folder)


def write_text(path: Path, text: str) -> None:
    """`write_bytes` for UTF-8 text."""
    write_bytes(path, text.encode("utf-8"))


def asset_name(stem: str, data: bytes, ext: str) -> str:
    """A file name that changes whenever the content does (`coverage-1a2b3c4d5e6f.png`), so a
    new report's images never overwrite the ones the old report still points at."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.{ext}"


def write_with_assets(path: Path, text: str, folder: Path, assets: Mapping[str, bytes]) -> None:
    """Write a document that links to files in `folder` (names from `asset_name`).

    Order keeps every moment consistent: the new images land first under new names, then the
    document is replaced atomically, and only then are images no document points at removed.
    A crash at any step leaves a document whose links all resolve.
    """
    for name, data in assets.items():
        if not _ASSET_RE.match(name):
            raise ValueError(f"asset name {name!r} is not one asset_name() makes")
        target = folder / name
        if not target.exists():
            write_bytes(target, data)
    write_text(path, text)
    if not folder.is_dir():
        return
    for old in folder.iterdir():
        if _ASSET_RE.match(old.name) and old.name not in assets:
            with contextlib.suppress(OSError):
                old.unlink()


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads; Linux shows
    # it in /proc.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
