"""A run whose samples come from an OpenAI-compatible server: which backend a session uses, its
prompts rendered and counted without a local tokenizer, and the checks before resuming."""

# Prompts: `--prompt-format chat` (and `auto`) send each problem's instruction as one user message
# to /chat/completions, so the server applies its own model's chat template; the session stores
# that message as the problem's prompt. `raw` sends the raw prompt (the text a base model
# continues) to /completions with its stop strings. Either way each prompt is counted once, by a
# one-token request whose `usage` says its length, which also proves the server takes the model,
# the API and every prompt before a session file is written.

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from troop import __version__
from troop.engine.backends.openai_backend import UNKNOWN_TOKEN, ServerPrompt, ServerSampler
from troop.engine.backends.openai_client import (
    ServerOptions,
    ServerTarget,
    api_key_from_env,
    check_server,
    count_prompts,
    normalize_base_url,
    served_models,
)
from troop.engine.formats.loading import Problem
from troop.engine.formats.prompts import instruction, raw_prompt
from troop.engine.session_setup import (
    add_on_resume,
    check_resumable,
    create_session,
    new_work,
    problem_record,
    resume_budget,
    stored_config,
)
from troop.engine.settings import DEFAULT_SAMPLES, RunSettings, new_session_path
from troop.engine.storage.config import BackendConfig, ModelIdentity, SessionConfig
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.engine.work import PromptSpec, SamplingParams
from troop.errors import SessionError, TroopError

BACKENDS = ("llamacpp", "openai")


def select_backend(settings: RunSettings) -> str:
    """The backend this run uses: --backend, else the resumed session's, else llamacpp; a
    session is never resumed with another backend than it was made with."""
    if settings.backend not in (None, *BACKENDS):
        raise TroopError(f"--backend must be llamacpp or openai, not {settings.backend!r}")
    stored = None
    if settings.session is not None and settings.session.exists():
        with Session.open(settings.session) as session:
            stored = session.config().backend_name
    chosen = settings.backend or stored or "llamacpp"
    if stored is not None and chosen != stored:
        raise SessionError(
            f"{settings.session}: cannot resume with --backend {chosen}: the session was "
            f"sampled with the {stored} backend",
            hint="drop --backend to resume, or pass a new --session",
        )
    if chosen == "llamacpp" and (settings.base_url or settings.api_key_env):
        raise TroopError("--base-url and --api-key-env go with --backend openai")
    if settings.n_per_request < 1:
        raise TroopError(
            f"--n-per-request must be a positive integer, got {settings.n_per_request}"
        )
    if chosen == "llamacpp" and settings.n_per_request != 1:
        raise TroopError("--n-per-request goes with --backend openai")
    return chosen


class ServerBackend:
    """What a server-backed run needs of its server: problems counted into session rows, their
    prompts served, its sampler and its row in `runs`."""

    def __init__(self, target: ServerTarget, options: ServerOptions, settings: RunSettings) -> None:
        self.target = target
        self.options = options
        self.settings = settings
        # Each served problem's prompt, by problem id; the live sampler reads this same table.
        self.prompts: dict[str, ServerPrompt] = {}

    def rows(self, problems: list[Problem], start: int) -> list[StoredProblem]:
        """Problems as session rows, each prompt counted by the server (`start`: the position
        of the first)."""
        return _rows(self.target, self.options, problems, start, self.settings.parallel)

    def serve(self, rows: Sequence[StoredProblem]) -> list[PromptSpec]:
        """Take stored problems into the prompt table; their work list, in order."""
        self.prompts.update({r.problem_id: ServerPrompt(r.prompt, r.prompt_tokens) for r in rows})
        # No token ids here: placeholders of the counted length keep len(tokens) right.
        return [
            PromptSpec(r.problem_id, (UNKNOWN_TOKEN,) * max(1, r.prompt_tokens), r.stop)
            for r in rows
        ]

    def sampler(self, params: SamplingParams) -> ServerSampler:
        s = self.settings
        return ServerSampler(
            self.target,
            params,
            self.prompts,
            parallel=s.parallel,
            n_per_request=s.n_per_request,
            logprobs=s.logprobs,
            options=self.options,
        )

    def run_settings(self) -> dict[str, Any]:
        """What this run did, for the session's `runs` table (never the API key itself)."""
        s, o = self.settings, self.options
        return {
            "backend": "openai",
            "base_url": self.target.base_url,
            "model": self.target.model,
            "api": self.target.api,
            "parallel": s.parallel,
            "n_per_request": s.n_per_request,
            "logprobs": s.logprobs,
            "api_key_env": s.api_key_env,
            "read_timeout_s": o.read_timeout,
            "retries": o.retries,
            "backoff_s": o.backoff,
            "troop_version": __version__,
            "httpx": httpx.__version__,
        }

    def close(self) -> None:
        """Nothing held between runs: each run opens and closes its own connections."""


