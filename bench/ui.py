"""The TUI under load: key-press-to-screen latency while sampling at full speed, and the
sampling rate with the TUI open against the same run headless, side by side.

Each repeat runs the same session twice, alternating so machine load drifts evenly:
`troop run --headless` (progress bars on a pipe), then `troop run` (the TUI) in a
pseudo-terminal of 120x40. While the TUI samples, the script presses `?` every
--press-every seconds and times how long until the help dialog's title appears in the
terminal output (the key's effect reaching the screen), then closes it with Escape. Rates
come from the session files: completion tokens / the run's wall time (runs table), so both
modes are timed the same way, model loading excluded.

Every repeat is run twice more over: on the idle machine, and beside a one-core busy loop at
`nice -n 19` (standing in for a compile or a browser); `--load idle` or `--load busy` runs one.

Run `python bench/ui.py [--problems arithmetic:8] [--samples 8] [--parallel 8]
[--max-tokens 64] [--repeats 3] [--load idle,busy]`. Goals: p95 latency below 100 ms; TUI
rate >= 0.95x headless idle, >= 0.8x beside the busy loop.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Text the help dialog shows first; it reaching the terminal means the key press was handled
#: and painted.
HELP_MARKER = b"Keys of the live session screen"
#: The status bar's word once the model is loaded and sampling runs.
SAMPLING_MARKER = b"sampling"
COLUMNS, LINES = 120, 40


@dataclass
class RunResult:
    """One run of the session, headless or in the TUI."""

    mode: str  # "headless" or "tui"
    load: str  # "idle" or "busy" (beside a nice 19 busy loop)
    tokens_per_s: float  # completion tokens / run wall time
    samples_per_s: float  # samples / run wall time
    wall_s: float  # the run's wall time (runs table), model loading excluded
    latencies_ms: list[float] = field(default_factory=list)  # key press -> help on screen


class Terminal:
    """A pseudo-terminal running one command; a thread drains its output and watches for a
    marker, timestamping the read that completed it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.buffer = bytearray()
        self.lock = threading.Lock()
        self.found = threading.Event()
        self.marker: bytes | None = None
        self.search_from = 0
        self.found_at = 0.0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self.lock:
                self.buffer += chunk
                if self.marker is not None and not self.found.is_set():
                    start = max(0, self.search_from - len(self.marker))
                    if self.buffer.find(self.marker, start) >= 0:
                        self.found_at = now
                        self.found.set()

    def expect_after(self, marker: bytes) -> None:
        """Watch for `marker` in output that arrives from now on."""
        with self.lock:
            self.marker = marker
            self.search_from = len(self.buffer)
            self.found.clear()

    def wait(self, timeout: float) -> float | None:
        """perf_counter time the marker arrived, or None after `timeout` seconds."""
        return self.found_at if self.found.wait(timeout) else None

    def contains(self, marker: bytes) -> bool:
        with self.lock:
            return marker in self.buffer

    def press(self, keys: bytes) -> float:
        t = time.perf_counter()
        os.write(self.master, keys)
        return t

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_group(self.proc)  # the TUI and its workers
        os.close(self.master)


