"""The setup screen: a new session's settings, prefilled so Enter starts one; recent sessions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Button, DataTable, Footer, Input, Label, Select, Static

from troop.engine.runner import Launch, VerifyOptions
from troop.engine.settings import DEFAULT_PARALLEL, DEFAULT_SAMPLES, RunSettings, sessions_dir
from troop.engine.storage import queries
from troop.errors import TroopError
from troop.tui.screens.ask import HelpScreen, check_temperatures, key_list

#: Problems a first session samples (the first of the built-in arithmetic set): a small
#: budget, so pressing Enter shows coverage growing within a minute or two on a laptop.
FIRST_PROBLEMS = "10"
#: Verifiers offered; command and regex need arguments (use `troop run --verifier ...`).
AUTO, NONE = "auto", "none"


@dataclass(frozen=True)
class Field:
    """One setting of the form."""

    key: str  # widget id suffix and settings name
    label: str  # shown left of the field
    value: str  # prefilled text
    placeholder: str  # shown when empty
    check: Callable[[str], str | None]  # None when valid, else what is wrong (one line)


# -- checks ---------------------------------------------------------------------------------


def _int(low: int | None, noun: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        try:
            value = int(text.strip())
        except ValueError:
            return f"{noun}: a whole number"
        if low is not None and value < low:
            return f"{noun}: at least {low}"
        return None

    return check


def check_model(text: str) -> str | None:
    from troop.engine.models import REGISTRY

    text = text.strip()
    if not text:
        return f"a model name ({', '.join(REGISTRY)}) or a .gguf file"
    if text in REGISTRY:
        return None
    path = Path(text).expanduser()
    if not path.exists():
        return f"not a known model ({', '.join(REGISTRY)}) and no such file"
    if path.is_dir():
        return "a folder, not a .gguf file"
    return None


def check_url(text: str) -> str | None:
    text = text.strip()
    if text and not text.startswith(("http://", "https://")):
        return "empty (local llama.cpp) or an http(s):// API root"
    return None


def check_env(text: str) -> str | None:
    text = text.strip()
    if text and not text.replace("_", "").isalnum():
        return "an environment variable name, e.g. OPENAI_API_KEY"
    return None


def check_problems(text: str) -> str | None:
    from troop.engine.formats.loading import BUILTIN_SETS

    text = text.strip()
    if not text:
        return f"a built-in set ({', '.join(BUILTIN_SETS)}) or a .jsonl file"
    if text in BUILTIN_SETS:
        return None
    if text.startswith("arithmetic:"):
        parts = text.split(":")[1:]
        ok = 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts) and int(parts[0]) > 0
        return None if ok else "arithmetic:COUNT or arithmetic:COUNT:SEED"
    if not Path(text).expanduser().is_file():
        return f"not a built-in set ({', '.join(BUILTIN_SETS)}) and no such file"
    return None


def check_subset(text: str) -> str | None:
    text = text.strip()
    if not text or all(part.strip() for part in text.split(",")):
        return None if not text.isdigit() or int(text) > 0 else "at least 1 problem"
    return "N (the first N problems) or problem ids separated by commas"


def check_extra_buffers(text: str) -> str | None:
    return None if text.strip() in ("auto", "on", "off") else "auto, on or off"


def check_top_p(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return "a number in (0, 1]"
    return None if 0 < value <= 1 else "a number in (0, 1]"


FIELDS = (
    Field("model", "model", "smollm2-135m", "registry name or .gguf path", check_model),
    Field(
        "problems",
        "problem set",
        "arithmetic",
        "arithmetic, humaneval or a .jsonl file",
        check_problems,
    ),
    Field("subset", "subset", FIRST_PROBLEMS, "all; N = first N; or ids a,b,c", check_subset),
    Field(
        "samples", "samples/problem", str(DEFAULT_SAMPLES), "budget", _int(1, "samples per problem")
    ),
    Field(
        "parallel",
        "parallel slots",
        str(DEFAULT_PARALLEL),
        "sequences decoded together",
        _int(1, "parallel slots"),
    ),
    Field("temperatures", "temperature(s)", "0.8", "T or T1,T2 (cycled)", check_temperatures),
    Field("top_p", "top-p", "0.95", "nucleus mass, 1 = off", check_top_p),
    Field("max_tokens", "max tokens", "256", "per sample", _int(1, "max tokens")),
    Field("seed", "seed", "0", "session seed", _int(None, "seed")),
    Field("gpu_layers", "GPU layers", "-1", "-1 = all (GPU builds)", _int(-1, "GPU layers")),
    # llama.cpp's CPU extra buffer types (AMX and other repacking): auto turns them off on a
    # machine where they were seen to fault.
    Field("cpu_extra_buffers", "CPU extra buffers", "auto", "auto, on or off", check_extra_buffers),
    # An OpenAI-compatible server (llama-server, vLLM, SGLang) instead of in-process llama.cpp:
    # the model field then names the served model.
    Field("base_url", "server URL", "", "empty: local; else OpenAI API root", check_url),
    Field("api_key_env", "API key variable", "", "server only: env var with the key", check_env),
)


class SetupScreen(Screen[None]):
    """Settings for a new session on the left, recent sessions on the right."""

    CSS_PATH = "setup.tcss"

    BINDINGS = [
        Binding("ctrl+s", "start", "start", priority=True),
        Binding("ctrl+o", "open_recent", "open selected session", priority=True),
        Binding("f1", "help", "help", key_display="F1"),
        Binding("question_mark", "help", "help", key_display="?", show=False),
    ]

    def __init__(
        self,
        start: Callable[[Launch], None] | None = None,
        open_session: Callable[[Path], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_start = start  # called with the launch (default: push the live screen)
        self.on_open = open_session  # called with a recent session's path
        self.recent: list[queries.RecentSession] = []

    def compose(self) -> ComposeResult:
        yield Static("troop · new sampling session — Enter starts it", id="setup-title")
        with Horizontal(id="setup-main"):
            with VerticalScroll(id="form"):
                for f in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(f.label, classes="field-label")
                        with Vertical(classes="field-input"):
                            yield Input(
                                f.value,
                                placeholder=f.placeholder,
                                id=f"f-{f.key}",
                                compact=True,
                                suggester=self._suggester(f.key),
                            )
                            yield Static("", id=f"e-{f.key}", classes="field-error")
                with Horizontal(classes="field"):
                    yield Label("verifier", classes="field-label")
                    with Vertical(classes="field-input"):
                        yield Select(
                            self._verifiers(),
                            value=AUTO,
                            allow_blank=False,
                            id="f-verifier",
                            compact=True,
                        )
                        yield Static("", id="e-verifier", classes="field-error")
                yield Button("Start sampling", id="start", variant="primary")
            with Vertical(id="recent-box"):
                yield Label("Recent sessions — Enter or Ctrl+O opens one", id="recent-title")
                yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#recent", DataTable)
        table.add_columns("session", "samples", "modified", "model", "problems")
        self._load_recent()
        if self.app.is_headless:  # tests and snapshots: no blinking cursor to catch mid-blink
            for field in self.query(Input):
                field.cursor_blink = False
        self.query_one("#f-model", Input).focus()

    @staticmethod
    def _suggester(key: str) -> SuggestFromList | None:
        if key == "model":
            from troop.engine.models import REGISTRY

            return SuggestFromList(list(REGISTRY))
        if key == "problems":
            from troop.engine.formats.loading import BUILTIN_SETS

            return SuggestFromList(list(BUILTIN_SETS))
        return None

    @staticmethod
    def _verifiers() -> list[tuple[str, str]]:
        from troop.verifiers import registry

        names = sorted(n for n in registry.installed() if n not in ("command", "regex"))
        return (
            [("auto (by problem format)", AUTO)]
            + [(n, n) for n in names]
            + [("none (do not verify)", NONE)]
        )

    def _load_recent(self) -> None:
        self.recent = queries.recent_sessions(sessions_dir())
        table = self.query_one("#recent", DataTable)
        table.clear()
        for r in self.recent:
            when = datetime.fromtimestamp(r.modified).strftime("%m-%d %H:%M")
            samples = "?" if r.samples is None else str(r.samples)
            target = "" if r.budget is None or r.problems is None else f"/{r.budget * r.problems}"
            table.add_row(
                r.path.name, samples + target, when, r.model, r.problem_set, key=str(r.path)
            )
        if not self.recent:
            table.add_row("(none yet)", "", "", "", "")

    # -- checking -----------------------------------------------------------------------

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "")[2:]
        field = next((f for f in FIELDS if f.key == key), None)
        if field is not None:
            self._flag(key, field.check(event.value))

    def _flag(self, key: str, problem: str | None) -> None:
        error = self.query_one(f"#e-{key}", Static)
        error.update(problem or "")
        error.set_class(problem is not None, "-shown")
        self.query_one(f"#f-{key}").set_class(problem is not None, "-invalid")

    def values(self) -> dict[str, str]:
        return {f.key: self.query_one(f"#f-{f.key}", Input).value.strip() for f in FIELDS}

    def launch(self) -> Launch | None:
        """The launch the form describes, or None after flagging every invalid field."""
        values = self.values()
        problems = {f.key: f.check(values[f.key]) for f in FIELDS}
        server = bool(values["base_url"])
        if server:
            # A served model's name is the server's business, not a local file.
            problems["model"] = None if values["model"] else "the served model's name"
        for key, problem in problems.items():
            self._flag(key, problem)
        bad = [k for k, p in problems.items() if p is not None]
        if bad:
            self.query_one(f"#f-{bad[0]}", Input).focus()
            return None
        subset = values["subset"]
        limit = int(subset) if subset.isdigit() else None
        ids = (
            ()
            if limit is not None or not subset
            else tuple(s.strip() for s in subset.split(",") if s.strip())
        )
        settings = RunSettings(
            model=values["model"],
            problems=values["problems"],
            limit=limit,
            problem_ids=ids,
            samples=int(values["samples"]),
            parallel=int(values["parallel"]),
            temperatures=tuple(float(v) for v in values["temperatures"].split(",") if v.strip()),
            top_p=float(values["top_p"]),
            max_tokens=int(values["max_tokens"]),
            seed=int(values["seed"]),
            gpu_layers=int(values["gpu_layers"]),
            backend="openai" if server else None,
            base_url=values["base_url"] or None,
            api_key_env=values["api_key_env"] or None,
            cpu_extra_buffers=values["cpu_extra_buffers"],
        )
        verifier = str(self.query_one("#f-verifier", Select).value)
        launch = Launch(settings, VerifyOptions(verifier=None if verifier == AUTO else verifier))
        return launch if self._deep_check(launch) else None

    def _deep_check(self, launch: Launch) -> bool:
        """What only loading can tell: the model file, the problem set, the subset's ids."""
        from troop.engine.formats.loading import load_problem_set
        from troop.engine.models import resolve_model
        from troop.engine.settings import check_settings

        s = launch.settings
        checks: list[tuple[str, Callable[[], Any]]] = (
            [] if s.backend == "openai" else [("model", lambda: resolve_model(s.model))]
        )
        checks += [
            (
                "subset",
                lambda: load_problem_set(
                    s.problems or "arithmetic",
                    limit=s.limit,
                    problem_ids=list(s.problem_ids) or None,
                ),
            ),
            ("parallel", lambda: check_settings(s)),
        ]
        for key, check in checks:
            try:
                check()
            except TroopError as exc:
                self._flag(
                    "problems" if "problem set" in exc.message and key == "subset" else key,
                    str(exc),
                )
                self.query_one(f"#f-{key}", Input).focus()
                return False
        return True

    # -- actions ------------------------------------------------------------------------

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        launch = self.launch()
        if launch is None:
            self.notify("fix the flagged fields first", severity="error", timeout=3)
            return
        if self.on_start is not None:
            self.on_start(launch)
            return
        from troop.tui.screens.live import LiveScreen

        self.app.push_screen(LiveScreen(launch=launch))

    @on(DataTable.RowSelected, "#recent")
    def _recent_selected(self, event: DataTable.RowSelected) -> None:
        self._open(event.row_key.value)

    def action_open_recent(self) -> None:
        table = self.query_one("#recent", DataTable)
        if not self.recent or not table.row_count:
            self.notify("no recent sessions", severity="warning")
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        self._open(row_key.value)

    def _open(self, key: str | None) -> None:
        if not key or not Path(key).exists():
            return
        if self.on_open is not None:
            self.on_open(Path(key))
            return
        from troop.tui.screens.live import LiveScreen

        self.app.push_screen(LiveScreen(session_path=Path(key)))

    def action_help(self) -> None:
        keys = (
            key_list(self.BINDINGS)
            + [
                ("Enter", "in a field: start sampling; on a recent session: open it"),
                ("Tab / Shift+Tab", "next / previous field"),
            ]
            + key_list(self.app.BINDINGS)
        )
        self.app.push_screen(HelpScreen("Keys of the setup screen", keys))

    def on_screen_resume(self) -> None:
        self._load_recent()
