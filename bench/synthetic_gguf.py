"""Writes a GGUF model with random weights at a named shape, carrying the default model's tokenizer.

A decode step costs the same whatever the weights hold (the same matrix products over the same
shapes, the same attention over the same cells), so a random model of a real model's shape
measures that model's throughput faithfully, without downloading it. Its text is noise: use it
for throughput, never for verdicts or coverage.

    python bench/synthetic_gguf.py llama-1b --type q8_0 --out /tmp/llama-1b-q8.gguf
    python bench/synthetic_gguf.py --list
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Said wherever a synthetic model's numbers are printed.
COST_NOTE = (
    "random weights: decoding cost does not depend on weight values, so its "
    "throughput is the named shape's; its text is noise"
)

# GGUF's token type for a vocabulary slot that no text ever maps to (llama.cpp keeps such
# tokens out of its special-token scan, so padding the vocabulary costs tokenization nothing).
_TOKEN_TYPE_UNUSED = 5
_Q8_0_BLOCK = 32  # values per Q8_0 block; each block is an f16 scale and 32 int8 values


@dataclass(frozen=True)
class Shape:
    """A transformer's sizes, as its GGUF states them."""

    arch: str  # llama.cpp architecture: "llama" or "qwen2"
    n_vocab: int  # vocabulary size, tokens (0: the carried tokenizer's own size)
    n_embd: int  # hidden size
    n_layer: int  # transformer blocks
    n_head: int  # attention heads
    n_head_kv: int  # key/value heads (grouped-query attention)
    n_ff: int  # feed-forward hidden size
    n_ctx_train: int  # context length, tokens
    rope_theta: float  # RoPE base frequency
    rms_eps: float  # RMS-norm epsilon
    qkv_bias: bool  # Qwen2 has biases on the query, key and value projections
    about: str  # what it stands for


SHAPES: dict[str, Shape] = {
    "smollm2-135m": Shape(
        "llama",
        49152,
        576,
        30,
        9,
        3,
        1536,
        8192,
        100000.0,
        1e-5,
        False,
        "SmolLM2-135M's shape (the default model's)",
    ),
    "llama-1b": Shape(
        "llama",
        128256,
        2048,
        16,
        32,
        8,
        8192,
        131072,
        500000.0,
        1e-5,
        False,
        "Llama-3.2-1B's shape (its 128k vocabulary, tied embeddings)",
    ),
    "qwen-0.5b": Shape(
        "qwen2",
        151936,
        896,
        24,
        14,
        2,
        4864,
        32768,
        1000000.0,
        1e-6,
        True,
        "Qwen2.5-0.5B's shape (its 152k vocabulary, QKV biases)",
    ),
    "tiny": Shape(
        "llama",
        0,
        64,
        2,
        4,
        2,
        128,
        8192,
        10000.0,
        1e-5,
        False,
        "a toy for tests: the step is mostly the output layer",
    ),
}


