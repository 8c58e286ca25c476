"""The one error type that reaches a person: a message and an optional hint."""

from __future__ import annotations


class TroopError(Exception):
    """A failure a person can act on; the CLI prints it as one line and exits with `exit_code`."""

    #: Process exit status the CLI uses for this error (2: bad input, as argparse does).
    exit_code: int = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ModelError(TroopError):
    """A model name or GGUF file that cannot be used."""


class ProblemSetError(TroopError):
    """A problem set that cannot be read: unknown name, bad file, bad line."""


class SessionError(TroopError):
    """A session file that cannot be opened, or cannot be resumed with the given settings."""


class EngineError(TroopError):
    """llama.cpp refused a configuration or failed while decoding."""

    exit_code = 1
