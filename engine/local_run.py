"""A run whose samples come from llama.cpp in troop's own worker process: the model loaded beside
the session, prompts rendered through it and tokenized, its context planned before llama.cpp
sees it, and the checks before resuming."""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from troop import __version__
from troop.engine import model_facts
from troop.engine.backends import supervisor
from troop.engine.backends.supervisor import WorkerModel, worker_log_path
from troop.engine.backends.worker_process import WorkerDied
from troop.engine.formats import prompts
from troop.engine.formats.loading import Problem
from troop.engine.models import file_sha256, resolve_model
from troop.engine.session_setup import (
    add_on_resume,
    check_resumable,
    create_session,
    new_work,
    problem_record,
    resume_budget,
    stored_config,
)
from troop.engine.settings import DEFAULT_SAMPLES, RunSettings, kv_unified, new_session_path
from troop.engine.storage.config import ModelIdentity, SessionConfig
from troop.engine.storage.lock import SessionLock
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.engine.work import PromptSpec
from troop.errors import SessionError


@dataclass(frozen=True)
class LocalSession:
    """A llama.cpp-backed session created or reopened with its model loaded; run.py makes it
    ready to sample."""

    session: Session  # the open session file
    model: WorkerModel  # the model in its worker process
    config: SessionConfig  # the session's stored configuration
    budget: int  # samples per problem
    created: bool  # True if this run created the session
    lock: SessionLock  # this process's hold on the session (one writer)


def open_session(settings: RunSettings, lock: SessionLock | None) -> LocalSession:
    """Reopen the session `lock` holds, or create a new one; on failure nothing stays open
    (the lock released, the worker stopped)."""
    if lock is not None:
        return _resume(settings, lock)
    return _create(settings)


def model_identity(model: WorkerModel, name: str, sha256: str) -> ModelIdentity:
    """The loaded GGUF as the session records it: the file, its hash and its shape."""
    shape = model.shape()
    meta = model.metadata()
    return ModelIdentity(
        name=name,
        path=str(model.path),
        file_bytes=model.path.stat().st_size,
        sha256=sha256,
        architecture=meta.get("general.architecture"),
        general_name=meta.get("general.name"),
        file_type=meta.get("general.file_type"),
        **asdict(shape),
    )


def stored_format(session: Session, config: SessionConfig) -> prompts.PromptFormat:
    """The prompt format a session was made with."""
    kind = config.prompt_format.kind
    if kind is None:
        raise SessionError(f"{session.path}: the session's configuration names no prompt format")
    return prompts.PromptFormat(kind, config.prompt_format.template)


def render_problems(
    model: WorkerModel, fmt: prompts.PromptFormat, problems: list[Problem], start: int
) -> list[StoredProblem]:
    """Problems as session rows, their prompts rendered (`start`: the position of the first)."""
    out = []
    for i, p in enumerate(problems):
        text, tokens, stops = prompts.render(model, fmt, p)
        out.append(
            StoredProblem(p.id, start + i, p.format, text, len(tokens), stops, problem_record(p))
        )
    return out


def tokenized(model: WorkerModel, rows: list[StoredProblem]) -> list[PromptSpec]:
    """Stored problems as work: each prompt tokenized by the model."""
    return [
        PromptSpec(r.problem_id, tuple(prompts.tokenize(model, r.prompt)), r.stop) for r in rows
    ]


def plan(
    settings: RunSettings,
    model: WorkerModel,
    max_prompt_tokens: int,
    max_tokens: int,
    *,
    check_gpu: bool = True,
) -> model_facts.ContextPlan:
    """The llama.cpp context for these prompts and completions, checked against memory."""
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


def sampler_device(settings: RunSettings, model: WorkerModel) -> model_facts.SamplerDevice:
    """Where a run's sampler chains are asked to run (the worker may fall back to host)."""
    offloaded = model.gpu_offload and settings.gpu_layers != 0
    return model_facts.choose_sampler_device(settings.sampler_device, offloaded=offloaded)


def run_settings(
    settings: RunSettings, model: WorkerModel, context: model_facts.ContextPlan
) -> dict[str, Any]:
    """What the session's `runs` table records about a llama.cpp run (JSON)."""
    device = sampler_device(settings, model)
    return {
        "parallel": settings.parallel,
        "threads": context.n_threads,
        "kv_cache": "unified" if context.kv_unified else "split",
        "gpu_layers": settings.gpu_layers if model.gpu_offload else 0,
        "gpu_offload": model.gpu_offload,
        "n_ctx": context.n_ctx,
        "n_batch": context.n_batch,
        "troop_version": __version__,
        "llama_cpp_python": _llama_cpp_version(),
        "system_info": model.system_info,
        "policy": settings.policy.describe(),
        "cpu_extra_buffers": "on" if model.extra_buffers else "off",
        "worker_pid": model.worker.pid if model.worker is not None else None,
        "sampler_device": device.where,
        "sampler_device_reason": device.reason,
    }


def _llama_cpp_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "unknown"


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


def _create(settings: RunSettings) -> LocalSession:
    ref = resolve_model(settings.model)
    work = new_work(settings)
    path = settings.session or new_session_path(ref.name, work.problems.name)
    if path.exists():
        raise SessionError(f"{path}: already exists")
    lock = SessionLock(path).acquire()
    try:
        model = _load(ref.path, settings, path)
    except BaseException:
        lock.release()
        raise
    try:
        fmt = prompts.choose_format(model, ref.instruct, work.prompt_format)
        rows = render_problems(model, fmt, list(work.problems.problems), 0)
        # Check slots and sizes now: a bad --parallel must not leave an empty session behind.
        plan(settings, model, max(r.prompt_tokens for r in rows), work.params.max_tokens)
        budget = settings.samples or DEFAULT_SAMPLES
        identity = model_identity(model, ref.name, file_sha256(ref.path))
        config = stored_config(None, identity, work, fmt.kind, fmt.template)
        session = create_session(path, config, budget, rows)
    except BaseException:
        model.close()
        lock.release()
        # Nothing was created: leave no log or lock file behind either.
        for leftover in (worker_log_path(path), lock.path):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    return LocalSession(session, model, config, budget, True, lock)


def _resume(settings: RunSettings, lock: SessionLock) -> LocalSession:
    assert settings.session is not None
    try:
        session = Session.open(settings.session)
    except BaseException:
        lock.release()
        raise
    try:
        config = session.config()
        check_resumable(settings, config)
        want = config.model
        if settings.model is not None:
            ref_path = resolve_model(settings.model).path
        elif want.path is None:
            raise SessionError(
                f"{settings.session}: the session names no model file",
                hint="pass --model with the GGUF file it was sampled with",
            )
        else:
            ref_path = Path(want.path)
            if not ref_path.exists():
                raise SessionError(
                    f"{settings.session}: the session's model {ref_path} is gone",
                    hint="pass --model with the same GGUF file",
                )
        if file_sha256(ref_path) != want.sha256:
            raise SessionError(
                f"{settings.session}: cannot resume with another model: {ref_path} is not "
                f"the file the session was sampled with (sha256 {(want.sha256 or '?')[:12]}…)",
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
            lambda fresh, start: render_problems(
                model, stored_format(session, config), fresh, start
            ),
        )
    except BaseException:
        model.close()
        session.close()
        lock.release()
        raise
    return LocalSession(session, model, config, budget, False, lock)
