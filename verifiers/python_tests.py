"""The python-tests verifier: runs a HumanEval or MBPP problem's tests against a sample's code."""

# Two processes per check, both inside one sandbox job. The trusted checker (this module's
# `check_sample`, the job's entry) runs the problem's test code; the sample's code runs in a
# forked child of its own and only answers calls: the checker sends a function name and
# arguments, the child sends back its return value as plain data or the exception it raised.
# The checker rebuilds values from plain JSON only, so a sample cannot hand it an object whose
# __eq__ lies, and nothing the sample prints, exits with or kills decides a pass.
# Each assert is counted (tests passed / tests run: the verdict's partial credit). A sample
# fails at its first failing assert, as before; the asserts after it still run to be counted,
# but only for a short while, so counting never turns a fail into a timeout.

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from troop.verifiers.base import SAMPLE_STYLES, Check, Status, Verdict
from troop.verifiers.extract import extract_code
from troop.verifiers.sandbox import (
    Job,
    JobResult,
    Limits,
    classify_exception,
    cpu_seconds,
    spawn_untrusted,
)

ENTRY = "troop.verifiers.python_tests:check_sample"
_HEADER = struct.Struct(">I")  # length prefix of a message between checker and sample, bytes
_MAX_REPLY = 64 << 20  # largest answer the checker reads from the sample, bytes
_MAX_DEPTH = 100  # deepest nesting of containers in a value passed either way
_DETAIL_CHARS = 200  # longest `detail` line, characters
_FLOAT_INT_LIMIT = 1 << 53  # ints beyond this travel as hex strings (JSON readers round them)
_COUNT_AFTER_FAIL_S = 2.0  # how long the tests after a sample's first failure may run, seconds
# Modules the tests import, loaded with this module in the worker: each check then finds them
# in memory instead of importing from a disk the sample may have written to (rlimits tier).
_TEST_MODULES = (
    "math",
    "random",
    "copy",
    "re",
    "string",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "hashlib",
    "fractions",
    "decimal",
    "typing",
)
for _name in _TEST_MODULES:
    importlib.import_module(_name)


class PythonTests:
    """Judges HumanEval and MBPP samples by running the problem's tests in the sandbox."""

    name = "python-tests"
    version = "1"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()  # per sample: wall/CPU time, memory, output

    def applies_to(self, problem_format: str) -> bool:
        return SAMPLE_STYLES.get(problem_format) == "code"

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        start = time.monotonic()
        problem = check.problem
        try:
            code = extract_code(check.text, problem.get("prompt") or "", problem.get("entry_point"))
        except Exception as exc:  # a bug in extraction must not take the run down
            return self._verdict(Status.INFRA_ERROR, start, f"extraction failed: {exc!r}")
        if code is None:
            return self._verdict(Status.INVALID, start, "no code block")
        test_list = list(problem.get("test_list") or ())
        payload = {
            "code": code,
            "format": problem.get("format", ""),
            "prompt": problem.get("prompt") or "",
            "entry_point": problem.get("entry_point"),
            "test": problem.get("test") or "",
            "test_list": test_list,
            "cpu_s": self.limits.cpu_s,
            "wall_s": self.limits.wall_s,
        }
        result = sandbox.run(Job(ENTRY, payload, self.limits))
        return self._from_result(result, start)

    def _from_result(self, result: JobResult, start: float) -> Verdict:
        extra: dict[str, Any] = {"outcome": result.outcome}
        if result.outcome == "returned" and isinstance(result.value, dict):
            for key in ("tests_passed", "tests_run"):
                if type(result.value.get(key)) is int:
                    extra[key] = result.value[key]
            try:
                status = Status(str(result.value.get("status")))
                detail = str(result.value.get("detail", ""))
            except ValueError:
                status, detail = Status.INFRA_ERROR, f"the checker said {result.value!r}"
        else:
            status = {
                "timeout": Status.TIMEOUT,
                "resource": Status.RESOURCE,
                "crash": Status.CRASH,
            }.get(result.outcome, Status.INFRA_ERROR)
            detail = _last_line(result.error) or result.outcome
        return Verdict(
            status=status,
            verifier=self.name,
            version=self.version,
            duration_s=time.monotonic() - start,
            output=result.output,
            truncated=result.truncated,
            detail=_one_line(detail),
            tier=result.tier,
            extra=extra,
        )

    def _verdict(self, status: Status, start: float, detail: str) -> Verdict:
        return Verdict(status, self.name, self.version, time.monotonic() - start, "", False, detail)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


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


