"""Atomic writes for run outputs (a crash never leaves a half-written file behind) and the
exclusive lock of a folder that one process at a time may write (`exclusive_lock`)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def write_parquet(path: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame to Parquet atomically."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def _lock_record(path: Path) -> dict:
    """The holder recorded in a lock file (``{}`` when empty or unreadable)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def lock_holder(info: dict) -> str:
    """``"pid 123 on host, started 2026-11-29 01:02:03"`` for a lock record."""
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started "
            f"{info.get('started', '?')}")


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Callable[[dict], Exception]):
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, with its folder) for the block; the
    file records this process's pid, host and start time while held and is emptied on release.

    The system releases the lock when its process dies, so a killed holder never blocks the next;
    its record is left, though, and is what the block receives (``{}`` after a clean release).
    Without ``fcntl`` (Windows) or on a file system that refuses locks, the block runs unlocked.

    Args:
        busy: builds the exception raised when another process holds the lock, from its record.

    Yields:
        ``(record written, record left by a holder that died)``.
    """
    try:
        import fcntl
    except ImportError:
        yield {}, {}
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(_lock_record(path)) from None
        except OSError:  # no locks on this file system
            yield {}, {}
            return
        stale = _lock_record(path)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        try:
            yield info, stale
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
