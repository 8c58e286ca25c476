"""Live reload: a changed problem file or user verifier re-judges the samples it affects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from troop.engine.formats.loading import load_problem_set
from troop.engine.storage.session import Session, tests_digest
from troop.engine.verify import Verification, pending
from troop.errors import TroopError


def refresh_problems(session: Session, spec: str) -> tuple[list[str], list[str]]:
    """Take new tests and answers from the problem file into the session.

    Returns (updated ids, refused ids): a problem whose prompt changed is refused, since its
    samples were drawn for the old prompt.
    """
    from troop.engine.session_setup import problem_record

    # Read through the same --fields mapping the session's problems were first read through.
    fields = session.config().problem_set.field_map()
    fresh = {p.id: p for p in load_problem_set(spec, fields=fields).problems}
    updated, refused = [], []
    for stored in session.problems():
        new = fresh.get(stored.problem_id)
        if new is None:
            continue
        data = problem_record(new)
        if tests_digest(data) == tests_digest(stored.data):
            continue
        if new.prompt != stored.record.prompt:
            refused.append(stored.problem_id)
            continue
        session.update_problem_data(stored.problem_id, data)
        updated.append(stored.problem_id)
    return updated, refused


class _Debounced(FileSystemEventHandler):
    """Calls back once per burst of events on the watched files (editors write several)."""

    def __init__(self, paths: set[Path], callback: Callable[[Path], None]) -> None:
        self.paths = paths
        self.callback = callback
        self._timers: dict[Path, threading.Timer] = {}
        self._lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Reading a file (ours, when it reloads) is not a change: only writes count.
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = Path(str(raw)).resolve()
            if path in self.paths:
                with self._lock:
                    if (old := self._timers.get(path)) is not None:
                        old.cancel()
                    timer = threading.Timer(0.2, self.callback, (path,))
                    timer.daemon = True
                    self._timers[path] = timer
                    timer.start()

    def cancel(self) -> None:
        """Drop the reloads still waiting: the session they would touch is closing."""
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()


class LiveReload:
    """Watches a session's problem file and a user verifier's program; on a change, updates
    the session and re-verifies the affected samples through `verification`.

    `rebuild` makes a fresh verifier (for a changed program file); if it fails, the previous
    verifier keeps working and `notify` says why.
    """

    def __init__(
        self,
        session: Session,
        verification: Verification,
        *,
        problem_file: Path | None,
        verifier_file: Path | None,
        rebuild: Callable[[], Any] | None,
        notify: Callable[[str], None],
    ) -> None:
        self.session = session
        self.verification = verification
        self.problem_file = problem_file.resolve() if problem_file else None
        self.verifier_file = verifier_file.resolve() if verifier_file else None
        self.rebuild = rebuild
        self.notify = notify
        self.reloads = 0  # changes handled, for tests and status lines
        watched = {p for p in (self.problem_file, self.verifier_file) if p is not None}
        self._observer = Observer()
        self._handler = _Debounced(watched, self._changed)
        for folder in {p.parent for p in watched}:
            self._observer.schedule(self._handler, str(folder), recursive=False)
        self._lock = threading.Lock()

    def start(self) -> LiveReload:
        self._observer.start()
        return self

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
        self._handler.cancel()

    def _changed(self, path: Path) -> None:
        with self._lock:
            try:
                if path == self.verifier_file and self.rebuild is not None:
                    self._reload_verifier()
                if path == self.problem_file:
                    self._reload_problems()
            except TroopError as exc:
                self.notify(f"reload of {path} failed, keeping the previous version: {exc}")
            self.reloads += 1

    def _reload_verifier(self) -> None:
        assert self.rebuild is not None
        verifier = self.rebuild()
        old = self.verification.verifier
        if verifier.version == old.version:
            return
        self.verification.verifier = verifier
        current = self.session.meta("verifier")
        if current is None or current["name"] == verifier.name:
            self.session.set_meta("verifier", {"name": verifier.name, "version": verifier.version})
        todo = pending(self.session, verifier)
        self.notify(
            f"verifier {verifier.name} changed ({old.version} -> {verifier.version}): "
            f"re-judging {len(todo)} samples"
        )
        for sample in todo:
            self.verification.submit(sample.problem, sample.sample_index, sample.text)

    def _reload_problems(self) -> None:
        assert self.problem_file is not None
        updated, refused = refresh_problems(self.session, str(self.problem_file))
        if refused:
            self.notify(
                f"{len(refused)} problems changed their prompt and were left as they "
                f"were (their samples answer the old prompt): {', '.join(refused[:5])}"
            )
        if not updated:
            return
        changed = set(updated)
        todo = [
            t
            for t in pending(self.session, self.verification.verifier)
            if t.problem.problem_id in changed
        ]
        self.notify(f"tests changed for {len(updated)} problems: re-judging {len(todo)} samples")
        for sample in todo:
            self.verification.submit(sample.problem, sample.sample_index, sample.text)
