"""A run from settings to stored samples: open or create the session, load the model, sample."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from troop import __version__
from troop.engine import model_facts, policy
from troop.engine.backends import supervisor
from troop.engine.backends.sample_loop import BatchStats
from troop.engine.backends.supervisor import RemoteSampler, WorkerDied, WorkerModel, worker_log_path
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
from troop.engine.formats import prompts
from troop.engine.formats.loading import Problem, load_problem_set
from troop.engine.models import file_sha256, resolve_model
from troop.engine.scheduler import Scheduler
from troop.engine.session_setup import (
    add_on_resume,
    check_resumable,
    create_session,
    new_work,
    problem_record,
    resume_budget,
    sampling_params,
    stored_config,
)
from troop.engine.settings import (
    DEFAULT_SAMPLES,
    RunSettings,
    check_settings,
    kv_unified,
    new_session_path,
)
from troop.engine.storage.lock import SessionLock
from troop.engine.storage.session import Session, StoredProblem
from troop.engine.verify import Verification
from troop.engine.work import PromptSpec, SamplingParams
from troop.errors import EngineError, SessionError, TroopError

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
    problem_data: dict[str, dict[str, Any]]  # each problem as loaded, by id (for verifiers)
    config: dict[str, Any] = field(default_factory=dict)  # the session's stored configuration
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


def _model_identity(model: WorkerModel, name: str, sha256: str) -> dict[str, Any]:
    shape = model.shape()
    meta = model.metadata()
    return {
        "name": name,
        "path": str(model.path),
        "file_bytes": model.path.stat().st_size,
        "sha256": sha256,
        "architecture": meta.get("general.architecture"),
        "general_name": meta.get("general.name"),
        "file_type": meta.get("general.file_type"),
        "description": shape.description,
        **{k: v for k, v in asdict(shape).items() if k != "description"},
    }


def _stored_format(config: dict[str, Any]) -> prompts.PromptFormat:
    """The prompt format a session was made with."""
    return prompts.PromptFormat(
        config["prompt_format"]["kind"], config["prompt_format"]["template"]
    )


def _render_problems(
    model: WorkerModel, fmt: prompts.PromptFormat, problems: list[Problem], start: int
) -> list[StoredProblem]:
    out = []
    for i, p in enumerate(problems):
        text, tokens, stops = prompts.render(model, fmt, p)
        out.append(
            StoredProblem(p.id, start + i, p.format, text, len(tokens), stops, problem_record(p))
        )
    return out


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
        if lock is not None:
            return _resume(settings, lock)
        return _create(settings)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _load(ref_path: Path, settings: RunSettings, session_path: Path) -> WorkerModel:
    """The model loaded in a new worker process, logging beside the session. With CPU extra
    buffers in "auto", a worker that dies of the known AMX fault at load is started again
    without them."""
    extra = supervisor.choose_extra_buffers(settings.cpu_extra_buffers)
    log = worker_log_path(session_path)
    try:
        return WorkerModel(
            ref_path, gpu_layers=settings.gpu_layers, extra_buffers=extra, log_path=log
        )
    except WorkerDied as exc:
        if not (settings.cpu_extra_buffers == "auto" and extra and exc.signal_name == "SIGILL"):
            raise
        supervisor.remember_extra_buffers_fault(str(exc))
        return WorkerModel(
            ref_path, gpu_layers=settings.gpu_layers, extra_buffers=False, log_path=log
        )


def _create(settings: RunSettings) -> PreparedRun:
    ref = resolve_model(settings.model)
    sampling, pset = new_work(settings)
    path = settings.session or new_session_path(ref.name, pset.name)
    if path.exists():
        raise SessionError(f"{path}: already exists")
    lock = SessionLock(path).acquire()
    try:
        model = _load(ref.path, settings, path)
    except BaseException:
        lock.release()
        raise
    try:
        fmt = prompts.choose_format(model, ref.instruct, sampling["prompt_format"])
        rows = _render_problems(model, fmt, list(pset.problems), 0)
        # Check slots and sizes now: a bad --parallel must not leave an empty session behind.
        _plan(settings, model, max(r.prompt_tokens for r in rows), sampling["max_tokens"])
        budget = settings.samples or DEFAULT_SAMPLES
        identity = {"model": _model_identity(model, ref.name, file_sha256(ref.path))}
        config = stored_config(identity, sampling, pset, fmt.kind, fmt.template)
        session = create_session(path, config, budget, rows)
    except BaseException:
        model.close()
        lock.release()
        # Nothing was created: leave no log or lock file behind either.
        for leftover in (worker_log_path(path), lock.path):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    return _prepared(session, model, config, budget, settings, created=True, lock=lock)


def _plan(
    settings: RunSettings,
    model: WorkerModel,
    max_prompt_tokens: int,
    max_tokens: int,
    *,
    check_gpu: bool = True,
) -> model_facts.ContextPlan:
    shape = model.shape()
    # With layers on a GPU the KV cache lives in its memory: checked against what is free
    # there (measured by the worker once the model's weights were loaded) instead of RAM.
    on_gpu = model.gpu_offload and settings.gpu_layers != 0
    # A live run's own context already holds GPU memory: only a new context is checked.
    free = model.facts.get("gpu_free") if on_gpu and check_gpu else None
    gpu = None
    if free is not None:
        share = 1.0 if settings.gpu_layers < 0 else min(1.0, settings.gpu_layers / shape.n_layer)
        gpu = model_facts.GpuBudget(free, share, shape.n_vocab)
    return model_facts.plan_context(
        parallel=settings.parallel,
        max_prompt_tokens=max_prompt_tokens,
        max_tokens=max_tokens,
        kv_unified=kv_unified(settings),
        n_threads=settings.threads or os.cpu_count() or 1,
        n_ctx_train=shape.n_ctx_train,
        kv_bytes_per_token=shape.kv_bytes_per_token,
        memory_available=None if on_gpu else model_facts.memory_available(),
        gpu=gpu,
    )


def _resume(settings: RunSettings, lock: SessionLock) -> PreparedRun:
    assert settings.session is not None
    try:
        session = Session.open(settings.session)
    except BaseException:
        lock.release()
        raise
    try:
        config: dict[str, Any] = session.meta("config")
        check_resumable(settings, config)
        want = config["model"]
        if settings.model is not None:
            ref_path = resolve_model(settings.model).path
        else:
            ref_path = Path(want["path"])
            if not ref_path.exists():
                raise SessionError(
                    f"{settings.session}: the session's model {ref_path} is gone",
                    hint="pass --model with the same GGUF file",
                )
        if file_sha256(ref_path) != want["sha256"]:
            raise SessionError(
                f"{settings.session}: cannot resume with another model: {ref_path} is not "
                f"the file the session was sampled with (sha256 {want['sha256'][:12]}…)",
                hint="resume with the same model, or pass a new --session",
            )
        model = _load(ref_path, settings, settings.session)
    except BaseException:
        session.close()
        lock.release()
        raise
    try:
        budget = resume_budget(session, settings)
        add_on_resume(
            session,
            config,
            settings,
            lambda fresh, start: _render_problems(model, _stored_format(config), fresh, start),
        )
    except BaseException:
        model.close()
        session.close()
        lock.release()
        raise
    return _prepared(session, model, config, budget, settings, created=False, lock=lock)


def add_problems(
    prep: PreparedRun, *, more: int = 0, problem_ids: Sequence[str] = ()
) -> list[PromptSpec]:
    """Add problems of the session's own set to an open run (the TUI's "add problems"): the
    next `more` the session lacks, in the set's order, and the named ones. They are stored and
    appended to `prep.prompts`; the returned work is what a live run's
    `RunControl.add_prompts` hands to its scheduler. A prompt longer than the run's context
    was planned for is refused before anything is stored."""
    name = prep.config["problem_set"]["name"]
    have = {p.problem_id for p in prep.session.problems()}
    wanted = [i for i in dict.fromkeys(problem_ids) if i not in have]
    fields = prep.config["problem_set"].get("fields")  # the columns it was first read through
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
    prep.problem_data.update({r.problem_id: r.data for r in rows})
    return work


def _render_more(
    prep: PreparedRun, problems: list[Problem], start: int
) -> tuple[list[StoredProblem], list[PromptSpec]]:
    """Problems added to a live local run, rendered and tokenized; refused if a prompt is
    longer than the run's context was planned for."""
    assert prep.model is not None and prep.plan is not None
    rows = _render_problems(prep.model, _stored_format(prep.config), problems, start)
    work = [
        PromptSpec(r.problem_id, tuple(prompts.tokenize(prep.model, r.prompt)), r.stop)
        for r in rows
    ]
    longest = max(work, key=lambda w: len(w.tokens))
    need = _plan(
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
    config: dict[str, Any],
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
        params = sampling_params(config)
        stored = session.problems()
        if server is not None:
            work = server.serve(stored)
        else:
            assert model is not None
            work = [
                PromptSpec(p.problem_id, tuple(prompts.tokenize(model, p.prompt)), p.stop)
                for p in stored
            ]
            plan = _plan(
                settings, model, max((len(w.tokens) for w in work), default=1), params.max_tokens
            )
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
        config["seed"],
        budget,
        work,
        settings,
        created,
        plan,
        {p.problem_id: p.data for p in stored},
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
        prep.problem_data,
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
                prep.problem_data[stored.problem_id], stored.sample_index, stored.text
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
    """What the session records about how a run samples."""
    settings = prep.settings
    if prep.server is not None:
        return {**prep.server.run_settings(), "policy": settings.policy.describe()}
    model, plan = prep.model, prep.plan
    assert model is not None and plan is not None
    device = _sampler_device(prep)
    return {
        "parallel": settings.parallel,
        "threads": plan.n_threads,
        "kv_cache": "unified" if plan.kv_unified else "split",
        "gpu_layers": settings.gpu_layers if model.gpu_offload else 0,
        "gpu_offload": model.gpu_offload,
        "n_ctx": plan.n_ctx,
        "n_batch": plan.n_batch,
        "troop_version": __version__,
        "llama_cpp_python": _llama_cpp_version(),
        "system_info": model.system_info,
        "policy": settings.policy.describe(),
        "cpu_extra_buffers": "on" if model.extra_buffers else "off",
        "worker_pid": model.worker.pid if model.worker is not None else None,
        "sampler_device": device.where,
        "sampler_device_reason": device.reason,
    }


def _sampler_device(prep: PreparedRun) -> model_facts.SamplerDevice:
    """Where this run's sampler chains are asked to run (the worker may fall back to host)."""
    assert prep.model is not None
    offloaded = prep.model.gpu_offload and prep.settings.gpu_layers != 0
    return model_facts.choose_sampler_device(prep.settings.sampler_device, offloaded=offloaded)


def _llama_cpp_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "unknown"


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
        device = _sampler_device(prep)
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