def _send(channel: socket.socket, obj: Any) -> None:
    data = json.dumps(obj).encode()
    channel.sendall(_HEADER.pack(len(data)) + data)


def _recv(channel: socket.socket, limit: int = _MAX_REPLY) -> Any:
    """One message, or None when the other side is gone."""
    header = _recv_exact(channel, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise _SampleBroke(f"the sample sent a {size}-byte answer (limit {limit})")
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


def _serve(code: str, channel: socket.socket) -> None:
    """In the sample's process: run its code, report its functions, then answer calls."""
    module = types.ModuleType("__sample__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__sample__"] = module  # so dataclasses and pickle find the sample's module
    try:
        exec(compile(code, "<sample>", "exec"), module.__dict__)
    except BaseException as exc:
        _send(channel, {"load_error": _describe(exc), "resource": _is_resource(exc)})
        return
    names = [
        name
        for name, value in module.__dict__.items()
        if callable(value) and not name.startswith("__")
    ]
    _send(channel, {"names": names})
    while True:
        request = _recv(channel)
        if request is None:
            return
        try:
            function = module.__dict__[request["call"]]
            value = function(*decode_plain(request["args"]), **decode_plain(request["kwargs"]))
            answer: dict[str, Any] = {"value": encode_plain(value)}
        except BaseException as exc:
            answer = {
                "raised": type(exc).__name__,
                "message": _message(exc),
                "resource": _is_resource(exc),
            }
        _send(channel, answer)


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:1000]
    except BaseException:
        return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, SystemExit):
        return f"the sample exited while loading (sys.exit({exc.code!r}))"
    text = _message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_resource(exc: BaseException) -> bool:
    return bool(classify_exception(exc) == "resource")


# --- the trusted side -------------------------------------------------------------------------


class _SampleGone(BaseException):
    """The sample's process ended before the tests finished (BaseException: a test's
    `except Exception` must not swallow it)."""


class _SampleBroke(BaseException):
    """The sample answered with something that is not plain data; the call fails."""


class _SampleExited(BaseException):
    """A call made the sample raise SystemExit or KeyboardInterrupt."""


class _SampleResource(BaseException):
    """A call ran out of memory or another resource inside the sample."""


class _Overtime(BaseException):
    """The time for counting the tests after a failure ran out."""


