"""Finding verifiers: built-ins and third-party plugins, all through one entry-point group."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from troop.errors import TroopError
from troop.verifiers.base import SAMPLE_STYLES, Verifier

#: The entry-point group every verifier registers in, built-ins included.
GROUP = "troop.verifiers"

#: Which built-in verifier judges a problem format when none is named: python-tests runs a code
#: sample's tests, math-answer compares an answer sample's final answer.
DEFAULT_FOR_FORMAT = {
    fmt: "python-tests" if style == "code" else "math-answer"
    for fmt, style in SAMPLE_STYLES.items()
}


class VerifierError(TroopError):
    """A verifier that is unknown or fails to load."""


def installed() -> dict[str, importlib.metadata.EntryPoint]:
    """Every registered verifier by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def load(name: str, **options: Any) -> Verifier:
    """Build the verifier registered as `name`; unknown names list what is installed."""
    eps = installed()
    ep = eps.get(name)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise VerifierError(f"unknown verifier {name!r}", hint=f"installed: {known}")
    try:
        factory: Callable[..., Verifier] = ep.load()
        verifier = factory(**options)
    except TroopError:
        raise
    except Exception as exc:
        known = ", ".join(sorted(eps))
        raise VerifierError(
            f"verifier {name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
            hint=f"installed: {known}",
        ) from exc
    if not isinstance(verifier, Verifier):
        raise VerifierError(f"verifier {name!r} ({ep.value}) does not implement the protocol")
    return verifier


def for_format(problem_format: str, name: str | None = None, **options: Any) -> Verifier:
    """The named verifier, or the default one for the format; it must apply to the format."""
    chosen = name or DEFAULT_FOR_FORMAT.get(problem_format)
    if chosen is None:
        raise VerifierError(
            f"no default verifier for {problem_format} problems", hint="pass --verifier NAME"
        )
    verifier = load(chosen, **options)
    if not verifier.applies_to(problem_format):
        raise VerifierError(f"verifier {chosen!r} cannot judge {problem_format} problems")
    return verifier