def session_rate(path: Path) -> tuple[float, float, float, bool]:
    """(completion tokens/s, samples/s, wall s, finished) of the session's last run."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        run_id, started, finished = conn.execute(
            "SELECT run_id, started_at, finished_at FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        n, tokens = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0) FROM samples WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    wall = (finished or time.time()) - started
    return tokens / wall, n / wall, wall, finished is not None


def run_args(args: argparse.Namespace, session: Path) -> list[str]:
    return [
        "run",
        "--problems",
        args.problems,
        "--samples",
        str(args.samples),
        "--parallel",
        str(args.parallel),
        "--max-tokens",
        str(args.max_tokens),
        "--session",
        str(session),
    ]


def headless(args: argparse.Namespace, session: Path, env: dict[str, str], load: str) -> RunResult:
    cmd = [sys.executable, "-m", "troop", *run_args(args, session), "--headless"]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(args.run_timeout)
        except subprocess.TimeoutExpired:
            print(
                f"  the headless run did not finish within {args.run_timeout:.0f} s; "
                "stopped, its rate is over the time it ran",
                flush=True,
            )
            stop_group(proc)
            code = 0
        if code != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"the headless run failed (exit {code}): {' '.join(tail)}")
    tps, sps, wall, _ = session_rate(session)
    return RunResult("headless", load, tps, sps, wall)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it started (its session), politely first."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class BusyLoop:
    """One core kept busy at the lowest priority while it is open."""

    def __enter__(self) -> BusyLoop:
        self.proc = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def tui(args: argparse.Namespace, session: Path, env: dict[str, str], load: str) -> RunResult:
    term_env = {
        **env,
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "COLUMNS": str(COLUMNS),
        "LINES": str(LINES),
    }
    term = Terminal([sys.executable, "-m", "troop", *run_args(args, session)], term_env)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 300
        while not (session.exists() and term.contains(SAMPLING_MARKER)):
            if time.monotonic() > deadline or term.proc.poll() is not None:
                raise RuntimeError("the TUI did not start sampling")
            time.sleep(0.2)
        time.sleep(1.0)  # let the first streams and the first analysis land
        give_up = time.monotonic() + args.run_timeout
        while True:
            finished = session_rate(session)[3]
            if finished:
                break
            if time.monotonic() > give_up or term.proc.poll() is not None:
                print(f"  the TUI run did not finish within {args.run_timeout:.0f} s", flush=True)
                break
            term.expect_after(HELP_MARKER)
            pressed = term.press(b"?")
            shown = term.wait(5.0)
            if shown is not None:
                latencies.append((shown - pressed) * 1000)
            time.sleep(0.2)
            term.press(b"\x1b")  # Escape closes the help
            time.sleep(args.press_every)
        term.press(b"q")
    finally:
        term.close()
    tps, sps, wall, _ = session_rate(session)
    return RunResult("tui", load, tps, sps, wall, latencies)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="arithmetic:8")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--press-every",
        type=float,
        default=2.0,
        help="seconds between help toggles while the TUI samples (each toggle "
        "repaints the whole screen twice: far more than a person watching does)",
    )
    ap.add_argument(
        "--load",
        default="idle,busy",
        help="idle, busy (beside a one-core nice 19 busy loop), or both",
    )
    ap.add_argument(
        "--run-timeout",
        type=float,
        default=900,
        help="seconds one run may take before it is stopped",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="troop-bench-ui-"))
    env = {**os.environ, "TROOP_SESSIONS": str(folder), "TROOP_CONFIG_HOME": str(folder / "config")}
    loads = [x.strip() for x in args.load.split(",") if x.strip()]
    load_before = os.getloadavg()
    results: list[RunResult] = []
    for i in range(args.repeats):
        for load in loads:
            with BusyLoop() if load == "busy" else contextlib.nullcontext():
                for mode in ("headless", "tui"):
                    session = folder / f"{mode}-{load}-{i}.sqlite"
                    run = headless if mode == "headless" else tui
                    r = run(args, session, env, load)
                    results.append(r)
                    extra = ""
                    if r.latencies_ms:
                        extra = (
                            f", latency p50 {pct(r.latencies_ms, 0.5):.0f} ms p95 "
                            f"{pct(r.latencies_ms, 0.95):.0f} ms over "
                            f"{len(r.latencies_ms)} presses"
                        )
                    print(
                        f"repeat {i + 1} {load:4} {mode:8}: {r.tokens_per_s:7.1f} tok/s "
                        f"{r.samples_per_s:6.2f} samples/s wall {r.wall_s:6.1f} s{extra}",
                        flush=True,
                    )
    load_after = os.getloadavg()
    print(
        f"\n{args.problems}, {args.samples} samples/problem, {args.parallel} slots, "
        f"max {args.max_tokens} tokens; {args.repeats} repeats; {os.cpu_count()} cores; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    summary: dict[str, dict[str, float | list[float]]] = {}
    for load in loads:
        mine = [r for r in results if r.load == load]
        heads = [r for r in mine if r.mode == "headless"]
        tuis = [r for r in mine if r.mode == "tui"]
        lat = [ms for r in tuis for ms in r.latencies_ms]
        # Each repeat's two runs are back to back: their ratio cancels slow drifts in load.
        pairs = [t.tokens_per_s / h.tokens_per_s for h, t in zip(heads, tuis, strict=True)]
        h_tok = statistics.median(r.tokens_per_s for r in heads)
        t_tok = statistics.median(r.tokens_per_s for r in tuis)
        goal = 0.95 if load == "idle" else 0.8
        print(f"\n[{load}]{'':16}{'headless':>10}{'TUI':>10}{'TUI/headless':>14}")
        print(f"{'tokens/s (median)':22}{h_tok:10.1f}{t_tok:10.1f}{t_tok / h_tok:14.2f}")
        print(
            f"TUI/headless tokens/s per repeat: {', '.join(f'{x:.2f}' for x in pairs)}; "
            f"median {statistics.median(pairs):.2f} (goal >= {goal})"
        )
        print(
            f"key press -> screen (help dialog), {len(lat)} presses: p50 "
            f"{pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, max "
            f"{max(lat, default=0):.0f} ms (goal p95 < 100 ms)"
        )
        summary[load] = {
            "headless_tok_s": h_tok,
            "tui_tok_s": t_tok,
            "paired_ratios": pairs,
            "latency_p50_ms": pct(lat, 0.5),
            "latency_p95_ms": pct(lat, 0.95),
        }
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": vars(args) | {"json": str(args.json)},
                    "load": [load_before, load_after],
                    "runs": [r.__dict__ for r in results],
                    "summary": summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