class _Tally:
    """Tests passed and run in one check, and the first failure's detail; after the first
    failure, the time left for counting the rest."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.start = time.monotonic()
        self.passed = 0  # asserts that held
        self.run = 0  # asserts tried
        self.first: str | None = None  # detail of the first failure; None: none yet
        self.deadline: float | None = None  # monotonic time counting stops, after a failure

    def ok(self) -> None:
        self.passed += 1
        self.run += 1

    def failed(self, exc: BaseException, detail: str | None = None) -> None:
        self.run += 1
        if self.first is None:
            self.first = detail or _failure_detail(exc, self.payload)
            # Half the job's wall time at most: the sandbox must never see the job run long.
            wall = float(self.payload.get("wall_s", Limits.wall_s))
            self.deadline = min(time.monotonic() + _COUNT_AFTER_FAIL_S, self.start + wall / 2)

    def counts(self) -> dict[str, int]:
        return {"tests_passed": self.passed, "tests_run": self.run}


def _failure_detail(exc: BaseException, payload: dict[str, Any]) -> str:
    if isinstance(exc, AssertionError):
        return _assertion_detail(exc, payload["test"])
    if isinstance(exc, RecursionError):
        return f"RecursionError: {exc}"
    return _exception_detail(exc)


class _Counted(ast.NodeTransformer):
    """Wraps every assert of the test code so that its outcome is tallied and a failure does
    not stop the tests: `try: assert ... except Exception as e: __troop_failed__(e) else:
    __troop_passed__()`. Exceptions that end the check (the sample died, ran out of time or
    memory) are BaseExceptions and still propagate."""

    def visit_Assert(self, node: ast.Assert) -> ast.Try:
        def call(name: str, *args: ast.expr) -> ast.Expr:
            return ast.Expr(ast.Call(ast.Name(name, ast.Load()), list(args), []))

        wrapped = ast.Try(
            body=[node],
            handlers=[
                ast.ExceptHandler(
                    ast.Name("Exception", ast.Load()),
                    "__troop_exc__",
                    [call("__troop_failed__", ast.Name("__troop_exc__", ast.Load()))],
                )
            ],
            orelse=[call("__troop_passed__")],
            finalbody=[],
        )
        return ast.fix_missing_locations(ast.copy_location(wrapped, node))


def _counted_code(source: str) -> types.CodeType:
    tree = _Counted().visit(ast.parse(source, "<test>"))
    return compile(tree, "<test>", "exec")


class _Candidate:
    """Stands in for one of the sample's functions in the trusted test code."""

    def __init__(self, channel: socket.socket, name: str, tally: _Tally | None = None) -> None:
        self._channel = channel
        self._tally = tally
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = {
            "call": self.__name__,
            "args": encode_plain(list(args)),
            "kwargs": encode_plain(kwargs),
        }
        deadline = self._tally.deadline if self._tally is not None else None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Overtime
            self._channel.settimeout(left)
        try:
            _send(self._channel, request)
            answer = _recv(self._channel)
        except TimeoutError:
            raise _Overtime from None
        except OSError:
            answer = None
        if answer is None:
            raise _SampleGone
        if not isinstance(answer, dict):
            raise _SampleBroke("the sample answered out of protocol")
        if "value" in answer:
            try:
                return decode_plain(answer["value"])
            except (ValueError, RecursionError):
                raise _SampleBroke(
                    f"{self.__name__}() returned something that is not plain data"
                ) from None
        name, message = str(answer.get("raised")), str(answer.get("message", ""))
        if answer.get("resource"):
            raise _SampleResource(f"{name}: {message}" if message else name)
        if name in ("SystemExit", "KeyboardInterrupt"):
            raise _SampleExited(f"{self.__name__}() raised {name}")
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type) and issubclass(builtin, Exception):
            try:
                raise builtin(message)
            except TypeError:  # exception classes whose constructor wants other arguments
                pass
        raise _SampleRaised(name, message)


