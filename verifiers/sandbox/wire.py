"""The wire between troop, a worker and a job: length-prefixed JSON messages over pipes."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")  # length prefix of every message: 4 bytes, big-endian, bytes
MAX_MESSAGE = 256 << 20  # largest message a reader accepts, bytes
MAX_RESULT = 32 << 20  # largest return value a job may send to the worker, bytes


def frame(data: bytes) -> bytes:
    """One message as it travels: the length of the encoded JSON, then the JSON."""
    return HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    """Write every byte, retrying short writes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd: int, obj: Any) -> None:
    """Send one length-prefixed JSON message."""
    write_all(fd, frame(json.dumps(obj).encode()))


def read_exact(fd: int, size: int) -> bytes | None:
    """Exactly `size` bytes, or None at end of file."""
    parts: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def recv(fd: int) -> Any:
    """Receive one length-prefixed JSON message; None at end of file."""
    header = read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes exceeds the limit")
    data = read_exact(fd, size)
    if data is None:
        return None
    return json.loads(data)


def decode_message(buffer: bytes) -> Any:
    """The one complete message in `buffer`; ValueError when it is incomplete or malformed."""
    if len(buffer) < HEADER.size:
        raise ValueError("no message")
    (size,) = HEADER.unpack(buffer[: HEADER.size])
    if len(buffer) != HEADER.size + size:
        raise ValueError("truncated message")
    return json.loads(buffer[HEADER.size :])
