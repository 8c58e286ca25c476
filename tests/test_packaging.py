"""Packaging: one `troop` namespace, installable as a wheel, and an engine free of Textual."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def fresh(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or dict(os.environ),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_engine_and_verifiers_never_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys, pkgutil, importlib\n"
        "import troop.engine, troop.verifiers\n"
        "for pkg in (troop.engine, troop.verifiers):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'textual'))\n"
    )
    assert fresh(code, tmp_path) == "[]"


def test_installed_names_live_under_troop_only(tmp_path: Path) -> None:
    # Run outside the repository, so the folders engine/ and tui/ are not on sys.path.
    code = (
        "import importlib.util as u\n"
        "print([n for n in ('engine', 'tui', 'verifiers') if u.find_spec(n) is not None])\n"
        "import troop.engine.run, troop.cli\n"
        "print(troop.engine.run.__file__)\n"
    )
    lines = fresh(code, tmp_path).splitlines()
    assert lines[0] == "[]"
    assert Path(lines[1]).resolve() == (REPO / "engine" / "run.py").resolve()  # editable


@pytest.mark.timeout(600)
def test_wheel_installs_and_imports(tmp_path: Path) -> None:
    # Built from a copy of the sources: setuptools never empties an existing build/ folder, so a
    # module moved since the last build would still be in a wheel built in place.
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns("build", "dist", ".git", "*.egg-info", "__pycache__", ".*"),
    )
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("troop-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"troop"}
    # Every sub-package and the screens' style sheets travel in the wheel.
    for name in (
        "troop/py.typed",
        "troop/errors.py",
        "troop/engine/backends/sampler.py",
        "troop/engine/storage/session.py",
        "troop/engine/analytics/analysis.py",
        "troop/engine/formats/humaneval.py",
        "troop/verifiers/sandbox/worker.py",
        "troop/tui/app.tcss",
        "troop/tui/screens/live.tcss",
        "troop/tui/widgets/plot.py",
    ):
        assert name in names, name
    target = tmp_path / "site"
    inst = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    code = "import troop.engine.backends.sampler as s, troop.cli; print(s.__file__)"
    where = Path(fresh(code, tmp_path, env))
    assert target in where.parents
