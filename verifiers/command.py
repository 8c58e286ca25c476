"""The command verifier: a user's own program judges each sample, run inside the sandbox.

The protocol, for whoever writes such a program:

- It runs as `argv + [sample_path, problem_path]`, in a fresh working directory holding
  `sample.txt` (the sample's text, UTF-8) and `problem.json` (the problem as the session stores
  it: id, format, prompt, answer, entry_point, test, ...). The same two paths are in the
  environment as `TROOP_SAMPLE` and `TROOP_PROBLEM`, and the sample is also its standard input.
- The program is found on PATH when the verifier is built; a bare `python`, `python3` or
  `python3.X` is the interpreter troop itself runs on. The sandbox may hide /tmp and home
  directories (bwrap does), so the files named on the command line (a `#!` script as the
  program, `check.py` in `python check.py`, data files; up to 1 MiB each) are copied, as read
  when the verifier is built, into the job's directory and the arguments point at the copies.
  Other files the program opens must be visible inside the sandbox.
- Exit status 0 means PASS, 1 means FAIL; any other status, or death by a signal, is CRASH; a
  program still running at the time limit is killed (with its children) and gives TIMEOUT.
- Its standard output and error, capped, become the verdict's output. If the first line of
  standard output starts with `detail:`, the rest of that line is the verdict's one-line detail.

The program is trusted (the user wrote it); the sample is not, and is only data to it. It runs
under the sandbox's limits (memory, processes, file size), which its children inherit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from troop.errors import TroopError
from troop.verifiers.answer_verifiers import verdict_from_job
from troop.verifiers.base import Check, Verdict

#: Bytes kept of each of the program's standard output and error.
OUTPUT_CAP = 16 << 10
#: Largest file named on the command line that is copied into each job, bytes.
COPY_CAP = 1 << 20
_PYTHON_RE = re.compile(r"python(?:3(?:\.\d+)?)?")
# Seconds of the sandbox's wall limit kept back for writing the files and reading the output,
# so that a slow program is reported as TIMEOUT by the judge, with its output, rather than
# killed silently along with the judge.
_MARGIN_S = 1.0
_DEFAULT_WALL_S = 10.0


def judge_command(payload: dict[str, Any]) -> dict[str, Any]:
    """Sandbox entry of the command verifier: payload {argv, text, problem, timeout_s,
    output_cap}; runs the program as the module docstring describes."""
    cwd = Path.cwd()
    sample = cwd / "sample.txt"
    problem = cwd / "problem.json"
    sample.write_text(payload["text"], encoding="utf-8")
    problem.write_text(json.dumps(payload["problem"], ensure_ascii=False), encoding="utf-8")
    argv = list(payload["argv"])
    for copy in payload.get("files", []):
        # Each copy in a folder of its own, so that two files of one name do not collide.
        folder = cwd / "program" / str(copy["index"])
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / copy["name"]
        target.write_bytes(base64.b64decode(copy["data"]))
        target.chmod(0o700)
        argv[copy["index"]] = str(target)
    argv += [str(sample), str(problem)]
    env = {**os.environ, "TROOP_SAMPLE": str(sample), "TROOP_PROBLEM": str(problem)}
    cap = int(payload.get("output_cap", OUTPUT_CAP))
    out_path, err_path = cwd / ".troop-stdout", cwd / ".troop-stderr"
    timed_out = False
    with sample.open("rb") as stdin, out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            # A session of its own, so that a timeout kills the program's children too.
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True
            )
        except OSError as exc:
            detail = (
                f"cannot start {payload['argv'][0]}: {exc.strerror or exc} (is it visible "
                "inside the sandbox?)"
            )
            return {"status": "crash", "detail": detail, "output": detail, "extra": {}}
        try:
            returncode: int | None = proc.wait(timeout=float(payload["timeout_s"]))
        except subprocess.TimeoutExpired:
            timed_out, returncode = True, None
        finally:
            # Whatever the program left running dies with it; the group may already be gone.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stdout, out_cut = _head(out_path, cap)
    stderr, err_cut = _head(err_path, cap)
    output = stdout + (f"\n--- stderr ---\n{stderr}" if stderr else "")
    first = stdout.split("\n", 1)[0]
    detail = first[len("detail:") :].strip() if first.startswith("detail:") else ""
    if timed_out:
        status = "timeout"
        detail = detail or f"the command ran past {payload['timeout_s']:g} s"
    elif returncode == 0:
        status = "pass"
    elif returncode == 1:
        status = "fail"
        detail = detail or "the command rejected the sample (exit status 1)"
    else:
        status = "crash"
        assert returncode is not None
        how = (
            f"killed by {_signal_name(-returncode)}"
            if returncode < 0
            else f"exit status {returncode}"
        )
        detail = detail or f"the command failed: {how}"
    return {
        "status": status,
        "detail": detail,
        "output": output,
        "truncated": out_cut or err_cut,
        "extra": {"returncode": returncode},
    }


def _head(path: Path, cap: int) -> tuple[str, bool]:
    """The first `cap` bytes of a file as text, and whether there was more."""
    with path.open("rb") as f:
        data = f.read(cap + 1)
    return data[:cap].decode("utf-8", errors="replace"), len(data) > cap


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class CommandVerifier:
    """Judges samples with a user-supplied program (see the module docstring for its
    protocol); applies to every format, since the program decides what it understands."""

    name = "command"

    def __init__(
        self,
        *,
        argv: list[str] | None = None,
        wall_s: float = _DEFAULT_WALL_S,
        memory_bytes: int | None = None,
    ) -> None:
        if not argv:
            raise TroopError(
                "the command verifier needs a program",
                hint="--verifier command --command 'PROGRAM ARGS'",
            )
        # troop's own interpreter is visible in the sandbox and has troop's packages; a
        # `python` found on PATH may be a shim (pyenv) under a home the sandbox hides.
        interpreter = _PYTHON_RE.fullmatch(Path(argv[0]).name) is not None
        program = sys.executable if _PYTHON_RE.fullmatch(argv[0]) else shutil.which(argv[0])
        # `python check.py`: a missing script would only show up as a crash per sample.
        if (
            interpreter
            and len(argv) > 1
            and not argv[1].startswith("-")
            and not Path(argv[1]).is_file()
        ):
            raise TroopError(f"command verifier: script {argv[1]!r} not found")
        if program is None:
            raise TroopError(
                f"command verifier: program {argv[0]!r} not found or not executable",
                hint="give a path to it or put it on PATH",
            )
        # Absolute paths for the program and for arguments naming files: the program runs in
        # the sandbox's own working directory, with another PATH.
        self.argv = [os.path.abspath(program)] + [
            os.path.abspath(a) if Path(a).is_file() else a for a in argv[1:]
        ]
        self._files = _copies(self.argv)  # files shipped into each job, as read now
        self.wall_s = wall_s  # wall (and CPU) seconds the program may run per sample
        self.memory_bytes = memory_bytes  # address-space limit, None: the sandbox's default
        self.version = "1+" + _fingerprint(self.argv)

    def applies_to(self, problem_format: str) -> bool:
        return True

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        from troop.verifiers.sandbox import Job, Limits

        limits = Limits(wall_s=self.wall_s + _MARGIN_S, cpu_s=self.wall_s + _MARGIN_S)
        if self.memory_bytes is not None:
            limits = Limits(
                wall_s=limits.wall_s, cpu_s=limits.cpu_s, memory_bytes=self.memory_bytes
            )
        payload = {
            "argv": self.argv,
            "files": self._files,
            "text": check.text,
            "problem": check.problem,
            "timeout_s": self.wall_s,
            "output_cap": OUTPUT_CAP,
        }
        result = sandbox.run(
            Job(entry="troop.verifiers.command:judge_command", payload=payload, limits=limits)
        )
        return verdict_from_job(result, self.name, self.version)


def _copies(argv: list[str]) -> list[dict[str, Any]]:
    """The files on the command line to copy into each job: the program when it is a `#!`
    script (a binary may need files beside it), every argument naming a file; small ones only."""
    copies: list[dict[str, Any]] = []
    for index, arg in enumerate(argv):
        path = Path(arg)
        if not path.is_file() or path.stat().st_size > COPY_CAP:
            continue
        data = path.read_bytes()
        if index == 0 and not data.startswith(b"#!"):
            continue
        copies.append(
            {"index": index, "name": path.name, "data": base64.b64encode(data).decode("ascii")}
        )
    return copies


def _fingerprint(argv: list[str]) -> str:
    """12 hex digits of sha256 over the program file, every argument that names a file (so
    that editing `check.py` in `python check.py` expires old verdicts too) and the arguments
    themselves."""
    digest = hashlib.sha256()
    for arg in argv:
        digest.update(arg.encode("utf-8", errors="surrogateescape") + b"\0")
        path = Path(arg)
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]
