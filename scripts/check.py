"""One command for every check: lint, format, types, layer contracts, then the fast tests.

mypy and import-linter must see the package as it is installed (`troop.engine` is the folder
`engine/`, per `package-dir` in pyproject.toml). Neither follows setuptools' editable finder,
so both run in `build/typecheck/`, a tree of real folders and per-file symlinks rebuilt from
that mapping on every run; messages are mapped back to the files you edit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "build" / "typecheck"
SOURCE_SUFFIXES = (".py", ".pyi", ".typed")


def package_dirs() -> dict[str, Path]:
    """`troop.engine` -> `engine/` and so on, read from pyproject.toml (the one place it lives)."""
    with open(REPO / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: REPO / folder for name, folder in mapping.items()}


def build_tree(packages: dict[str, Path]) -> None:
    """Lay the package out under TREE as it is installed: real folders, each source file a
    symlink to the one in the repository (so a new module needs no reinstall)."""
    shutil.rmtree(TREE, ignore_errors=True)
    for package, source in packages.items():
        target = TREE.joinpath(*package.split("."))
        for folder, dirs, files in os.walk(source):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            out = target / Path(folder).relative_to(source)
            out.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name.endswith(SOURCE_SUFFIXES):
                    (out / name).symlink_to(Path(folder, name))


def _back_to_repo(text: str, packages: dict[str, Path]) -> str:
    """`troop/engine/run.py:3: error` -> `engine/run.py:3: error`."""
    prefixes = [
        (package.replace(".", "/") + "/", source.relative_to(REPO).as_posix() + "/")
        for package, source in sorted(packages.items(), key=lambda kv: -len(kv[0]))
    ]
    lines = []
    for line in text.splitlines():
        for installed, edited in prefixes:
            if line.startswith(installed):
                line = edited + line[len(installed) :]
                break
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def run_in_tree(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a checker in the laid-out tree (laid out afresh for it, since a file may have
    been added or removed since), its output mapped back to repository paths."""
    packages = package_dirs()
    build_tree(packages)
    env = {**os.environ, "PYTHONPATH": str(TREE)}
    out = subprocess.run(args, cwd=TREE, env=env, capture_output=True, text=True)
    return subprocess.CompletedProcess(
        args,
        out.returncode,
        _back_to_repo(out.stdout, packages),
        _back_to_repo(out.stderr, packages),
    )


def mypy() -> subprocess.CompletedProcess[str]:
    """mypy over the whole package (strictness per module comes from pyproject.toml)."""
    config = str(REPO / "pyproject.toml")
    return run_in_tree([sys.executable, "-m", "mypy", "--config-file", config, "-p", "troop"])


def lint_imports() -> subprocess.CompletedProcess[str]:
    """import-linter's layer contracts from pyproject.toml, over the laid-out package."""
    config = str(REPO / "pyproject.toml")
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return run_in_tree([sys.executable, "-c", command, config, "--no-cache"])


def _step(name: str, result: subprocess.CompletedProcess[str]) -> bool:
    ok = result.returncode == 0
    print(f"{'ok  ' if ok else 'FAIL'} {name}", flush=True)
    if not ok:
        sys.stdout.write(result.stdout + result.stderr)
    return ok


def _plain(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True)


STEPS = {
    "ruff": lambda: _plain([sys.executable, "-m", "ruff", "check", "."]),
    "format": lambda: _plain([sys.executable, "-m", "ruff", "format", "--check", "."]),
    "mypy": mypy,
    "imports": lint_imports,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--no-tests", action="store_true", help="the static checks only, not the fast tests"
    )
    parser.add_argument(
        "--only", choices=sorted(STEPS), action="append", help="run only this static check"
    )
    args = parser.parse_args(argv)
    names = args.only or list(STEPS)
    # Every step runs (and reports) even after one fails: one run shows everything to fix.
    ok = all([_step(name, STEPS[name]()) for name in names])
    if not (args.no_tests or args.only):
        # The fast tests: all but the real-model ones (marked `model`), which the full suite runs.
        print("---- fast tests: python -m pytest -m 'not model'", flush=True)
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not model"], cwd=REPO)
        ok = ok and tests.returncode == 0
    print("check passed" if ok else "check FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
