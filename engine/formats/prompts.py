"""How a problem becomes model input: an instruction through the chat template, or a raw prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from troop.engine.formats import Problem, get_format
from troop.engine.model_facts import apply_chat_template


class Model(Protocol):
    """What prompt building needs of a model: its template and vocabulary (the llama.cpp
    worker's model, engine/backends/supervisor.py, answers these)."""

    path: Path  # the GGUF file

    def chat_template(self) -> str | None: ...

    def bos_eos(self) -> tuple[int, int]: ...

    def token_text(self, token: int) -> str: ...

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]: ...

    def native_template(self, template: str, user_message: str) -> str: ...


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are built for one session; stored with it."""

    kind: str  # "chat" (the GGUF's chat template) or "raw" (the text itself)
    template: str | None  # the chat template's Jinja text, for "chat"


def choose_format(model: Model, instruct: bool | None, requested: str) -> PromptFormat:
    """`requested` is "auto", "chat" or "raw"; auto follows the registry, else the GGUF."""
    template = model.chat_template()
    if requested == "raw":
        return PromptFormat("raw", None)
    if requested == "chat" or (requested == "auto" and instruct is not False):
        if template:
            return PromptFormat("chat", template)
        if requested == "chat":
            from troop.errors import ModelError

            raise ModelError(
                f"{model.path}: --prompt-format chat, but the GGUF has no chat template"
            )
    return PromptFormat("raw", None)


def instruction(problem: Problem) -> str:
    """What an instruct model is asked, as the problem's format words it."""
    return get_format(problem.format).instruction(problem)


def raw_prompt(problem: Problem) -> tuple[str, tuple[str, ...]]:
    """What a base model continues, and where its continuation ends, per the problem's format."""
    return get_format(problem.format).raw_prompt(problem)


def render(
    model: Model, fmt: PromptFormat, problem: Problem
) -> tuple[str, list[int], tuple[str, ...]]:
    """The prompt text, its tokens and its stop strings."""
    if fmt.kind == "chat":
        assert fmt.template is not None
        bos, eos = model.bos_eos()
        text = apply_chat_template(
            fmt.template,
            instruction(problem),
            bos=model.token_text(bos),
            eos=model.token_text(eos),
            native=model.native_template,
        )
        stops: tuple[str, ...] = ()
    else:
        text, stops = raw_prompt(problem)
    return text, tokenize(model, text), stops


def tokenize(model: Model, text: str) -> list[int]:
    """A prompt's tokens: the model's own BOS added once, never empty."""
    tokens = model.tokenize(text, add_special=True)
    bos_id = model.bos_eos()[0]
    # A template that writes the BOS text itself would otherwise get a second one.
    if len(tokens) >= 2 and tokens[0] == bos_id and tokens[1] == bos_id:
        tokens = tokens[1:]
    return tokens or [bos_id]
