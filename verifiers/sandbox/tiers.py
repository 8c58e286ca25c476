"""The isolation tiers: whether bwrap works here, the command line a worker runs under, and
one sentence saying what the tier in use isolates."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

#: The tiers a caller may ask for; "auto" is bwrap where it works, else rlimits.
TIERS = ("auto", "bwrap", "rlimits")

_bwrap_probe: dict[bool, str] = {}  # per root-ness: "" when bwrap works, else why not


def bwrap_problem(root: bool) -> str:
    """Why bwrap cannot be used here, or "" when it can: probed once by running it."""
    if root in _bwrap_probe:
        return _bwrap_probe[root]
    true = shutil.which("true") or "/bin/true"
    if shutil.which("bwrap") is None:
        reason = "bwrap is not installed"
    else:
        try:
            done = subprocess.run(
                bwrap_command(root, []) + [true],
                capture_output=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
            err = " ".join(done.stderr.decode(errors="replace").split())
            reason = "" if done.returncode == 0 else (err or f"exit status {done.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
    _bwrap_probe[root] = reason
    return reason


def bwrap_command(root: bool, paths: Sequence[str]) -> list[str]:
    """The bwrap command line a worker runs under (without the program)."""
    if root:
        # No user namespace: it would map only uid 0, and jobs must run as a uid of their own
        # (RLIMIT_NPROC ignores root). The worker keeps root's powers; its jobs drop them.
        args = [
            "bwrap",
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-add",
            "ALL",
        ]
    else:
        args = ["bwrap", "--unshare-all"]
    args += [
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    for path in needed_under("/tmp", paths):  # troop itself may live under /tmp (a CI clone)
        args += ["--ro-bind", path, path]
    for home in _homes():
        # An empty, read-only home; what Python needs from under it is bound back read-only.
        args += ["--tmpfs", home]
        for path in needed_under(home, paths):
            args += ["--ro-bind", path, path]
        args += ["--remount-ro", home]
    return args + ["--chdir", "/", "--"]


def _homes() -> list[str]:
    found = {os.path.realpath(os.path.expanduser("~"))}
    with contextlib.suppress(KeyError):
        found.add(os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir))
    # A home that is an ancestor of another would hide it: keep the outermost only.
    homes = sorted(h for h in found if h != "/" and os.path.isdir(h))
    return [h for h in homes if not any(h != o and h.startswith(o + "/") for o in homes)]


def needed_under(home: str, paths: Sequence[str]) -> list[str]:
    """Directories under `home` the worker's Python needs: its prefixes, sys.path, troop."""
    wanted = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(sys.executable),
        *paths,
    }
    wanted.update(os.path.dirname(os.path.dirname(m.__file__ or "")) for m in _troop_modules())
    resolved: set[str] = set()
    for path in wanted:
        for candidate in (os.path.abspath(path), os.path.realpath(path)):
            if candidate.startswith(home + "/") and os.path.exists(candidate):
                resolved.add(candidate if os.path.isdir(candidate) else os.path.dirname(candidate))
    ordered = sorted(resolved, key=len)
    return [
        p
        for i, p in enumerate(ordered)
        if not any(p.startswith(q + "/") or p == q for q in ordered[:i])
    ]


def _troop_modules() -> list[Any]:
    # The folders holding these packages (and so this sandbox package, under troop.verifiers)
    # are what an editable install of troop needs bound into the worker.
    return [
        m
        for name, m in list(sys.modules.items())
        if name in ("troop", "troop.verifiers", "troop.engine") and m is not None
    ]


def describe(tier: str, reason: str, *, root: bool, ns: bool, ns_error: str) -> str:
    """One sentence for people: what `tier` isolates, and why bwrap is not used if not
    (`reason`: "chosen" when rlimits was asked for). `ns`, `ns_error`: whether the first
    worker gives each job namespaces of its own, and why not."""
    # Plain text: no square brackets, which a console might take for markup.
    return _sentence(tier, reason, root, ns, ns_error).replace("[", "(").replace("]", ")")


def _sentence(tier: str, reason: str, root: bool, ns: bool, ns_error: str) -> str:
    as_uid = "; samples run as a uid of their own, not root" if root else ""
    if tier == "rlimits":
        why = " (as asked):" if reason == "chosen" else f": bwrap not usable ({reason});"
        return (
            f"rlimits only{why} samples run with resource limits but can reach the "
            f"network and the file system{as_uid}"
        )
    base = "bwrap: no network, read-only root, private /tmp and home"
    if ns:
        return f"{base}, own PID namespace per sample{as_uid}"
    return (
        f"{base}; per-sample namespaces unavailable ({ns_error}), so each worker's "
        f"/tmp is wiped between samples{as_uid}"
    )
