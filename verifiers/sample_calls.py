"""Calls from the python-tests checker into the sample's process: values as plain JSON both
ways, length-prefixed messages, and the sample's side that answers them."""

from __future__ import annotations

import builtins
import json
import socket
import struct
import sys
import types
from typing import Any

from troop.verifiers.sandbox import classify_exception

_HEADER = struct.Struct(">I")  # length prefix of a message between checker and sample, bytes
_MAX_REPLY = 64 << 20  # largest answer the checker reads from the sample, bytes
_MAX_DEPTH = 100  # deepest nesting of containers in a value passed either way
_FLOAT_INT_LIMIT = 1 << 53  # ints beyond this travel as hex strings (JSON readers round them)


class SampleBroke(BaseException):
    """The sample answered with something that is not plain data; the call fails."""


# --- plain data, both ways --------------------------------------------------------------------


def encode_plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-ready data with tags for what JSON lacks; TypeError for anything that is
    not built from None, bool, int, float, complex, str, bytes, list, tuple, dict, set and
    frozenset (subclasses included: they could override __eq__)."""
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value if -_FLOAT_INT_LIMIT < value < _FLOAT_INT_LIMIT else {"I": format(value, "x")}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if kind is bytes:
        return {"b": value.hex()}
    if depth >= _MAX_DEPTH:
        raise TypeError("the value is nested too deeply")
    if kind is list:
        return [encode_plain(v, depth + 1) for v in value]
    if kind is tuple:
        return {"t": [encode_plain(v, depth + 1) for v in value]}
    if kind is set:
        return {"s": [encode_plain(v, depth + 1) for v in value]}
    if kind is frozenset:
        return {"f": [encode_plain(v, depth + 1) for v in value]}
    if kind is dict:
        return {
            "d": [
                [encode_plain(k, depth + 1), encode_plain(v, depth + 1)] for k, v in value.items()
            ]
        }
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        # numpy scalars (np.int64, np.float64...) compare like the Python numbers they hold.
        return encode_plain(value.item(), depth + 1)
    raise TypeError(f"a value of type {kind.__name__} is not plain data")


def decode_plain(data: Any, depth: int = 0) -> Any:
    """The value `encode_plain` encoded; ValueError for anything else. Builds only built-in
    types, whatever the data says."""
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if depth >= _MAX_DEPTH + 2:
        raise ValueError("nested too deeply")
    if kind is list:
        return [decode_plain(v, depth + 1) for v in data]
    if kind is dict and len(data) == 1:
        ((tag, body),) = data.items()
        try:
            if tag == "I" and type(body) is str:
                return int(body, 16)
            if tag == "c" and type(body) is list and len(body) == 2:
                real, imag = (decode_plain(v, depth + 1) for v in body)
                if type(real) in (int, float) and type(imag) in (int, float):
                    return complex(real, imag)
            if tag == "b" and type(body) is str:
                return bytes.fromhex(body)
            if type(body) is list:
                items = [decode_plain(v, depth + 1) for v in body]
                if tag == "t":
                    return tuple(items)
                if tag == "s":
                    return set(items)
                if tag == "f":
                    return frozenset(items)
                if tag == "d" and all(type(p) is list and len(p) == 2 for p in items):
                    return {k: v for k, v in items}
        except TypeError as exc:  # an unhashable key or set element
            raise ValueError(str(exc)) from None
    raise ValueError("not plain data")


def send_message(channel: socket.socket, obj: Any) -> None:
    data = json.dumps(obj).encode()
    channel.sendall(_HEADER.pack(len(data)) + data)


def recv_message(channel: socket.socket, limit: int = _MAX_REPLY) -> Any:
    """One message, or None when the other side is gone."""
    header = _recv_exact(channel, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise SampleBroke(f"the sample sent a {size}-byte answer (limit {limit})")
    data = _recv_exact(channel, size)
    return None if data is None else json.loads(data)


def _recv_exact(channel: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        got = channel.recv_into(view)
        if not got:
            return None
        view = view[got:]
    return bytes(buffer)


# --- the untrusted side -----------------------------------------------------------------------


def serve_sample(code: str, channel: socket.socket) -> None:
    """In the sample's process: run its code, report its functions, then answer calls."""
    module = types.ModuleType("__sample__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__sample__"] = module  # so dataclasses and pickle find the sample's module
    try:
        exec(compile(code, "<sample>", "exec"), module.__dict__)
    except BaseException as exc:
        send_message(channel, {"load_error": _describe(exc), "resource": _is_resource(exc)})
        return
    names = [
        name
        for name, value in module.__dict__.items()
        if callable(value) and not name.startswith("__")
    ]
    send_message(channel, {"names": names})
    while True:
        request = recv_message(channel)
        if request is None:
            return
        try:
            function = module.__dict__[request["call"]]
            value = function(*decode_plain(request["args"]), **decode_plain(request["kwargs"]))
            answer: dict[str, Any] = {"value": encode_plain(value)}
        except BaseException as exc:
            answer = {
                "raised": type(exc).__name__,
                "message": exception_message(exc),
                "resource": _is_resource(exc),
            }
        send_message(channel, answer)


def exception_message(exc: BaseException) -> str:
    try:
        return str(exc)[:1000]
    except BaseException:
        return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, SystemExit):
        return f"the sample exited while loading (sys.exit({exc.code!r}))"
    text = exception_message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_resource(exc: BaseException) -> bool:
    return bool(classify_exception(exc) == "resource")
