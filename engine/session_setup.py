"""The steps of making and reopening a session that are the same whichever backend samples it:
the stored configuration, the checks before resuming, problems added on resume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from troop import __version__
from troop.engine import policy
from troop.engine.formats.loading import Problem, ProblemSet, load_problem_set
from troop.engine.settings import DEFAULT_PROBLEMS, SAMPLING_DEFAULTS, RunSettings
from troop.engine.storage.session import Session, StoredProblem
from troop.engine.work import SamplingParams
from troop.errors import SessionError

#: A backend's way to turn problems into session rows: (problems, position of the first).
Render = Callable[[list[Problem], int], list[StoredProblem]]


def sampling_config(settings: RunSettings) -> dict[str, Any]:
    """The sampling fields the user set explicitly."""
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
    """A problem as the session stores it and verifiers read it."""
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


def new_work(settings: RunSettings) -> tuple[dict[str, Any], ProblemSet]:
    """A new session's sampling settings (defaults filled in) and its problems, which the
    budget policy is checked against before an empty session can be left behind."""
    sampling = {**SAMPLING_DEFAULTS, **sampling_config(settings)}
    pset = load_problem_set(
        settings.problems or DEFAULT_PROBLEMS,
        limit=settings.limit,
        problem_ids=list(settings.problem_ids) or None,
        fields=dict(settings.fields) or None,
    )
    policy.check_formats(settings.policy, [pset.format])
    return sampling, pset


def stored_config(
    identity: dict[str, Any],
    sampling: dict[str, Any],
    pset: ProblemSet,
    kind: str,
    template: str | None,
) -> dict[str, Any]:
    """A new session's configuration: what samples it (`identity`: its model, its backend),
    then the prompt format, problem set, sampling settings and seed."""
    return {
        **identity,
        "prompt_format": {
            "kind": kind,
            "template": template,
            "requested": sampling["prompt_format"],
        },
        "problem_set": {
            "name": pset.name,
            "format": pset.format,
            "source": pset.source,
            **({"fields": dict(pset.fields)} if pset.fields else {}),
        },
        "sampling": {
            k: sampling[k] for k in ("temperatures", "top_k", "top_p", "min_p", "max_tokens")
        },
        "seed": sampling["seed"],
    }


def create_session(
    path: Path, config: dict[str, Any], budget: int, rows: list[StoredProblem]
) -> Session:
    """Write a new session file with its problems; no file is left if they cannot be stored."""
    session = Session.create(
        path, {"config": config, "budget": budget, "troop_version": __version__}
    )
    try:
        session.add_problems(rows)
    except BaseException:
        session.close()
        path.unlink(missing_ok=True)
        raise
    return session


def check_resumable(settings: RunSettings, config: dict[str, Any]) -> None:
    """Refuse to resume a session with sampling settings other than those it was made with."""
    stored = {
        **config["sampling"],
        "seed": config["seed"],
        "prompt_format": config["prompt_format"]["requested"],
    }
    clashes = [
        f"{k} {stored[k]!r} in the session, {v!r} asked"
        for k, v in sampling_config(settings).items()
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
    session: Session, config: dict[str, Any], settings: RunSettings, render: Render
) -> None:
    """Resuming with --problems/--limit/--problem may add problems (rendered by the backend's
    `render`); changed ones are refused."""
    fields = config["problem_set"].get("fields")
    if settings.fields and dict(settings.fields) != (fields or {}):

        def shown(pairs: dict[str, str]) -> str:
            return ",".join(f"{k}={v}" for k, v in pairs.items()) or "none"

        raise SessionError(
            f"{session.path}: the session reads its problems through "
            f"--fields {shown(fields or {})}, not {shown(dict(settings.fields))}"
        )
    if settings.problems is None and settings.limit is None and not settings.problem_ids:
        return
    name = config["problem_set"]["name"]
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


def sampling_params(config: dict[str, Any]) -> SamplingParams:
    """The sampling settings a session was made with."""
    s = config["sampling"]
    return SamplingParams(
        temperatures=tuple(s["temperatures"]),
        top_k=s["top_k"],
        top_p=s["top_p"],
        min_p=s["min_p"],
        max_tokens=s["max_tokens"],
    )
