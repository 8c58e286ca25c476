"""What each `troop` subcommand does, once its arguments are parsed."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from contextlib import ExitStack
from types import FrameType
from typing import Any

from rich.console import Console

from troop.engine.numbers import count, duration
from troop.errors import TroopError

err = Console(stderr=True)


def verify_options(args: argparse.Namespace) -> Any:
    """How `args` asks for samples to be judged."""
    from troop.engine.runner import VerifyOptions

    return VerifyOptions(
        verifier=getattr(args, "verifier", None),
        command=getattr(args, "command", None),
        pattern=getattr(args, "pattern", None),
        sandbox=getattr(args, "sandbox", "auto"),
        verify_workers=getattr(args, "verify_workers", None),
        problems=getattr(args, "problems", None),
    )


def _say_tier(sandbox: Any) -> None:
    from rich.markup import escape

    style = "green" if sandbox.tier == "bwrap" else "yellow"
    err.print(f"sandbox: [{style}]{escape(sandbox.tier_note)}[/]")


def run_settings(args: argparse.Namespace) -> Any:
    """`troop run`'s arguments as checked RunSettings."""
    from troop.engine.formats.tables import parse_fields
    from troop.engine.settings import RunSettings, check_settings

    settings = RunSettings(
        session=args.session,
        model=args.model,
        problems=args.problems,
        fields=tuple(parse_fields(args.fields).items()) if args.fields else (),
        limit=args.limit,
        problem_ids=tuple(args.problem),
        samples=args.samples,
        temperatures=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        prompt_format=args.prompt_format,
        parallel=args.parallel,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        kv_cache=args.kv_cache,
        logprobs=not args.no_logprobs,
        sampler_device=args.sampler_device,
        policy=_policy(args),
        backend=args.backend,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        n_per_request=args.n_per_request,
        cpu_extra_buffers=args.cpu_extra_buffers,
    )
    check_settings(settings)
    return settings


def _launch(args: argparse.Namespace) -> Any:
    """`troop run`'s arguments as a checked Launch (bad flags fail here, as one line)."""
    from troop.engine.runner import Launch, run_settings_error

    launch = Launch(run_settings(args), verify_options(args))
    problem = run_settings_error(launch.settings, launch.verify)
    if problem is not None:
        raise TroopError(problem)
    return launch


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from troop.engine.console import ConsoleObserver, summary_table
    from troop.engine.runner import SessionRunner

    launch = _launch(args)
    if not args.headless:
        from troop.tui.app import run_live

        return run_live(launch)
    observer = ConsoleObserver(err)
    runner = SessionRunner(launch, observer, notify=lambda text: err.print(escape(text)))
    try:
        with err.status("loading the model and problems…"):
            prep = runner.prepare()
        verb = "created" if prep.created else "resuming"
        err.print(f"{verb} session [bold]{prep.session.path}[/]")
        if runner.sandbox is not None:
            _say_tier(runner.sandbox)
        if runner.verifier is not None:
            err.print(f"verifier: [bold]{runner.verifier.name}[/] {runner.verifier.version}")
            observer.expect_verdicts(runner.left_unjudged)

        def on_sigint(_sig: int, _frame: FrameType | None) -> None:
            # First Ctrl-C: stop after the current decode step; samples already stored stay.
            if runner.control.cancelled:
                raise KeyboardInterrupt
            runner.stop()

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            summary = runner.run_once()
        finally:
            signal.signal(signal.SIGINT, previous)
        solved = runner.solved() if summary.status == "completed" else None
        observer.close()
        Console().print(
            summary_table(
                status=summary.status,
                session=str(summary.session_path),
                samples=summary.samples,
                stored=summary.stored,
                target=summary.target,
                wall_s=summary.wall_s,
                completion_tokens=summary.completion_tokens,
                prompt_tokens=summary.prompt_tokens,
                finish_reasons=summary.finish_reasons,
                solved=solved,
            )
        )
    finally:
        observer.close()
        runner.close()
    # An adaptive policy may complete below the budget: it stopped the problems it could.
    if summary.stored < summary.target and (
        summary.status != "completed" or not launch.settings.policy.adaptive
    ):
        err.print(f"resume with: troop run --headless --session {summary.session_path}")
    return 130 if summary.status == "cancelled" else 0


