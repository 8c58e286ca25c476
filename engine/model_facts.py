"""What troop knows about a model and a context without loading llama.cpp: shapes, context
plans and chat templates, shared by the front ends and the llama.cpp worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from troop.errors import ModelError, TroopError

#: llama.cpp's hard limit on sequences in one context (LLAMA_MAX_SEQ in llama-cparams.h).
LLAMA_MAX_SEQ = 256


@dataclass(frozen=True)
class ModelShape:
    """Sizes read from the loaded model, used for FLOP estimates and context sizing."""

    n_params: int  # parameters, all tensors
    n_layer: int  # transformer blocks
    n_embd: int  # hidden size (d_model)
    n_ctx_train: int  # context length the model was trained with, tokens
    n_vocab: int  # vocabulary size, tokens
    size_bytes: int  # tensor data size, bytes
    description: str  # llama.cpp's one-line description, e.g. "llama ?B Q4_1"
    kv_bytes_per_token: int  # KV cache per token of context, all layers, f16 keys and values


@dataclass(frozen=True)
class ContextPlan:
    """Sizes of one llama.cpp context, checked before llama.cpp sees them."""

    n_seq: int  # sequences: sampling slots plus one holding the shared prompt
    n_ctx_seq: int  # tokens each sequence may hold (prompt + completion)
    n_batch: int  # most tokens in one llama_decode call
    kv_unified: bool  # one KV buffer for all sequences (True) or one per sequence (False)
    n_threads: int  # CPU threads for decoding

    @property
    def n_ctx(self) -> int:
        # A unified cache is one pool that every sequence shares; a split cache gives each
        # sequence its own n_ctx_seq, rounded by llama.cpp to a multiple of 256.
        per_seq = -(-self.n_ctx_seq // 256) * 256
        return per_seq * self.n_seq


def plan_context(
    *,
    parallel: int,
    max_prompt_tokens: int,
    max_tokens: int,
    kv_unified: bool,
    n_threads: int,
    n_ctx_train: int,
    kv_bytes_per_token: int = 0,
    memory_available: int | None = None,
    gpu: GpuBudget | None = None,
) -> ContextPlan:
    """Validate slots and sizes against llama.cpp's limits; a bad mix aborts the process there."""
    if parallel < 1:
        raise TroopError(f"--parallel must be at least 1, got {parallel}")
    n_seq = parallel + 1
    if n_seq > LLAMA_MAX_SEQ:
        raise TroopError(
            f"--parallel {parallel} is too many: llama.cpp allows {LLAMA_MAX_SEQ} sequences "
            f"per context and troop uses one more for the shared prompt",
            hint=f"use --parallel {LLAMA_MAX_SEQ - 1} or less",
        )
    need = max_prompt_tokens + max_tokens + 1
    if need > n_ctx_train:
        raise TroopError(
            f"a prompt of {max_prompt_tokens} tokens plus --max-tokens {max_tokens} needs "
            f"{need} tokens of context, more than the model's {n_ctx_train}",
            hint="lower --max-tokens or use shorter problems",
        )
    if n_threads < 1:
        raise TroopError(f"--threads must be at least 1, got {n_threads}")
    # One decode step carries one token per slot; prompts are decoded in chunks of this size.
    n_batch = max(512, n_seq)
    if kv_unified:
        # Every slot shares the prompt's cells, so the pool needs one prompt plus each slot's
        # completion; a second prompt may be live while slots of the previous one finish.
        # A quarter of slack keeps llama.cpp's cell search from failing on a fragmented pool.
        pool = 2 * max_prompt_tokens + parallel * (max_tokens + 1)
        n_ctx_seq = -(-(pool * 5 // 4) // n_seq)
    else:
        n_ctx_seq = need
    plan = ContextPlan(n_seq, n_ctx_seq, n_batch, kv_unified, n_threads)
    kv_bytes = plan.n_ctx * kv_bytes_per_token
    # Refuse rather than let the kernel kill the process half-way through allocating.
    if memory_available is not None and kv_bytes > 0.8 * memory_available:
        raise TroopError(
            f"--parallel {parallel} with prompts of up to {max_prompt_tokens} tokens and "
            f"--max-tokens {max_tokens} needs {kv_bytes / 2**30:.1f} GiB of KV cache, but only "
            f"{memory_available / 2**30:.1f} GiB of memory is available",
            hint="lower --parallel or --max-tokens",
        )
    if gpu is not None:
        check_gpu_memory(
            plan,
            gpu,
            kv_bytes_per_token=kv_bytes_per_token,
            max_prompt_tokens=max_prompt_tokens,
            max_tokens=max_tokens,
        )
    return plan


@dataclass(frozen=True)
class GpuBudget:
    """What the GPU check needs: free device memory and how much of the model is there."""

    free_bytes: int  # free memory on the GPUs llama.cpp uses, after the model's weights, bytes
    layer_fraction: float  # share of the layers (and so of the KV cache) offloaded, 0..1
    n_vocab: int  # vocabulary size, tokens (the logits buffer is one row per output)


def check_gpu_memory(
    plan: ContextPlan,
    gpu: GpuBudget,
    *,
    kv_bytes_per_token: int,
    max_prompt_tokens: int,
    max_tokens: int,
) -> None:
    """Refuse a context whose KV cache and compute buffers would not fit the GPU: llama.cpp
    aborts the process on a CUDA out-of-memory instead of failing the call."""
    kv = plan.n_ctx * kv_bytes_per_token * gpu.layer_fraction
    # The compute buffer is dominated by the output layer's logits, one f32 vocabulary row per
    # output of a micro-batch (twice: the graph's and the sampling's), plus a fixed margin for
    # llama.cpp's own scratch and the CUDA context.
    n_ubatch = min(plan.n_batch, 512)
    compute = 2 * n_ubatch * gpu.n_vocab * 4 + (512 << 20)
    need = kv + compute
    if need > 0.9 * gpu.free_bytes:
        raise TroopError(
            f"--parallel {plan.n_seq - 1} with prompts of up to {max_prompt_tokens} tokens and "
            f"--max-tokens {max_tokens} needs {need / 2**30:.1f} GiB of GPU memory "
            f"({kv / 2**30:.1f} GiB KV cache), but only {gpu.free_bytes / 2**30:.1f} GiB is free",
            hint="lower --parallel or --max-tokens, or offload fewer layers with --gpu-layers",
        )


#: --sampler-device values.
SAMPLER_DEVICES = ("auto", "host", "backend")


@dataclass(frozen=True)
class SamplerDevice:
    """Where the sampler chains run, and why (both go into the run's settings)."""

    where: str  # "host": llama.cpp's CPU samplers on copied logits; "backend": in the graph
    reason: str  # a few words a person reads in the run's settings


def choose_sampler_device(requested: str, *, offloaded: bool) -> SamplerDevice:
    """The device --sampler-device asks for; "auto" samples on the backend when layers run on
    a GPU (where the per-step copy of every slot's logits is what backend sampling saves)."""
    if requested not in SAMPLER_DEVICES:
        raise TroopError(f"--sampler-device must be auto, host or backend, not {requested}")
    if requested != "auto":
        return SamplerDevice(requested, "asked for")
    if offloaded:
        return SamplerDevice("backend", "auto: layers offloaded to a GPU")
    return SamplerDevice("host", "auto: no GPU offload, the logits are in host memory anyway")


def memory_available() -> int | None:
    """Bytes of RAM the kernel says can be allocated without swapping (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


#: Renders one user turn with llama.cpp's built-in C template renderer (in the worker).
NativeTemplate = Callable[[str, str], str]


def apply_chat_template(
    template: str,
    user_message: str,
    *,
    bos: str = "",
    eos: str = "",
    native: NativeTemplate | None = None,
) -> str:
    """Render one user turn with the model's own Jinja template, ready for the reply.

    Rendered in a sandboxed Jinja environment, as llama-server does with --jinja, so a
    template's default system prompt is kept; llama.cpp's built-in C renderer (`native`, which
    knows only the common template families) is the fallback.
    """
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    try:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        rendered: str = env.from_string(template).render(
            messages=[{"role": "user", "content": user_message}],
            add_generation_prompt=True,
            bos_token=bos,
            eos_token=eos,
            raise_exception=raise_exception,
        )
        return rendered
    except jinja2.TemplateError as exc:
        jinja_error = exc
    if native is not None:
        try:
            return native(template, user_message)
        except ModelError:
            pass
    raise ModelError(f"the model's chat template cannot be rendered: {jinja_error}")
