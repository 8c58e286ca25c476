"""The session's configuration (the `config` entry of its meta table) as typed records, read
tolerantly from files of every troop version and written back by to_json() key for key."""

# Exactness: a session file outlives the troop that wrote it. Older files lack keys added since
# (a model's kv_bytes_per_token), a served model has none of a GGUF's keys, and hand-made or
# future files may hold keys this troop does not read. Each record keeps its object's Layout
# (keys in order, and what it did not read), so to_json() is the stored JSON whatever wrote it;
# a record made here (layout None) is written in the order this troop writes.

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Layout:
    """How one stored JSON object was laid out."""

    keys: tuple[str, ...]  # the object's keys, in the file's order
    # (key, JSON value) pairs written back untouched: keys this troop does not read, and values
    # of another type than it expects (their attribute reads None)
    kept: tuple[tuple[str, Any], ...] = ()


def _write(
    layout: Layout | None, values: Mapping[str, Any], fresh: Iterable[str]
) -> dict[str, Any]:
    """A record's JSON: its stored layout with the values it read, or `fresh` keys if new."""
    if layout is None:
        return {k: values[k] for k in fresh}
    kept = dict(layout.kept)
    return {k: kept[k] if k in kept else values[k] for k in layout.keys}


class _Reader:
    """Reads one stored JSON object's values by the type each field expects, remembering the
    keys it understood; a missing key or a JSON null reads None."""

    def __init__(self, stored: object) -> None:
        self.stored: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        self.understood: set[str] = set()

    def _take(self, key: str, fits: Callable[[Any], bool]) -> Any:
        value = self.stored.get(key)
        if value is None or fits(value):
            self.understood.add(key)
            return value
        return None

    def text(self, key: str) -> str | None:
        value: str | None = self._take(key, lambda v: isinstance(v, str))
        return value

    def integer(self, key: str) -> int | None:
        value: int | None = self._take(key, _is_int)
        return value

    def number(self, key: str) -> float | None:
        value: float | None = self._take(key, _is_number)
        return value

    def numbers(self, key: str) -> tuple[float, ...] | None:
        value = self._take(key, lambda v: isinstance(v, list) and all(map(_is_number, v)))
        return None if value is None else tuple(value)

    def pairs(self, key: str) -> tuple[tuple[str, str], ...] | None:
        value = self._take(
            key,
            lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        )
        return None if value is None else tuple(value.items())

    def record(self, key: str, parse: Callable[[Mapping[str, Any]], _T]) -> _T | None:
        value = self.stored.get(key)
        if not isinstance(value, Mapping):
            return None  # absent, or kept as it is (a null, a stray value)
        self.understood.add(key)
        return parse(value)

    def layout(self) -> Layout:
        kept = tuple((k, v) for k, v in self.stored.items() if k not in self.understood)
        return Layout(tuple(self.stored), kept)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: A GGUF model's keys, in the order troop writes them (the shape's after the file's).
_GGUF_KEYS = (
    "name",
    "path",
    "file_bytes",
    "sha256",
    "architecture",
    "general_name",
    "file_type",
    "description",
    "n_params",
    "n_layer",
    "n_embd",
    "n_ctx_train",
    "n_vocab",
    "size_bytes",
    "kv_bytes_per_token",
)
#: A served model's keys: those of a GGUF-backed session a server can fill, and the server.
_SERVED_KEYS = ("name", "path", "sha256", "server", "owned_by")


