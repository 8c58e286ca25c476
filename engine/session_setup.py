"""The steps of making and reopening a session that are the same whichever backend samples it:
the stored configuration, the checks before resuming, problems added on resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from troop import __version__
from troop.engine import policy
from troop.engine.formats.loading import Problem, ProblemSet, load_problem_set
from troop.engine.settings import DEFAULT_PROBLEMS, DEFAULT_PROMPT_FORMAT, DEFAULT_SEED, RunSettings
from troop.engine.storage.config import (
    BackendConfig,
    ModelIdentity,
    ProblemSetConfig,
    PromptFormatSetting,
    SamplingConfig,
    SessionConfig,
)
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.engine.work import SamplingParams
from troop.errors import SessionError

#: A backend's way to turn problems into session rows: (problems, position of the first).
Render = Callable[[list[Problem], int], list[StoredProblem]]


@dataclass(frozen=True)
class NewWork:
    """A new session's work before a backend renders it: its settings, defaults filled in."""

    params: SamplingParams  # the sampling settings, each as given or its default
    seed: int  # the session seed
    prompt_format: str  # the prompt format asked for: auto, chat or raw
    problems: ProblemSet  # the problems, loaded and selected


def given_sampling(settings: RunSettings) -> dict[str, object]:
    """The sampling fields the user set explicitly, as the session stores them (the fields
    that define a session: resuming with other values is refused)."""
    given = {
        "temperatures": list(settings.temperatures) if settings.temperatures else None,
        "top_k": settings.top_k,
        "top_p": settings.top_p,
        "min_p": settings.min_p,
        "max_tokens": settings.max_tokens,
        "seed": settings.seed,
        "prompt_format": settings.prompt_format,
    }
    return {k: v for k, v in given.items() if v is not None}


def problem_record(p: Problem) -> dict[str, Any]:
    """A problem as the session stores it and verifiers read it (their plain mapping; the
    engine reads it back through StoredProblem.record)."""
    return {
        "id": p.id,
        "format": p.format,
        "prompt": p.prompt,
        "answer": p.answer,
        "entry_point": p.entry_point,
        "test": p.test,
        "test_list": list(p.test_list),
        "reference": p.reference,
        "source": p.source,
    }


def new_work(settings: RunSettings) -> NewWork:
    """A new session's sampling settings and its problems, which the budget policy is checked
    against before an empty session can be left behind."""
    # The defaults are SamplingParams' own, so a session and a bare sampler agree.
    default = SamplingParams()
    params = SamplingParams(
        temperatures=settings.temperatures or default.temperatures,
        top_k=default.top_k if settings.top_k is None else settings.top_k,
        top_p=default.top_p if settings.top_p is None else settings.top_p,
        min_p=default.min_p if settings.min_p is None else settings.min_p,
        max_tokens=default.max_tokens if settings.max_tokens is None else settings.max_tokens,
    )
    pset = load_problem_set(
        settings.problems or DEFAULT_PROBLEMS,
        limit=settings.limit,
        problem_ids=list(settings.problem_ids) or None,
        fields=dict(settings.fields) or None,
    )
    policy.check_formats(settings.policy, [pset.format])
    seed = DEFAULT_SEED if settings.seed is None else settings.seed
    return NewWork(params, seed, settings.prompt_format or DEFAULT_PROMPT_FORMAT, pset)


def stored_config(
    backend: BackendConfig | None,
    model: ModelIdentity,
    work: NewWork,
    kind: str,
    template: str | None,
) -> SessionConfig:
    """A new session's configuration: what samples it (its backend, where not llama.cpp, and
    its model), then the prompt format, problem set, sampling settings and seed."""
    pset, params = work.problems, work.params
    return SessionConfig(
        backend=backend,
        model=model,
        prompt_format=PromptFormatSetting(kind, template, work.prompt_format),
        problem_set=ProblemSetConfig(pset.name, pset.format, pset.source, pset.fields or None),
        sampling=SamplingConfig(
            params.temperatures, params.top_k, params.top_p, params.min_p, params.max_tokens
        ),
        seed=work.seed,
    )