def _policy(args: argparse.Namespace) -> Any:
    """The budget policy from --policy and its parameter flags (each only with its policy)."""
    from troop.engine.policy import PolicySpec

    given = {
        "cap": args.policy_cap,
        "chunk": args.policy_chunk,
        "threshold": args.consistency_threshold,
        "min_votes": args.consistency_min,
        "credit": args.policy_credit,
    }
    flags = {
        "cap": "--policy-cap",
        "chunk": "--policy-chunk",
        "threshold": "--consistency-threshold",
        "min_votes": "--consistency-min",
        "credit": "--policy-credit",
    }
    adaptive = ("until-solved", "until-consistent", "promising")
    consistent = ("until-consistent",)
    needs = {
        "cap": adaptive,
        "chunk": adaptive,
        "threshold": consistent,
        "min_votes": consistent,
        "credit": ("promising",),
    }
    for key, value in given.items():
        if value is not None and args.policy not in needs[key]:
            raise TroopError(f"{flags[key]} goes with --policy {' or '.join(needs[key])}")
    return PolicySpec(args.policy, **{k: v for k, v in given.items() if v is not None})


def verify(args: argparse.Namespace) -> int:
    from rich.table import Table

    from troop.engine.console import ConsoleObserver
    from troop.engine.runner import make_verifier, open_sandbox
    from troop.engine.storage.session import Session
    from troop.engine.verify import pending, verify_session

    with ExitStack() as stack:
        session = stack.enter_context(Session.open(args.session))
        problems = session.problems()
        if not problems:
            raise TroopError(f"{args.session}: the session has no problems")
        if args.problems:
            from troop.engine.watch import refresh_problems

            updated, refused = refresh_problems(session, args.problems)
            err.print(
                f"{len(updated)} problems took new tests from {args.problems}"
                + (f"; {len(refused)} refused (prompt changed)" if refused else "")
            )
        options = verify_options(args)
        verifier = make_verifier(options, problems[0].format)
        sandbox = open_sandbox(options, stack)
        _say_tier(sandbox)
        todo = len(pending(session, verifier, force=args.force))
        err.print(
            f"verifier: [bold]{verifier.name}[/] {verifier.version}; "
            f"{todo} of {session.sample_count()} samples to judge"
        )
        observer = ConsoleObserver(err)
        observer.expect_verdicts(todo)
        try:
            summary = verify_session(session, verifier, sandbox, observer, force=args.force)
            if args.watch:
                verifier = _watch(args, session, verifier, sandbox, observer)
        finally:
            observer.close()
        statuses = session.current_statuses(verifier.name, verifier.version)
    table = Table(title="verdicts (current verifier version)", title_justify="left")
    table.add_column("status")
    table.add_column("samples", justify="right")
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    for status, n in sorted(counts.items()):
        table.add_row(status, count(n))
    solved = len({pid for (pid, _), status in statuses.items() if status == "pass"})
    table.add_row("problems solved", f"{count(solved)} / {count(len(problems))}")
    table.add_row(
        "judged now / already current", f"{count(summary.verified)} / {count(summary.skipped)}"
    )
    table.add_row("wall time", duration(summary.wall_s))
    Console().print(table)
    return 0