@dataclass(frozen=True)
class ModelIdentity:
    """What drew a session's samples: a GGUF file (its hash and shape) or a served model."""

    name: str | None = None  # registry name or file stem; a server's name for its model
    path: str | None = None  # the GGUF file; None for a served model
    file_bytes: int | None = None  # the file's size, bytes
    sha256: str | None = None  # the file's hash: resuming with another file is refused
    architecture: str | None = None  # GGUF general.architecture, e.g. "llama"
    general_name: str | None = None  # GGUF general.name
    file_type: str | None = None  # GGUF general.file_type, llama.cpp's quantisation number
    description: str | None = None  # llama.cpp's one-line description, e.g. "llama 256M Q4_1"
    n_params: int | None = None  # parameters, all tensors
    n_layer: int | None = None  # transformer blocks
    n_embd: int | None = None  # hidden size (d_model)
    n_ctx_train: int | None = None  # context length the model was trained with, tokens
    n_vocab: int | None = None  # vocabulary size, tokens
    size_bytes: int | None = None  # tensor data size, bytes
    kv_bytes_per_token: int | None = None  # KV cache per token of context, all layers, bytes
    server: str | None = None  # the server's base URL (a served model only)
    owned_by: str | None = None  # the server's `owned_by` for the model, when it lists one
    layout: Layout | None = None  # as the file has it; None: a GGUF's keys, or a server's

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ModelIdentity:
        r = _Reader(stored)
        return cls(
            name=r.text("name"),
            path=r.text("path"),
            file_bytes=r.integer("file_bytes"),
            sha256=r.text("sha256"),
            architecture=r.text("architecture"),
            general_name=r.text("general_name"),
            file_type=r.text("file_type"),
            description=r.text("description"),
            n_params=r.integer("n_params"),
            n_layer=r.integer("n_layer"),
            n_embd=r.integer("n_embd"),
            n_ctx_train=r.integer("n_ctx_train"),
            n_vocab=r.integer("n_vocab"),
            size_bytes=r.integer("size_bytes"),
            kv_bytes_per_token=r.integer("kv_bytes_per_token"),
            server=r.text("server"),
            owned_by=r.text("owned_by"),
            layout=r.layout(),
        )

    def to_json(self) -> dict[str, Any]:
        fresh = _SERVED_KEYS if self.server is not None else _GGUF_KEYS
        values = {k: getattr(self, k) for k in (*_GGUF_KEYS, "server", "owned_by")}
        return _write(self.layout, values, fresh)


@dataclass(frozen=True)
class BackendConfig:
    """What samples a session: llama.cpp in troop's own worker, or an OpenAI-compatible server."""

    name: str | None = None  # "llamacpp" or "openai"
    base_url: str | None = None  # the server's API root, e.g. http://127.0.0.1:8080/v1
    model: str | None = None  # the model name the server is asked for
    api: str | None = None  # "chat" (/chat/completions) or "completions"
    layout: Layout | None = None  # as the file has it; None: every key above that is set

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> BackendConfig:
        r = _Reader(stored)
        return cls(r.text("name"), r.text("base_url"), r.text("model"), r.text("api"), r.layout())

    def to_json(self) -> dict[str, Any]:
        values = {
            "name": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "api": self.api,
        }
        return _write(self.layout, values, [k for k, v in values.items() if v is not None])


#: The backend of a session whose configuration names none: llama.cpp, as every session was
#: sampled before servers could be; the analysis shows it so.
IN_PROCESS = BackendConfig("llamacpp")


@dataclass(frozen=True)
class PromptFormatSetting:
    """How the session's prompts were built from its problems."""

    kind: str | None = None  # "chat" (the model's chat template) or "raw" (a base model's text)
    template: str | None = None  # the chat template used (Jinja); None for raw or a server's
    requested: str | None = None  # what --prompt-format asked: auto, chat or raw
    layout: Layout | None = None  # as the file has it; None: all three keys

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> PromptFormatSetting:
        r = _Reader(stored)
        return cls(r.text("kind"), r.text("template"), r.text("requested"), r.layout())

    def to_json(self, *, template: bool = True) -> dict[str, Any]:
        """The stored object; without `template`, the template's text left out (reports and
        `troop show` print the rest)."""
        values = {"kind": self.kind, "template": self.template, "requested": self.requested}
        out = _write(self.layout, values, values)
        if not template:
            out.pop("template", None)
        return out


