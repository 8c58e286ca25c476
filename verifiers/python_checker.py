"""The python-tests checker, the sandbox job's entry: runs a problem's tests against the
functions of a sample that runs in a forked process of its own."""

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
import os
import signal
import socket
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from troop.verifiers.sample_calls import (
    SampleBroke,
    decode_plain,
    encode_plain,
    exception_message,
    recv_message,
    send_message,
    serve_sample,
)
from troop.verifiers.sandbox import Limits, cpu_seconds, spawn_untrusted

ENTRY = "troop.verifiers.python_checker:check_sample"
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


class _SampleGone(BaseException):
    """The sample's process ended before the tests finished (BaseException: a test's
    `except Exception` must not swallow it)."""


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
            send_message(self._channel, request)
            answer = recv_message(self._channel)
        except TimeoutError:
            raise _Overtime from None
        except OSError:
            answer = None
        if answer is None:
            raise _SampleGone
        if not isinstance(answer, dict):
            raise SampleBroke("the sample answered out of protocol")
        if "value" in answer:
            try:
                return decode_plain(answer["value"])
            except (ValueError, RecursionError):
                raise SampleBroke(
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
    child = spawn_untrusted(lambda channel: serve_sample(payload["code"], channel))
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
    except SampleBroke as exc:
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
    except (Exception, _Overtime, _SampleGone, SampleBroke, _SampleExited, _SampleResource):
        if tally.first is None:
            raise


def _run_tests(payload: dict[str, Any], channel: socket.socket, tally: _Tally) -> dict[str, str]:
    hello = recv_message(channel)
    if hello is None:
        raise _SampleGone
    if not isinstance(hello, dict):
        raise SampleBroke("the sample answered out of protocol")
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
    text = exception_message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
