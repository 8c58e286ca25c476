"""A run from settings to stored samples: open or create the session, load the model, sample."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from troop.engine import local_run, model_facts, policy
from troop.engine.backends import supervisor
from troop.engine.backends.sample_loop import BatchStats
from troop.engine.backends.supervisor import RemoteSampler, WorkerModel
from troop.engine.backends.worker_process import WorkerDied
from troop.engine.control import RunControl
from troop.engine.events import (
    Event,
    PromptEvaluated,
    RunFinished,
    RunObserver,
    RunStarted,
    SampleRecord,
    WorkerRestarted,
)
from troop.engine.formats.loading import Problem, load_problem_set
from troop.engine.scheduler import Scheduler
from troop.engine.session_setup import problem_set_name, sampling_params
from troop.engine.settings import RunSettings, check_settings
from troop.engine.storage.config import SessionConfig
from troop.engine.storage.lock import SessionLock
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.engine.verify import Verification
from troop.engine.work import PromptSpec, SamplingParams
from troop.errors import EngineError, TroopError

if TYPE_CHECKING:
    from troop.engine.openai_run import ServerBackend


@dataclass
class PreparedRun:
    """A session ready to sample: the model loaded, the work list known."""

    session: Session  # the open session file
    model: WorkerModel | None  # the model in its worker process; None when a server samples
    params: SamplingParams  # sampling settings of the session
    seed: int  # session seed
    budget: int  # samples per problem
    prompts: list[PromptSpec]  # the work list, in order
    settings: RunSettings  # what was asked
    created: bool  # True if this run created the session
    plan: model_facts.ContextPlan | None  # the llama.cpp context this run will create (local)
    problems: dict[str, StoredProblem]  # each stored problem, by id (verifiers read its data)
    config: SessionConfig  # the session's stored configuration
    server: ServerBackend | None = None  # samples come from this OpenAI-compatible server
    lock: SessionLock | None = None  # this process's hold on the session (one writer)

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
        if self.server is not None:
            self.server.close()
        self.session.close()
        if self.lock is not None:
            self.lock.release()


@dataclass(frozen=True)
class RunSummary:
    """How a run went."""

    status: str  # completed, cancelled or failed
    session_path: Path  # the session file
    samples: int  # samples this run stored
    completion_tokens: int  # tokens of those samples
    prompt_tokens: int  # prompt tokens evaluated (once per shared prompt)
    wall_s: float  # seconds the run took
    stored: int  # samples in the session after the run
    target: int  # samples the session's budget asks for
    finish_reasons: dict[str, int]  # this run's samples by finish reason


def prepare(settings: RunSettings) -> PreparedRun:
    """Check settings, open or create the session, load the model; nothing is sampled yet."""
    check_settings(settings)
    from troop.engine import openai_run  # httpx is imported only where a server is used

    resuming = settings.session is not None and settings.session.exists()
    # One writer per session: refused at once, before anything is read or loaded.
    lock = SessionLock(settings.session).acquire() if resuming and settings.session else None
    try:
        if openai_run.select_backend(settings) == "openai":
            served = openai_run.open_session(settings)
            lock = lock or SessionLock(served.session.path).acquire()
            return _prepared(
                served.session,
                None,
                served.config,
                served.budget,
                settings,
                created=served.created,
                lock=lock,
                server=served.server,
            )
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    local = local_run.open_session(settings, lock)  # releases the lock if it fails
    return _prepared(
        local.session,
        local.model,
        local.config,
        local.budget,
        settings,
        created=local.created,
        lock=local.lock,
    )


def add_problems(
    prep: PreparedRun, *, more: int = 0, problem_ids: Sequence[str] = ()
) -> list[PromptSpec]:
    """Add problems of the session's own set to an open run (the TUI's "add problems"): the
    next `more` the session lacks, in the set's order, and the named ones. They are stored and
    appended to `prep.prompts`; the returned work is what a live run's
    `RunControl.add_prompts` hands to its scheduler. A prompt longer than the run's context
    was planned for is refused before anything is stored."""
    name = problem_set_name(prep.session, prep.config)
    have = {p.problem_id for p in prep.session.problems()}
    wanted = [i for i in dict.fromkeys(problem_ids) if i not in have]
    fields = prep.config.problem_set.field_map()  # the columns it was first read through
    if more > 0:
        pool = load_problem_set(name, fields=fields).problems
        wanted += [p.id for p in pool if p.id not in have and p.id not in wanted][:more]
    if not wanted:
        return []
    pset = load_problem_set(name, problem_ids=wanted, fields=fields)
    if prep.server is not None:
        # Counted by the server; the live sampler reads the prompt table they join, so they
        # are sampled at once.
        rows = prep.server.rows(list(pset.problems), len(have))
        work = prep.server.serve(rows)
    else:
        rows, work = _render_more(prep, list(pset.problems), len(have))
    prep.session.add_problems(rows)
    prep.prompts.extend(work)
    prep.problems.update({r.problem_id: r for r in rows})
    return work


def _render_more(
    prep: PreparedRun, problems: list[Problem], start: int
) -> tuple[list[StoredProblem], list[PromptSpec]]:
    """Problems added to a live local run, rendered and tokenized; refused if a prompt is
    longer than the run's context was planned for."""
    assert prep.model is not None and prep.plan is not None
    fmt = local_run.stored_format(prep.session, prep.config)
    rows = local_run.render_problems(prep.model, fmt, problems, start)
    work = local_run.tokenized(prep.model, rows)
    longest = max(work, key=lambda w: len(w.tokens))
    need = local_run.plan(
        prep.settings,
        prep.model,
        max(len(w.tokens) for w in [*prep.prompts, *work]),
        prep.params.max_tokens,
        check_gpu=False,
    )
    if need.n_ctx_seq > prep.plan.n_ctx_seq:
        raise TroopError(
            f"problem {longest.problem_id}'s prompt ({len(longest.tokens)} tokens) is longer "
            "than this run's context was planned for",
            hint=f"add it when resuming: troop run --session {prep.session.path} "
            f"--problem {longest.problem_id}",
        )
    return rows, work