@dataclass(frozen=True)
class ServedSession:
    """A server-backed session created or reopened, its server checked; run.py makes it ready
    to sample."""

    session: Session  # the open session file
    config: SessionConfig  # the session's stored configuration
    budget: int  # samples per problem
    created: bool  # True if this run created the session
    server: ServerBackend  # where its samples come from


def open_session(settings: RunSettings) -> ServedSession:
    """Open or create a server-backed session; nothing is sampled yet."""
    if settings.session is not None and settings.session.exists():
        return _resume(settings)
    return _create(settings)


def _render(problem: Problem, api: str) -> tuple[str, tuple[str, ...]]:
    """The prompt text the server receives, and the stop strings that end its samples."""
    if api == "chat":
        return str(instruction(problem)), ()
    text, stops = raw_prompt(problem)
    return str(text), tuple(stops)


def _rows(
    target: ServerTarget, options: ServerOptions, problems: list[Problem], start: int, parallel: int
) -> list[StoredProblem]:
    rendered = [_render(p, target.api) for p in problems]
    counts = count_prompts(target, options, rendered, parallel=parallel)
    return [
        StoredProblem(p.id, start + i, p.format, text, n, stops, problem_record(p))
        for i, (p, (text, stops), n) in enumerate(zip(problems, rendered, counts, strict=True))
    ]


def _target(
    settings: RunSettings, base_url: str, model: str | None, api: str, options: ServerOptions
) -> ServerTarget:
    key = api_key_from_env(settings.api_key_env)
    if model is None:
        names = served_models(base_url, key, options)
        if len(names) != 1:
            raise TroopError(
                f"--backend openai needs --model: the server at {base_url} serves "
                f"{len(names)} models",
                hint=f"it serves: {', '.join(names) or 'none it will list'}",
            )
        model = names[0]
    return ServerTarget(base_url, model, api, key)


def _create(settings: RunSettings) -> ServedSession:
    if settings.base_url is None:
        raise TroopError("--backend openai needs --base-url, e.g. http://127.0.0.1:8080/v1")
    base_url = normalize_base_url(settings.base_url)
    options = ServerOptions.from_env()
    work = new_work(settings)
    api = "completions" if work.prompt_format == "raw" else "chat"
    target = _target(settings, base_url, settings.model, api, options)
    listed = check_server(target, options)
    rows = _rows(target, options, list(work.problems.problems), 0, settings.parallel)
    budget = settings.samples or DEFAULT_SAMPLES
    backend = BackendConfig("openai", base_url, target.model, api)
    # The keys a GGUF-backed session has, where a server can fill them; no file, no hash.
    model = ModelIdentity(name=target.model, server=base_url, owned_by=listed.get("owned_by"))
    config = stored_config(backend, model, work, "chat" if api == "chat" else "raw", None)
    # A served name such as org/model-7B must not become folders in the file name.
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", target.model).strip("-") or "server"
    path = settings.session or new_session_path(slug, work.problems.name)
    session = create_session(path, config, budget, rows)
    return ServedSession(session, config, budget, True, ServerBackend(target, options, settings))


def _resume(settings: RunSettings) -> ServedSession:
    assert settings.session is not None
    session = Session.open(settings.session)
    try:
        config = session.config()
        check_resumable(settings, config)
        backend = config.sampled_by
        if backend.model is None or backend.api is None or backend.base_url is None:
            raise SessionError(f"{settings.session}: the session names no server to resume with")
        if settings.model is not None and settings.model != backend.model:
            raise SessionError(
                f"{settings.session}: cannot resume with another model: the session was "
                f"sampled from {backend.model!r}, not {settings.model!r}",
                hint="resume with the same served model, or pass a new --session",
            )
        # The server may have moved (another host or port); the model name must not change.
        base_url = normalize_base_url(settings.base_url or backend.base_url)
        options = ServerOptions.from_env()
        target = _target(settings, base_url, backend.model, backend.api, options)
        check_server(target, options)
        budget = resume_budget(session, settings)
        add_on_resume(
            session,
            config,
            settings,
            lambda fresh, start: _rows(target, options, fresh, start, settings.parallel),
        )
    except BaseException:
        session.close()
        raise
    return ServedSession(session, config, budget, False, ServerBackend(target, options, settings))
