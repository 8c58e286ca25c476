"""Theme files: TOML validated into Textual themes, reloaded when edited, the choice persisted."""

from __future__ import annotations

import json
import os
import threading
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from troop.errors import TroopError

#: The theme used when nothing was chosen, or when the chosen one is missing or broken.
DEFAULT_THEME = "troop-dark"
#: The colours a theme file may set (Textual's base colours); only `primary` is required.
COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_TOP_KEYS = {"name", "dark", "colors", "variables", "luminosity_spread", "text_alpha"}


class ThemeError(TroopError):
    """A theme file that cannot be used: unreadable, not TOML, or with bad fields."""


@dataclass(frozen=True)
class LoadedThemes:
    """Every theme found, and the files that were refused."""

    themes: dict[str, Theme]  # by theme name; a user file overrides a built-in of that name
    sources: dict[str, Path]  # the file each theme came from, by name
    errors: list[ThemeError]  # one per refused file, with the path in its message


def builtin_dir() -> Path:
    """The themes shipped with troop (the repository's `themes/`)."""
    return Path(str(resources.files("troop.themes")))


def config_dir() -> Path:
    """troop's settings folder: $TROOP_CONFIG_HOME, else $XDG_CONFIG_HOME/troop."""
    if env := os.environ.get("TROOP_CONFIG_HOME"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "troop"


def user_dir() -> Path:
    """Where a person's own theme files go; they override built-ins of the same name."""
    return config_dir() / "themes"


def theme_dirs() -> list[Path]:
    return [builtin_dir(), user_dir()]


def load_theme_file(path: Path) -> Theme:
    """Read and validate one theme file; raises ThemeError naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ThemeError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{path}: not valid TOML: {exc}") from None
    return theme_from_dict(data, str(path))


def theme_from_dict(data: dict[str, Any], where: str) -> Theme:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ThemeError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeError(f"{where}: 'name' must be a non-empty string")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError(f"{where}: 'dark' must be true or false")
    colors = data.get("colors", {})
    if not isinstance(colors, dict):
        raise ThemeError(f"{where}: [colors] must be a table")
    bad = sorted(set(colors) - set(COLOR_KEYS))
    if bad:
        raise ThemeError(f"{where}: unknown colour {bad[0]!r} (allowed: {', '.join(COLOR_KEYS)})")
    if "primary" not in colors:
        raise ThemeError(f"{where}: [colors] needs 'primary'")
    for key, value in colors.items():
        _check_color(where, f"colors.{key}", value)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(f"{where}: [variables] must map names to strings")
    extra: dict[str, Any] = {}
    for key in ("luminosity_spread", "text_alpha"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ThemeError(f"{where}: {key!r} must be a number in [0, 1]")
            extra[key] = float(value)
    return Theme(name=name.strip(), dark=dark, variables=dict(variables), **colors, **extra)


def _check_color(where: str, key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ThemeError(f'{where}: {key} must be a colour string, e.g. "#4fa3e0"')
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeError(f"{where}: {key} = {value!r} is not a colour") from None


def load_themes(dirs: Iterable[Path] | None = None) -> LoadedThemes:
    """Every `*.toml` theme in `dirs` (later folders override earlier ones by theme name)."""
    themes: dict[str, Theme] = {}
    sources: dict[str, Path] = {}
    errors: list[ThemeError] = []
    for folder in theme_dirs() if dirs is None else dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeError as exc:
                errors.append(exc)
                continue
            themes[theme.name] = theme
            sources[theme.name] = path
    return LoadedThemes(themes, sources, errors)


# -- the persisted choice -----------------------------------------------------------------


def _settings_path() -> Path:
    return config_dir() / "tui.json"


def saved_theme() -> str | None:
    """The theme a person last picked, if any (an unreadable settings file counts as none)."""
    try:
        value = json.loads(_settings_path().read_text(encoding="utf-8")).get("theme")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def save_theme(name: str) -> None:
    """Remember the theme for the next start; a settings folder we cannot write is not fatal."""
    path = _settings_path()
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(current, dict):
            current = {}
    except (OSError, ValueError):
        current = {}
    current["theme"] = name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


# -- watching -----------------------------------------------------------------------------


class _Handler(FileSystemEventHandler):
    def __init__(self, notify: Callable[[Path], None]) -> None:
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("modified", "created", "moved", "deleted"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = Path(os.fsdecode(raw)) if raw else None
            if path is not None and path.suffix == ".toml":
                self.notify(path)


class ThemeWatcher:
    """Calls `notify(path)` (on watchdog's thread) when a theme file is written or removed.

    Editors save in bursts (truncate, write, rename); the caller should coalesce.
    """

    def __init__(self, dirs: Iterable[Path], notify: Callable[[Path], None]) -> None:
        self.dirs = [d for d in dirs if d.is_dir()]
        self._observer: Any = None
        self._notify = notify
        self._lock = threading.Lock()

    def start(self) -> ThemeWatcher:
        observer = Observer()
        handler = _Handler(self._notify)
        for folder in self.dirs:
            observer.schedule(handler, str(folder), recursive=False)
        observer.daemon = True
        observer.start()
        with self._lock:
            self._observer = observer
        return self

    def stop(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2)