def _prepared(
    session: Session,
    model: WorkerModel | None,
    config: SessionConfig,
    budget: int,
    settings: RunSettings,
    *,
    created: bool,
    lock: SessionLock,
    server: ServerBackend | None = None,
) -> PreparedRun:
    """The run made ready from its open session and what samples it: the model in its worker,
    or else the server."""
    plan = None
    try:
        params, seed = sampling_params(session, config)
        stored = session.problems()
        if server is not None:
            work = server.serve(stored)
        else:
            assert model is not None
            work = local_run.tokenized(model, stored)
            longest = max((len(w.tokens) for w in work), default=1)
            plan = local_run.plan(settings, model, longest, params.max_tokens)
    except BaseException:
        if model is not None:
            model.close()
        session.close()
        lock.release()
        raise
    return PreparedRun(
        session,
        model,
        params,
        seed,
        budget,
        work,
        settings,
        created,
        plan,
        {p.problem_id: p for p in stored},
        config,
        server=server,
        lock=lock,
    )


class _Recording:
    """Stores prompt evaluations, then forwards every event to the caller's observer."""

    def __init__(self, session: Session, run_id: int, inner: RunObserver) -> None:
        self.session = session
        self.run_id = run_id
        self.inner = inner

    def on_event(self, event: Event) -> None:
        if isinstance(event, PromptEvaluated):
            self.session.add_prompt_eval(
                self.run_id, event.problem_id, event.n_tokens, event.wall_s
            )
        self.inner.on_event(event)


