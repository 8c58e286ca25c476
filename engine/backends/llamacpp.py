"""A thin, typed layer over llama-cpp-python's low-level bindings: load, tokenize, decode."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

import llama_cpp as lc

from troop.engine.model_facts import ContextPlan, ModelShape
from troop.errors import EngineError, ModelError

# ggml_log_level: DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the last line's level).
_GGML_LOG_LEVEL_DEBUG = 1
_GGML_LOG_LEVEL_WARN = 3
_GGML_LOG_LEVEL_CONT = 5
_GGML_DEVICE_TYPE_GPU = 1  # enum ggml_backend_dev_type in ggml-backend.h


class _LogSink:
    """Keeps llama.cpp's log off the terminal, remembering recent error lines for messages.

    With TROOP_LLAMA_LOG set (the worker's log file is its stderr) every line but the
    per-graph debug chatter is written to stderr; TROOP_LLAMA_LOG=debug writes that too.
    """

    def __init__(self) -> None:
        self.errors: deque[str] = deque(maxlen=8)
        self._last_level = 0
        wanted = os.environ.get("TROOP_LLAMA_LOG", "")
        self._min_level = (
            _GGML_LOG_LEVEL_DEBUG
            if wanted == "debug"
            else _GGML_LOG_LEVEL_DEBUG + 1
            if wanted
            else 99
        )
        # The ctypes callback must stay referenced for as long as llama.cpp may call it.
        self._callback = lc.llama_log_callback(self._log)
        lc.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _log(self, level: int, text: bytes, _user: Any) -> None:
        if level == _GGML_LOG_LEVEL_CONT:
            level = self._last_level
        self._last_level = level
        line = text.decode("utf-8", "replace")
        if level >= _GGML_LOG_LEVEL_WARN and line.strip():
            self.errors.append(line.strip())
        if level >= self._min_level:
            os.write(2, text)

    def last_error(self) -> str:
        return self.errors[-1] if self.errors else "no detail from llama.cpp"


_sink: _LogSink | None = None
_init_lock = threading.Lock()


def _backend() -> _LogSink:
    global _sink
    with _init_lock:
        if _sink is None:
            _sink = _LogSink()
            lc.llama_backend_init()
        return _sink


def gpu_offload_supported() -> bool:
    """True when llama.cpp was built with a GPU backend (CUDA, Metal, Vulkan...)."""
    _backend()
    return bool(lc.llama_supports_gpu_offload())


def system_info() -> str:
    """llama.cpp's own one-line description of the CPU/GPU features it was built with."""
    _backend()
    info: bytes = lc.llama_print_system_info()
    return info.decode("utf-8", "replace").strip()


def native_chat_template(template: str, user_message: str) -> str:
    """One user turn rendered by llama.cpp's built-in C renderer (the common template families)."""
    msg = (lc.llama_chat_message * 1)()
    msg[0].role = b"user"
    msg[0].content = user_message.encode("utf-8")
    cap = len(msg[0].content) * 2 + 4096
    buf = ctypes.create_string_buffer(cap)
    n = lc.llama_chat_apply_template(template.encode("utf-8"), msg, 1, True, buf, cap)
    if n > cap:
        buf = ctypes.create_string_buffer(n + 1)
        n = lc.llama_chat_apply_template(template.encode("utf-8"), msg, 1, True, buf, n + 1)
    if n < 0:
        raise ModelError("llama.cpp does not know this chat template")
    return buf.raw[:n].decode("utf-8")


class Model:
    """A GGUF model loaded by llama.cpp, with its vocabulary; not tied to any context."""

    def __init__(
        self, path: Path, *, gpu_layers: int = -1, extra_buffers: bool | None = None
    ) -> None:
        sink = _backend()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        if extra_buffers is None:
            # The supervisor sets this for its worker; "off" avoids CPU kernels (AMX) that
            # fault on some virtualised hosts.
            extra_buffers = os.environ.get("TROOP_CPU_EXTRA_BUFFERS", "on") != "off"
        # Extra buffer types repack weights for CPU kernels such as AMX's.
        params.use_extra_bufts = extra_buffers
        sink.errors.clear()
        ptr = lc.llama_model_load_from_file(str(path).encode(), params)
        if not ptr:
            raise ModelError(
                f"{path}: llama.cpp could not load this model: {sink.last_error()}",
                hint="is it a complete GGUF file of an architecture this llama.cpp supports?",
            )
        self.path = path
        self.ptr = ptr
        self.gpu_layers = gpu_layers
        self.vocab = lc.llama_model_get_vocab(ptr)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self._piece_buf = ctypes.create_string_buffer(256)
        self._closed = False

    def shape(self) -> ModelShape:
        desc = ctypes.create_string_buffer(256)
        lc.llama_model_desc(self.ptr, desc, ctypes.sizeof(desc))
        meta = self.metadata()
        arch = meta.get("general.architecture", "")
        n_embd = int(lc.llama_model_n_embd(self.ptr))
        n_head = max(1, int(lc.llama_model_n_head(self.ptr)))
        n_head_kv = int(lc.llama_model_n_head_kv(self.ptr))
        # Head sizes default to n_embd / n_head; some models (Gemma) state them explicitly.
        k_len = int(meta.get(f"{arch}.attention.key_length", n_embd // n_head))
        v_len = int(meta.get(f"{arch}.attention.value_length", n_embd // n_head))
        n_layer = int(lc.llama_model_n_layer(self.ptr))
        return ModelShape(
            n_params=int(lc.llama_model_n_params(self.ptr)),
            n_layer=n_layer,
            n_embd=n_embd,
            n_ctx_train=int(lc.llama_model_n_ctx_train(self.ptr)),
            n_vocab=self.n_vocab,
            size_bytes=int(lc.llama_model_size(self.ptr)),
            description=desc.value.decode("utf-8", "replace"),
            kv_bytes_per_token=2 * n_layer * n_head_kv * (k_len + v_len),
        )

    def metadata(self) -> dict[str, str]:
        """Every GGUF key-value pair except the (large) tokenizer arrays."""
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(int(lc.llama_model_meta_count(self.ptr))):
            n = lc.llama_model_meta_key_by_index(self.ptr, i, buf, ctypes.sizeof(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            if key.startswith("tokenizer.ggml."):
                continue
            n = lc.llama_model_meta_val_str_by_index(self.ptr, i, buf, ctypes.sizeof(buf))
            if n >= 0:
                out[key] = buf.value.decode("utf-8", "replace")
        return out

    def chat_template(self) -> str | None:
        raw: bytes | None = lc.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", "replace") if raw else None

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        arr = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, True)
        if n < 0:  # buffer too small: llama.cpp returns minus the needed size
            cap = -n
            arr = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, True)
        return list(arr[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token as the model would print it (special tokens rendered empty)."""
        n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def token_text(self, token: int) -> str:
        """A special token's text (e.g. "<bos>"), as a chat template writes it."""
        raw: bytes | None = lc.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", "replace") if raw else ""

    def bos_eos(self) -> tuple[int, int]:
        return int(lc.llama_vocab_bos(self.vocab)), int(lc.llama_vocab_eos(self.vocab))

    def is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lc.llama_model_free(self.ptr)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown the library may already be gone
            self.close()


def gpu_memory_free() -> int | None:
    """Free bytes on the GPUs llama.cpp sees (summed), or None when it has no GPU backend."""
    _backend()
    if not lc.llama_supports_gpu_offload():
        return None
    from llama_cpp._ggml import libggml

    libggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    libggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    libggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    libggml.ggml_backend_dev_type.restype = ctypes.c_int
    libggml.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    libggml.ggml_backend_dev_memory.restype = None
    free_total, found = 0, False
    for i in range(int(libggml.ggml_backend_dev_count())):
        dev = libggml.ggml_backend_dev_get(i)
        if libggml.ggml_backend_dev_type(dev) != _GGML_DEVICE_TYPE_GPU:
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        libggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        free_total += free.value
        found = True
    return free_total if found else None


class Context:
    """A llama.cpp context plus one reusable batch; all methods run on one thread."""

    def __init__(self, model: Model, plan: ContextPlan) -> None:
        sink = _backend()
        params = lc.llama_context_default_params()
        params.n_ctx = plan.n_ctx
        params.n_batch = plan.n_batch
        params.n_ubatch = min(plan.n_batch, 512)
        params.n_seq_max = plan.n_seq
        params.n_threads = plan.n_threads
        params.n_threads_batch = plan.n_threads
        params.kv_unified = plan.kv_unified
        params.no_perf = True
        # One output per sequence per step: an attached (backend) sampler then draws from its
        # own generator at each decode, with no accept call per token (backend_sampling.py).
        params.n_outputs_max_per_seq = 1
        sink.errors.clear()
        ptr = lc.llama_init_from_model(model.ptr, params)
        if not ptr:
            raise EngineError(f"llama.cpp could not create a context: {sink.last_error()}")
        self.ptr = ptr
        self.model = model
        self.plan = plan
        self.memory = lc.llama_get_memory(ptr)
        self.batch = lc.llama_batch_init(plan.n_batch, 0, 1)
        # Sampler chains attached to sequences (engine/backends/backend_sampling.py), by
        # sequence id; llama.cpp only borrows them, so they are freed after the context.
        self.sampler_chains: dict[int, Any] = {}
        self._closed = False

    def clear_batch(self) -> None:
        self.batch.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token to the batch; returns its index (for reading its logits)."""
        b = self.batch
        i = int(b.n_tokens)
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1
        return i

    def decode(self) -> None:
        rc = lc.llama_decode(self.ptr, self.batch)
        if rc != 0:
            detail = "no room left in the KV cache" if rc == 1 else _backend().last_error()
            raise EngineError(f"llama_decode failed (code {rc}): {detail}")

    def decode_prompt(self, tokens: list[int], seq: int) -> None:
        """Evaluate a prompt into one sequence, in chunks of n_batch, without logits."""
        step = self.plan.n_batch
        for start in range(0, len(tokens), step):
            self.clear_batch()
            for pos in range(start, min(start + step, len(tokens))):
                self.add(tokens[pos], pos, seq, False)
            self.decode()

    def seq_copy(self, src: int, dst: int) -> None:
        """Give `dst` everything `src` holds: shared cells in a unified cache, a buffer copy
        (applied at the next decode) in a split one."""
        # A split cache can only copy whole per-sequence buffers (llama.cpp asserts on ranges),
        # which is why the holder sequence contains exactly the shared prefix and nothing else.
        lc.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def seq_remove(self, seq: int) -> None:
        lc.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def all_logits(self) -> Any:
        """The last decode's logits, one n_vocab row per output, in batch order."""
        return lc.llama_get_logits(self.ptr)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lc.llama_batch_free(self.batch)
            lc.llama_free(self.ptr)
            for chain in self.sampler_chains.values():
                lc.llama_sampler_free(chain)
            self.sampler_chains.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown the library may already be gone
            self.close()


def build_chain(*, seed: int, temperature: float, top_k: int, top_p: float, min_p: float) -> Any:
    """A sampler chain: top-k first (cheap cut of the vocabulary), then top-p, min-p,
    temperature and a seeded draw; temperature 0 is greedy. The caller frees it."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    if temperature <= 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
    else:
        if top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(min_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain


class Sampler:
    """One sample's own sampler chain (see build_chain), run on the host."""

    def __init__(
        self, *, seed: int, temperature: float, top_k: int, top_p: float, min_p: float
    ) -> None:
        self.ptr = build_chain(
            seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p
        )

    def sample(self, ctx: Context, idx: int) -> int:
        # llama_sampler_sample also accepts the token into the chain's state.
        return int(lc.llama_sampler_sample(self.ptr, ctx.ptr, idx))

    def close(self) -> None:
        if self.ptr is not None:
            lc.llama_sampler_free(self.ptr)
            self.ptr = None
