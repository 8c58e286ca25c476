"""Report files are written atomically, and `report` and `export` refuse bad session files in one
line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import troop
from troop.reports import atomic

# --- atomic writes -------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_litter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.html"
    atomic.write_text(path, "old, complete")

    def crash(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(Exception, match="cannot write"):
        atomic.write_text(path, "new" * 100000)
    assert path.read_text() == "old, complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_process_killed_mid_export_leaves_the_old_report(tmp_path: Path) -> None:
    """SIGKILL while the new text is half written (the child stops itself there)."""
    path = tmp_path / "r.md"
    atomic.write_text(path, "old, complete\n")
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from troop.reports import atomic\n"
        "real = os.fdopen\n"
        "class Half:\n"
        "    def __init__(s, f): s.f = f\n"
        "    def __enter__(s): return s\n"
        "    def __exit__(s, *a): s.f.close()\n"
        "    def write(s, data):\n"
        "        s.f.write(data[: len(data) // 2]); s.f.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fdopen = lambda fd, mode: Half(real(fd, mode))\n"
        f"atomic.write_text(Path({str(path)!r}), 'new ' * 10000)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == -9
    assert path.read_text() == "old, complete\n"  # a stray temp file may remain; never r.md


def test_markdown_images_always_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, folder = tmp_path / "r.md", tmp_path / "r_files"
    a1 = {atomic.asset_name("coverage", b"one", "png"): b"one"}
    atomic.write_with_assets(out, f"![c](r_files/{next(iter(a1))})\n", folder, a1)
    a2 = {atomic.asset_name("coverage", b"two", "png"): b"two"}

    def linked() -> list[Path]:
        return [tmp_path / m for m in re.findall(r"\(([^)]+)\)", out.read_text())]

    # The document write crashes after the new images landed: the old document still resolves.
    real = atomic.write_text
    monkeypatch.setattr(atomic, "write_text", lambda *_a: (_ for _ in ()).throw(OSError()))
    with pytest.raises(OSError):
        atomic.write_with_assets(out, f"![c](r_files/{next(iter(a2))})\n", folder, a2)
    assert all(p.read_bytes() == b"one" for p in linked())
    monkeypatch.setattr(atomic, "write_text", real)
    atomic.write_with_assets(out, f"![c](r_files/{next(iter(a2))})\n", folder, a2)
    assert [p.read_bytes() for p in linked()] == [b"two"]
    assert sorted(p.name for p in folder.iterdir()) == list(a2)  # the old image is pruned


# --- command line errors -------------------------------------------------------------------------


def test_report_and_export_refuse_bad_sessions_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.troop"
    junk.write_text("not a database")
    for args in (
        ["report", str(tmp_path / "missing.troop")],
        ["report", str(junk)],
        ["report", str(junk), "--format", "json"],
        ["export", str(junk), "--samples-jsonl", str(tmp_path / "x.jsonl")],
        ["export", str(junk)],
    ):
        out = troop(*args)
        assert out.returncode == 2, out
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "x.jsonl").exists()