class _SampleRaised(Exception):
    """An exception the sample raised whose type is not a built-in one."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name  # the exception type's name in the sample

    def __str__(self) -> str:
        return f"{self.name}: {self.args[0]}" if self.args[0] else self.name


def check_sample(payload: dict[str, Any]) -> dict[str, Any]:
    """The sandbox entry: test the sample's code; {"status": a Status value, "detail": why,
    "tests_passed": asserts that held, "tests_run": asserts tried}."""
    tally = _Tally(payload)
    result = _check(payload, tally)
    return {**result, **tally.counts()}


def _check(payload: dict[str, Any], tally: _Tally) -> dict[str, str]:
    child = spawn_untrusted(lambda channel: _serve(payload["code"], channel))
    try:
        return _run_tests(payload, child.channel, tally)
    except _SampleGone:
        child.channel.close()
        waited = child.wait(timeout=1.0)
        if waited is None:  # alive, but it closed its end of the channel
            return {"status": "fail", "detail": "the sample stopped answering"}
        return _gone(waited, float(payload.get("cpu_s", Limits.cpu_s)))
    except _SampleResource as exc:
        return {"status": "resource", "detail": f"{exc} in the sample"}
    except _SampleExited as exc:
        return {"status": "fail", "detail": f"the sample exited during the tests: {exc}"}
    except _SampleBroke as exc:
        return {"status": "fail", "detail": str(exc)}
    except Exception as exc:
        tally.run += 1  # a statement outside any assert raised: a failed test all the same
        return {"status": "fail", "detail": _failure_detail(exc, payload)}
    finally:
        child.kill()


def _counting(tally: _Tally, tests: Callable[[], object]) -> None:
    """Run the tests; once one has failed, whatever ends them early (the sample died, the
    time for counting ran out, a statement outside an assert raised) only ends the count."""
    try:
        tests()
    except (Exception, _Overtime, _SampleGone, _SampleBroke, _SampleExited, _SampleResource):
        if tally.first is None:
            raise


def _run_tests(payload: dict[str, Any], channel: socket.socket, tally: _Tally) -> dict[str, str]:
    hello = _recv(channel)
    if hello is None:
        raise _SampleGone
    if not isinstance(hello, dict):
        raise _SampleBroke("the sample answered out of protocol")
    if "load_error" in hello:
        status = "resource" if hello.get("resource") else "fail"
        return {"status": status, "detail": str(hello["load_error"])}
    names = [str(n) for n in hello.get("names", ())]
    entry_point = str(payload.get("entry_point") or "")
    if entry_point and entry_point not in names:
        return {"status": "fail", "detail": f"the sample does not define {entry_point}()"}
    namespace: dict[str, Any] = {
        "__name__": "__test__",
        "__builtins__": builtins,
        "__troop_passed__": tally.ok,
        "__troop_failed__": tally.failed,
    }
    if payload["format"] == "humaneval":
        if not entry_point:
            return {"status": "infra_error", "detail": "the problem names no entry point"}
        # The prompt's helpers (poly, encode_cyclic...) are trusted: the tests call them.
        exec(compile(payload["prompt"], "<prompt>", "exec"), namespace)
        exec(_counted_code(payload["test"]), namespace)
        candidate = _Candidate(channel, entry_point, tally)
        namespace[entry_point] = candidate
        _counting(tally, lambda: namespace["check"](candidate))
    else:
        asserts = list(payload["test_list"])
        test = payload["test"]
        joined = "\n".join(asserts)
        setup = test[: -len(joined)] if asserts and test.endswith(joined) else test
        if not asserts:
            asserts, setup = [test], ""
        exec(compile(setup, "<setup>", "exec"), namespace)
        for name in names:
            namespace.setdefault(name, _Candidate(channel, name, tally))

        def tests() -> None:
            for line in asserts:
                try:
                    exec(compile(line, "<test>", "exec"), namespace)
                except AssertionError as exc:
                    message = f": {exc}" if str(exc) else ""
                    tally.failed(exc, f"AssertionError: {line.strip()}{message}")
                except Exception as exc:
                    tally.failed(exc)
                else:
                    tally.ok()

        _counting(tally, tests)
    if tally.first is not None:
        return {"status": "fail", "detail": tally.first}
    return {"status": "pass", "detail": ""}


def _gone(waited: tuple[int, float], cpu_s: float) -> dict[str, str]:
    """The verdict for a sample whose process ended before the tests finished."""
    status, cpu = waited
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_seconds(cpu_s) - 0.05):
            return {"status": "timeout", "detail": "the sample hit the CPU-time limit"}
        if sig == signal.SIGXFSZ:
            return {"status": "resource", "detail": "the sample hit the file-size limit"}
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return {"status": "crash", "detail": f"the sample was killed by {name}"}
    return {"status": "fail", "detail": "the sample exited before the tests finished"}


def _assertion_detail(exc: AssertionError, source: str) -> str:
    """ "AssertionError at test line 12: assert candidate(...) == 3", from the failing frame."""
    message = f": {exc}" if str(exc) else ""
    lineno = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<test>":
            lineno = line
    if lineno is None:
        return f"AssertionError{message}"
    lines = source.splitlines()
    text = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
    return f"AssertionError at test line {lineno}: {text}{message}"


def _exception_detail(exc: BaseException) -> str:
    if isinstance(exc, _SampleRaised):
        return str(exc)
    text = _message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