def _watch(
    args: argparse.Namespace, session: Any, verifier: Any, sandbox: Any, observer: Any
) -> Any:
    """Re-judge on every change of the watched files until Ctrl-C; returns the verifier."""
    import time

    from troop.engine.runner import make_verifier, watched_files
    from troop.engine.verify import Verification
    from troop.engine.watch import LiveReload

    options = verify_options(args)
    problem_file, verifier_file = watched_files(options, session)
    if problem_file is None and verifier_file is None:
        raise TroopError(
            "--watch has nothing to watch: the session's problems are built in "
            "and no --command verifier was given"
        )
    verification = Verification(
        session, verifier, sandbox, observer, on_submit=observer.expect_verdicts
    )

    def rebuild() -> Any:
        return make_verifier(options, session.problems()[0].format)

    def notify(message: str) -> None:
        err.print(message)

    reload = LiveReload(
        session,
        verification,
        problem_file=problem_file,
        verifier_file=verifier_file,
        rebuild=rebuild,
        notify=notify,
    ).start()
    watched = ", ".join(str(p) for p in (problem_file, verifier_file) if p is not None)
    err.print(f"watching {watched} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        reload.stop()
        verification.wait()
        verification.close()
    return verification.verifier


def check(args: argparse.Namespace) -> int:
    from troop.engine.formats.loading import load_problem_set
    from troop.engine.runner import make_verifier, open_sandbox
    from troop.engine.session_setup import problem_record
    from troop.verifiers.base import Check

    try:
        text = args.sample.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TroopError(f"{args.sample}: no such sample file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TroopError(f"{args.sample}: cannot read as UTF-8 text: {exc}") from None
    pset = load_problem_set(args.problems, problem_ids=[args.problem])
    problem = problem_record(pset.problems[0])
    options = verify_options(args)
    verifier = make_verifier(options, problem["format"])
    with ExitStack() as stack:
        sandbox = open_sandbox(options, stack)
        _say_tier(sandbox)
        verdict = verifier.verify(Check(text=text, problem=problem), sandbox)
    json.dump(
        {
            "status": str(verdict.status),
            "verifier": verdict.verifier,
            "version": verdict.version,
            "duration_s": round(verdict.duration_s, 6),
            "output": verdict.output,
            "truncated": verdict.truncated,
            "detail": verdict.detail,
            "tier": verdict.tier,
            "extra": verdict.extra,
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    return 0


def tui(_args: argparse.Namespace) -> int:
    """Bare `troop`: the TUI's setup screen."""
    from troop.tui.app import run_setup

    return run_setup()


def open_session(args: argparse.Namespace) -> int:
    """`troop open SESSION`: the session in the TUI, to browse or continue."""
    from troop.tui.app import run_open

    return run_open(args.session)


def models(_args: argparse.Namespace) -> int:
    from troop.engine.models import REGISTRY, resolve_model

    for name, entry in REGISTRY.items():
        try:
            where = str(resolve_model(name).path)
        except TroopError as exc:
            where = f"not available: {exc}"
        print(f"{name:14} {entry.description}\n{'':14} {where}")
    return 0


def verifiers(_args: argparse.Namespace) -> int:
    from troop.verifiers import registry

    for name, ep in sorted(registry.installed().items()):
        try:
            v = registry.load(name, **({"argv": ["true"]} if name == "command" else {}))
            formats = [f for f in registry.DEFAULT_FOR_FORMAT if v.applies_to(f)]
            print(f"{name:14} {ep.value}  (formats: {', '.join(formats) or 'by option'})")
        except TroopError as exc:
            print(f"{name:14} {ep.value}  (fails to load: {exc})")
    return 0


def show(args: argparse.Namespace) -> int:
    from troop.engine.storage.session import Session

    with Session.open(args.session) as session:
        config = session.config()
        problems = session.problems()
        budget = session.meta("budget")
        stored = session.sample_count()
        print(
            json.dumps(
                {
                    "session": str(args.session),
                    "budget": budget,
                    "problems": len(problems),
                    "samples_stored": stored,
                    "samples_target": budget * len(problems),
                    "verifier": session.meta("verifier"),
                    "config": config.to_json(template=False),
                    "policy": session.meta("policy", {"name": "fixed"}),
                    "coverage_only": bool(session.meta("coverage_only", False)),
                },
                indent=2,
            )
        )
    return 0


def _analysis_options(args: argparse.Namespace) -> Any:
    from troop.engine.analytics.analysis import AnalysisOptions
    from troop.engine.analytics.cost import load_prices

    given: dict[str, Any] = {"verifier": args.verifier, "seed": args.seed}
    if args.watts is not None:
        given["watts"] = args.watts
    if args.kwh_usd is not None:
        given["kwh_usd"] = args.kwh_usd
    if args.prices is not None:
        given["prices"] = load_prices(args.prices)
    return AnalysisOptions(**given)


def report(args: argparse.Namespace) -> int:
    from troop.engine.analytics.analysis import analyse, compare
    from troop.engine.storage.session import Session
    from troop.reports.report import (
        default_path,
        dumps,
        write_comparison_report,
        write_session_report,
    )

    options = _analysis_options(args)
    if len(set(args.sessions)) < len(args.sessions):
        raise TroopError("a session is named twice")
    with ExitStack() as stack:
        sessions = [stack.enter_context(Session.open(p)) for p in args.sessions]
        analyses = [analyse(s, options) for s in sessions]
        if args.format == "json" and args.output is None:
            data = analyses[0] if len(analyses) == 1 else compare(analyses)
            sys.stdout.write(dumps(data))
            return 0
        out = args.output or default_path(args.sessions, args.format)
        if len(sessions) == 1:
            written = write_session_report(sessions[0], analyses[0], args.format, out)
        else:
            written = write_comparison_report(compare(analyses), args.format, out)
    for path in written:
        print(path)
    return 0


def export(args: argparse.Namespace) -> int:
    from troop.engine.storage.session import Session
    from troop.reports.atomic import write_text
    from troop.reports.samples import full_rows, humaneval_rows, jsonl

    if args.samples_jsonl is None and args.full_jsonl is None:
        raise TroopError("nothing to export", "give --samples-jsonl PATH and/or --full-jsonl PATH")
    with Session.open(args.session) as session:
        if args.samples_jsonl is not None:
            write_text(args.samples_jsonl, jsonl(humaneval_rows(session)))
            print(args.samples_jsonl)
        if args.full_jsonl is not None:
            write_text(args.full_jsonl, jsonl(full_rows(session)))
            print(args.full_jsonl)
    return 0