def tokenizer_fields(path: Path) -> dict[str, tuple[Any, Any]]:
    """Every `tokenizer.*` key of a GGUF file: name -> (value, GGUF value type)."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path)
    out: dict[str, tuple[Any, Any]] = {}
    for name, f in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        if vtype == GGUFValueType.ARRAY:
            out[name] = (list(f.contents()), f.types[-1])
        else:
            out[name] = (f.contents(), vtype)
    return out


def _padded(fields: dict[str, tuple[Any, Any]], n_vocab: int) -> dict[str, tuple[Any, Any]]:
    """The tokenizer with unused tokens appended up to n_vocab entries."""
    tokens = fields["tokenizer.ggml.tokens"][0]
    extra = n_vocab - len(tokens)
    if extra < 0:
        raise SystemExit(
            f"the shape's vocabulary ({n_vocab}) is smaller than the tokenizer's ({len(tokens)})"
        )
    if extra == 0:
        return fields
    out = dict(fields)
    out["tokenizer.ggml.tokens"] = (
        tokens + [f"[PAD{i}]" for i in range(extra)],
        fields["tokenizer.ggml.tokens"][1],
    )
    if "tokenizer.ggml.token_type" in fields:
        types, vt = fields["tokenizer.ggml.token_type"]
        out["tokenizer.ggml.token_type"] = (types + [_TOKEN_TYPE_UNUSED] * extra, vt)
    if "tokenizer.ggml.scores" in fields:
        scores, vt = fields["tokenizer.ggml.scores"]
        out["tokenizer.ggml.scores"] = (scores + [-1e9] * extra, vt)
    return out


def tensor_shapes(s: Shape, n_vocab: int) -> Iterator[tuple[str, tuple[int, ...], bool]]:
    """(name, numpy shape rows x columns, is a matrix) of every tensor, in file order.

    Embeddings are tied (no output.weight), as in all three named models."""
    head = s.n_embd // s.n_head
    yield "token_embd.weight", (n_vocab, s.n_embd), True
    for i in range(s.n_layer):
        b = f"blk.{i}"
        yield f"{b}.attn_norm.weight", (s.n_embd,), False
        yield f"{b}.attn_q.weight", (s.n_head * head, s.n_embd), True
        yield f"{b}.attn_k.weight", (s.n_head_kv * head, s.n_embd), True
        yield f"{b}.attn_v.weight", (s.n_head_kv * head, s.n_embd), True
        if s.qkv_bias:
            yield f"{b}.attn_q.bias", (s.n_head * head,), False
            yield f"{b}.attn_k.bias", (s.n_head_kv * head,), False
            yield f"{b}.attn_v.bias", (s.n_head_kv * head,), False
        yield f"{b}.attn_output.weight", (s.n_embd, s.n_head * head), True
        yield f"{b}.ffn_norm.weight", (s.n_embd,), False
        yield f"{b}.ffn_gate.weight", (s.n_ff, s.n_embd), True
        yield f"{b}.ffn_up.weight", (s.n_ff, s.n_embd), True
        yield f"{b}.ffn_down.weight", (s.n_embd, s.n_ff), True
    yield "output_norm.weight", (s.n_embd,), False


class _Random:
    """Random tensor data, made fast: one pool of random bytes sliced at random offsets, since
    only the shapes (not the values) decide what a step costs."""

    def __init__(self, seed: int, std: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.std = std
        self._f16 = (self.rng.standard_normal(1 << 22, dtype=np.float32) * std).astype(np.float16)
        # Q8_0 blocks: scale * int8, with the scale chosen so the values have about `std`.
        scale = np.float16(std * 3 / 127)
        blocks = np.zeros(1 << 17, dtype=[("d", "<f2"), ("qs", "i1", _Q8_0_BLOCK)])
        blocks["d"] = scale
        blocks["qs"] = self.rng.integers(-127, 128, size=(len(blocks), _Q8_0_BLOCK), dtype=np.int8)
        self._q8 = blocks.view(np.uint8).reshape(len(blocks), 34)

    def _fill(self, pool: np.ndarray, n: int) -> np.ndarray:
        """n rows of the pool (values, or Q8_0 blocks), copied in runs from random offsets."""
        out = np.empty((n, *pool.shape[1:]), dtype=pool.dtype)
        done = 0
        while done < n:
            take = min(n - done, len(pool) // 2)
            start = int(self.rng.integers(0, len(pool) - take + 1))
            out[done : done + take] = pool[start : start + take]
            done += take
        return out

    def f16(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._fill(self._f16, int(np.prod(shape))).reshape(shape)

    def q8_0(self, shape: tuple[int, int]) -> np.ndarray:
        """Raw Q8_0 bytes of a rows x cols matrix, whole blocks only (every scale is real)."""
        rows, cols = shape
        blocks = self._fill(self._q8, rows * cols // _Q8_0_BLOCK)
        return blocks.reshape(rows, cols // _Q8_0_BLOCK * 34)


def write(
    name: str, out: Path, *, wtype: str = "f16", tokenizer: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """Write the synthetic model; returns what was written (sizes, tensor count, seconds)."""
    import gguf

    shape = SHAPES[name]
    if tokenizer is None:
        from troop.engine.models import resolve_model

        tokenizer = resolve_model(None).path
    t0 = time.perf_counter()
    tok = tokenizer_fields(tokenizer)
    n_vocab = shape.n_vocab or len(tok["tokenizer.ggml.tokens"][0])
    tok = _padded(tok, n_vocab)
    if wtype == "q8_0" and (shape.n_embd % _Q8_0_BLOCK or shape.n_ff % _Q8_0_BLOCK):
        raise SystemExit(f"{name}: Q8_0 needs row sizes that are multiples of {_Q8_0_BLOCK}")

    w = gguf.GGUFWriter(out, shape.arch)
    w.add_name(f"synthetic {name}")
    w.add_description(f"random weights at {shape.about}; {COST_NOTE}")
    w.add_context_length(shape.n_ctx_train)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_rope_dimension_count(shape.n_embd // shape.n_head)
    w.add_rope_freq_base(shape.rope_theta)
    w.add_layer_norm_rms_eps(shape.rms_eps)
    w.add_vocab_size(n_vocab)
    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if wtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    w.add_file_type(int(ftype))
    for key, (value, vtype) in tok.items():
        if isinstance(value, list):
            w.add_key_value(key, value, gguf.GGUFValueType.ARRAY, sub_type=vtype)
        else:
            w.add_key_value(key, value, vtype)

    rnd = _Random(seed, std=0.02)
    tensors = list(tensor_shapes(shape, n_vocab))
    for tname, tshape, matrix in tensors:
        if not matrix:
            w.add_tensor_info(tname, tshape, np.dtype(np.float32), 4 * int(np.prod(tshape)))
        elif wtype == "q8_0":
            rows, cols = tshape
            nbytes = rows * cols // _Q8_0_BLOCK * 34
            w.add_tensor_info(
                tname,
                (rows, cols // _Q8_0_BLOCK * 34),
                np.dtype(np.uint8),
                nbytes,
                raw_dtype=gguf.GGMLQuantizationType.Q8_0,
            )
        else:
            w.add_tensor_info(tname, tshape, np.dtype(np.float16), 2 * int(np.prod(tshape)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    n_params = 0
    for tname, tshape, matrix in tensors:
        n_params += int(np.prod(tshape))
        if not matrix:
            # Norm weights of one keep activations in range; biases are small noise.
            data = (
                np.ones(tshape, dtype=np.float32)
                if tname.endswith("norm.weight")
                else rnd.f16(tshape).astype(np.float32)
            )
        elif wtype == "q8_0":
            data = rnd.q8_0((tshape[0], tshape[1]))
        else:
            data = rnd.f16(tshape)
        w.write_tensor_data(data)
    w.close()
    return {
        "path": str(out),
        "shape": name,
        "type": wtype,
        "n_vocab": n_vocab,
        "n_params": n_params,
        "tensors": len(tensors),
        "bytes": out.stat().st_size,
        "seconds": time.perf_counter() - t0,
    }


def write_tokenizer(out: Path, tokenizer: Path | None = None) -> int:
    """A GGUF holding only a model's tokenizer keys (no tensors): small enough to carry where
    the model itself is not, and read back by --tokenizer. Returns its size, bytes."""
    import gguf

    if tokenizer is None:
        from troop.engine.models import resolve_model

        tokenizer = resolve_model(None).path
    w = gguf.GGUFWriter(out, "llama")
    for key, (value, vtype) in tokenizer_fields(tokenizer).items():
        if isinstance(value, list):
            w.add_key_value(key, value, gguf.GGUFValueType.ARRAY, sub_type=vtype)
        else:
            w.add_key_value(key, value, vtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("shape", nargs="?", choices=sorted(SHAPES), help="which shape to write")
    ap.add_argument(
        "--type",
        dest="wtype",
        choices=("f16", "q8_0"),
        default="f16",
        help="weight type of the matrices (norms stay F32)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        help="the GGUF file to write (default: synthetic-SHAPE-TYPE.gguf in the current folder)",
    )
    ap.add_argument(
        "--tokenizer",
        type=Path,
        help="GGUF whose tokenizer to carry (default: troop's default model)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--list", action="store_true", help="list the shapes and exit")
    ap.add_argument(
        "--tokenizer-only",
        type=Path,
        metavar="OUT",
        help="write only the tokenizer (no weights) to OUT and exit",
    )
    args = ap.parse_args(argv)
    if args.tokenizer_only:
        size = write_tokenizer(args.tokenizer_only, args.tokenizer)
        print(f"wrote {args.tokenizer_only}: the tokenizer only, {size / 2**20:.1f} MiB")
        return 0
    if args.list or args.shape is None:
        for name, s in SHAPES.items():
            print(
                f"{name:>13}: {s.arch}, {s.n_layer} layers, d={s.n_embd}, ffn={s.n_ff}, "
                f"heads {s.n_head}/{s.n_head_kv}, vocab {s.n_vocab or 'tokenizer'}: {s.about}"
            )
        return 0
    out = args.out or Path(f"synthetic-{args.shape}-{args.wtype}.gguf")
    info = write(args.shape, out, wtype=args.wtype, tokenizer=args.tokenizer, seed=args.seed)
    print(
        f"wrote {info['path']}: {args.shape} {args.wtype}, {info['n_params'] / 1e6:.1f}M "
        f"parameters, vocab {info['n_vocab']}, {info['bytes'] / 2**20:.1f} MiB in "
        f"{info['seconds']:.1f} s"
    )
    print(f"note: {COST_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