def execute(
    prep: PreparedRun,
    observer: RunObserver,
    control: RunControl | None = None,
    verification: Verification | None = None,
) -> RunSummary:
    """Sample until the budget is met or the run is cancelled; every sample is stored as it
    finishes, so an interruption loses only the samples still being decoded. With a
    `verification`, each stored sample is judged while sampling goes on.

    A llama.cpp worker that died of the known AMX fault (with CPU extra buffers on "auto") is
    started again without extra buffers and the run goes on: its lost samples are drawn again
    with their own seeds. Any other death of the worker ends the run with a WorkerDied error;
    what was stored stays, and a new run (or `r` in the TUI) starts a new worker."""
    control = control or RunControl(prep.budget)
    control.raise_budget(prep.budget)
    settings = prep.settings
    session = prep.session
    if prep.model is not None and not prep.model.alive:
        prep.model.start()  # the last run's worker died: sample with a new one
    # Checks the policy against the run, records it, and seeds it with the session's samples.
    allocation = policy.begin(
        settings.policy,
        session,
        [p.problem_id for p in prep.prompts],
        prep.problems,
        verification,
    )
    run_id = session.begin_run(_run_settings(prep))
    before = session.sample_count()
    recording = _Recording(session, run_id, observer)
    reasons: dict[str, int] = {}

    def store(record: SampleRecord) -> SampleRecord:
        stored = SampleRecord(**{**record.__dict__, "run_id": run_id})
        session.add_sample(stored)
        if allocation is not None:
            allocation.observe(stored)  # until-consistent votes on its answer
        reasons[stored.finish_reason] = reasons.get(stored.finish_reason, 0) + 1
        if verification is not None:
            future = verification.submit(
                prep.problems[stored.problem_id], stored.sample_index, stored.text
            )
            if allocation is not None:
                # Runs in a verification thread; until-solved stops the problem on a pass.
                future.add_done_callback(allocation.on_verdict(stored.problem_id))
        return stored

    def scheduler() -> Scheduler:
        return Scheduler(
            prep.prompts, session.done(), control, prep.params, prep.seed, policy=allocation
        )

    t0 = time.perf_counter()
    first = scheduler()
    observer.on_event(
        RunStarted(run_id, first.remaining(), before, control.budget, len(prep.prompts))
    )
    status, error = "completed", None
    stats = BatchStats()
    try:
        if prep.server is not None:
            prep.server.sampler(prep.params).run(first, store, recording, control, stats)
        else:
            _sample_in_worker(prep, run_id, first, scheduler, store, recording, control, stats)
        if control.cancelled:
            status = "cancelled"
        elif verification is not None:
            verification.wait()
    except KeyboardInterrupt:
        status = "cancelled"
    except TroopError as exc:
        status, error = "failed", str(exc)
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise EngineError(f"sampling failed: {error}") from exc
    finally:
        session.finish_run(run_id, status, error)
        wall = time.perf_counter() - t0
        samples = sum(reasons.values())
        observer.on_event(
            RunFinished(
                status,
                samples,
                stats.completion_tokens,
                stats.prompt_tokens,
                wall,
                error,
            )
        )
    return RunSummary(
        status=status,
        session_path=session.path,
        samples=sum(reasons.values()),
        completion_tokens=stats.completion_tokens,
        prompt_tokens=stats.prompt_tokens,
        wall_s=wall,
        stored=session.sample_count(),
        target=control.budget * len(prep.prompts),
        finish_reasons=reasons,
    )


def _run_settings(prep: PreparedRun) -> dict[str, Any]:
    """What the session records about how a run samples (JSON, in its `runs` table)."""
    if prep.server is not None:
        return {**prep.server.run_settings(), "policy": prep.settings.policy.describe()}
    assert prep.model is not None and prep.plan is not None
    return local_run.run_settings(prep.settings, prep.model, prep.plan)


def _sample_in_worker(
    prep: PreparedRun,
    run_id: int,
    first: Scheduler,
    scheduler: Callable[[], Scheduler],
    store: Callable[[SampleRecord], SampleRecord],
    observer: RunObserver,
    control: RunControl,
    stats: BatchStats,
) -> None:
    """Sample in the llama.cpp worker; restart it once without CPU extra buffers if it dies of
    the AMX fault, drawing the lost samples again (same seeds) from a fresh work list."""
    model, plan = prep.model, prep.plan
    assert model is not None and plan is not None
    work = first
    parallel = plan.n_seq - 1
    lookahead = max(2, parallel // 4) if prep.settings.policy.adaptive else parallel
    while True:
        device = local_run.sampler_device(prep.settings, model)
        sampler = RemoteSampler(
            model,
            plan,
            prep.params,
            logprobs=prep.settings.logprobs,
            lookahead=lookahead,
            sampler_device=device.where,
        )
        try:
            sampler.run(work, store, observer, control, stats)
            if sampler.used_device is not None and sampler.used_device[0] != device.where:
                # The backend could not run a sampler of the chain: recorded as it ran.
                where, note = sampler.used_device
                prep.session.set_run_settings(
                    run_id,
                    {**_run_settings(prep), "sampler_device": where, "sampler_device_reason": note},
                )
            return
        except WorkerDied as exc:
            death = model.worker.death if model.worker is not None else None
            if not (
                prep.settings.cpu_extra_buffers == "auto"
                and supervisor.is_extra_buffers_fault(death, model.system_info, model.extra_buffers)
            ):
                raise
            findings = supervisor.remember_extra_buffers_fault(str(exc))
            observer.on_event(
                WorkerRestarted(
                    f"llama.cpp's AMX kernels faulted on this CPU (SIGILL); sampling goes on with "
                    f"CPU extra buffers off, remembered for this machine in {findings}",
                    exc.lost,
                )
            )
            model.extra_buffers = False
            model.start()
            prep.session.set_run_settings(run_id, _run_settings(prep))
            work = scheduler()