@dataclass(frozen=True)
class ProblemSetConfig:
    """Where the session's problems come from."""

    name: str | None = None  # built-in set, problem file or folder as given, or hf:NAME:SPLIT
    format: str | None = None  # the format every problem of the set has
    source: str | None = None  # a person's description of the origin
    # --fields: (troop's field, the data's column) pairs the set was read through; None: none
    fields: tuple[tuple[str, str], ...] | None = None
    layout: Layout | None = None  # as the file has it; None: name, format, source, any fields

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ProblemSetConfig:
        r = _Reader(stored)
        return cls(
            r.text("name"), r.text("format"), r.text("source"), r.pairs("fields"), r.layout()
        )

    def field_map(self) -> dict[str, str] | None:
        """The --fields mapping, as the problem loader takes it; None when there is none."""
        return dict(self.fields) if self.fields else None

    def to_json(self) -> dict[str, Any]:
        values = {
            "name": self.name,
            "format": self.format,
            "source": self.source,
            "fields": None if self.fields is None else dict(self.fields),
        }
        fresh = ("name", "format", "source", *(("fields",) if self.fields else ()))
        return _write(self.layout, values, fresh)


@dataclass(frozen=True)
class SamplingConfig:
    """The sampling settings shared by every sample of the session (None: not in the file)."""

    temperatures: tuple[float, ...] | None = None  # cycled by sample index
    top_k: int | None = None  # top-k cut, 0 disables
    top_p: float | None = None  # nucleus mass kept, 1.0 disables
    min_p: float | None = None  # min-p cut, 0.0 disables
    max_tokens: int | None = None  # completion budget per sample, tokens
    layout: Layout | None = None  # as the file has it; None: all five keys

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> SamplingConfig:
        r = _Reader(stored)
        return cls(
            r.numbers("temperatures"),
            r.integer("top_k"),
            r.number("top_p"),
            r.number("min_p"),
            r.integer("max_tokens"),
            r.layout(),
        )

    def to_json(self) -> dict[str, Any]:
        values = {
            "temperatures": None if self.temperatures is None else list(self.temperatures),
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "max_tokens": self.max_tokens,
        }
        return _write(self.layout, values, values)


@dataclass(frozen=True)
class SessionConfig:
    """What a session was made with; resuming is refused where a run would differ from it.
    A part the file lacks reads as an empty record (all None) and is not written back."""

    backend: BackendConfig | None  # the server a served session samples from; None: llama.cpp
    model: ModelIdentity  # the model that draws the samples
    prompt_format: PromptFormatSetting  # how prompts were built
    problem_set: ProblemSetConfig  # where the problems come from
    sampling: SamplingConfig  # sampling settings
    seed: int | None  # the session seed each sample's seed derives from
    layout: Layout | None = None  # as the file has it; None: written as this troop writes it

    @classmethod
    def from_json(cls, stored: object) -> SessionConfig:
        """The stored configuration; anything but a JSON object (a missing entry) reads empty."""
        r = _Reader(stored)
        return cls(
            backend=r.record("backend", BackendConfig.from_json),
            model=r.record("model", ModelIdentity.from_json) or ModelIdentity.from_json({}),
            prompt_format=(
                r.record("prompt_format", PromptFormatSetting.from_json)
                or PromptFormatSetting.from_json({})
            ),
            problem_set=(
                r.record("problem_set", ProblemSetConfig.from_json)
                or ProblemSetConfig.from_json({})
            ),
            sampling=r.record("sampling", SamplingConfig.from_json) or SamplingConfig.from_json({}),
            seed=r.integer("seed"),
            layout=r.layout(),
        )

    @property
    def sampled_by(self) -> BackendConfig:
        """The backend, llama.cpp where the file names none."""
        return self.backend or IN_PROCESS

    @property
    def backend_name(self) -> str:
        """ "llamacpp" or "openai": a session is only ever resumed with its own."""
        return self.sampled_by.name or "llamacpp"

    def to_json(self, *, template: bool = True) -> dict[str, Any]:
        """The stored object; without `template`, the chat template's text left out."""
        values = {
            "backend": None if self.backend is None else self.backend.to_json(),
            "model": self.model.to_json(),
            "prompt_format": self.prompt_format.to_json(template=template),
            "problem_set": self.problem_set.to_json(),
            "sampling": self.sampling.to_json(),
            "seed": self.seed,
        }
        fresh = (*(("backend",) if self.backend is not None else ()), *list(values)[1:])
        return _write(self.layout, values, fresh)