def create_session(
    path: Path, config: SessionConfig, budget: int, rows: list[StoredProblem]
) -> Session:
    """Write a new session file with its problems; no file is left if they cannot be stored."""
    session = Session.create(
        path, {"config": config.to_json(), "budget": budget, "troop_version": __version__}
    )
    try:
        session.add_problems(rows)
    except BaseException:
        session.close()
        path.unlink(missing_ok=True)
        raise
    return session


def check_resumable(settings: RunSettings, config: SessionConfig) -> None:
    """Refuse to resume a session with sampling settings other than those it was made with."""
    # Compared as the session stores them, so a clash reads as the flags were written.
    stored = {
        **config.sampling.to_json(),
        "seed": config.seed,
        "prompt_format": config.prompt_format.requested,
    }
    clashes = [
        f"{k} {stored.get(k)!r} in the session, {v!r} asked"
        for k, v in given_sampling(settings).items()
        if stored.get(k) != v
    ]
    if clashes:
        raise SessionError(
            f"{settings.session}: cannot resume with other sampling settings: "
            + "; ".join(clashes),
            hint="drop those flags to resume, or pass a new --session to start afresh",
        )


def resume_budget(session: Session, settings: RunSettings) -> int:
    """The resumed session's budget: a larger --samples raises it (and is stored), a smaller
    one never lowers it."""
    budget: int = max(session.meta("budget"), settings.samples or 0)
    if budget != session.meta("budget"):
        session.set_meta("budget", budget)
    return budget


def add_on_resume(
    session: Session, config: SessionConfig, settings: RunSettings, render: Render
) -> None:
    """Resuming with --problems/--limit/--problem may add problems (rendered by the backend's
    `render`); changed ones are refused."""
    fields = config.problem_set.field_map()
    if settings.fields and dict(settings.fields) != (fields or {}):

        def shown(pairs: dict[str, str]) -> str:
            return ",".join(f"{k}={v}" for k, v in pairs.items()) or "none"

        raise SessionError(
            f"{session.path}: the session reads its problems through "
            f"--fields {shown(fields or {})}, not {shown(dict(settings.fields))}"
        )
    if settings.problems is None and settings.limit is None and not settings.problem_ids:
        return
    name = problem_set_name(session, config)
    if settings.problems is not None and settings.problems != name:
        raise SessionError(
            f"{session.path}: the session samples problem set {name!r}, not {settings.problems!r}"
        )
    pset = load_problem_set(
        name,
        limit=settings.limit,
        problem_ids=list(settings.problem_ids) or None,
        fields=fields,
    )
    have = {p.problem_id: p for p in session.problems()}
    fresh = []
    for p in pset.problems:
        old = have.get(p.id)
        if old is None:
            fresh.append(p)
        elif old.data != problem_record(p):
            raise SessionError(
                f"{session.path}: problem {p.id} changed since it was sampled",
                hint="start a new session for the changed problem set",
            )
    if fresh:
        session.add_problems(render(fresh, len(have)))


def problem_set_name(session: Session, config: SessionConfig) -> str:
    """The name the session's problem set is loaded by."""
    if config.problem_set.name is None:
        raise _incomplete(session, "its problem set")
    return config.problem_set.name


def sampling_params(session: Session, config: SessionConfig) -> tuple[SamplingParams, int]:
    """The sampling settings and seed a session was made with."""
    s = config.sampling
    if (
        s.temperatures is None
        or s.top_k is None
        or s.top_p is None
        or s.min_p is None
        or s.max_tokens is None
        or config.seed is None
    ):
        raise _incomplete(session, "its sampling settings")
    return SamplingParams(s.temperatures, s.top_k, s.top_p, s.min_p, s.max_tokens), config.seed


def _incomplete(session: Session, what: str) -> SessionError:
    return SessionError(
        f"{session.path}: the session's configuration lacks {what}; it cannot be sampled",
        hint="pass a new --session to start afresh",
    )
