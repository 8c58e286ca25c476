#!/usr/bin/env bash
# Builds the CUDA wheel of the installed llama-cpp-python version for one GPU architecture,
# printing the wheel's path and size on its last line.
#
# A CUDA toolkit without cuBLAS (nvcc and the runtime only, as on troop's build machines) gets
# cuBLAS from PyPI's nvidia-cublas wheel: a toolkit root of symlinks joins the toolkit's
# folders with that wheel's include/ and lib/, and CMake is pointed at it. GGML_CUDA_NO_VMM
# keeps the build from linking the driver library (libcuda.so), which such machines lack.
#
# Usage: bench/gpu/build_cuda_wheel.sh [--arch 90] [--jobs N] [--out DIR] [--configure-only]
#   --arch           CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   --jobs           parallel compile jobs (default: all cores; a whole wheel is over an hour
#                    on 2 cores, minutes on 16)
#   --out            where the wheel goes (default bench/_build/cuda/wheel)
#   --configure-only configure with CMake and compile two ggml-cuda objects, then stop: checks
#                    the recipe in minutes
# Env: CUDA_HOME (default: the folder above nvcc's bin/), BUILD (default bench/_build/cuda)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
arch=90
jobs="$(nproc)"
build="${BUILD:-$here/../_build/cuda}"
out=""
configure_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --configure-only) configure_only=1; shift ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
mkdir -p "$build"
build="$(cd "$build" && pwd)"
out="${out:-$build/wheel}"
mkdir -p "$out"

# The toolkit: CUDA_HOME, else the real folder of nvcc (a wrapper script may sit in
# /usr/local/bin, so the path inside it is followed too).
if [[ -z "${CUDA_HOME:-}" ]]; then
    nvcc_path="$(command -v nvcc || true)"
    [[ -n "$nvcc_path" ]] || { echo "no nvcc on PATH and no CUDA_HOME" >&2; exit 1; }
    real="$(grep -o '/[^ "]*/bin/nvcc' "$nvcc_path" 2>/dev/null | head -1 || true)"
    CUDA_HOME="$(dirname "$(dirname "$(readlink -f "${real:-$nvcc_path}")")")"
fi
cuda_major="$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
echo "CUDA toolkit $CUDA_HOME (CUDA $cuda_major), architecture $arch, $jobs jobs" >&2

toolkit="$CUDA_HOME"
if ! ls "$CUDA_HOME"/lib64/libcublas.so* "$CUDA_HOME"/targets/*/lib/libcublas.so* \
        >/dev/null 2>&1; then
    # cuBLAS from PyPI, for the toolkit's CUDA major version.
    cublas="$build/nvidia-cublas"
    if [[ ! -d "$cublas/nvidia" ]]; then
        python -m pip install --quiet --no-deps --target "$cublas" \
            "nvidia-cublas>=$cuda_major,<$((cuda_major + 1))" >&2
    fi
    lib="$(dirname "$(find "$cublas" -name 'libcublas.so.*' | head -1)")"
    inc="$(dirname "$(find "$cublas" -name 'cublas_v2.h' | head -1)")"
    toolkit="$build/toolkit"
    rm -rf "$toolkit"
    mkdir -p "$toolkit/include" "$toolkit/lib64"
    # Everything of the toolkit as is (nvcc finds nvvm/ and targets/ beside its bin/) ...
    for entry in "$CUDA_HOME"/*; do
        name="$(basename "$entry")"
        [[ "$name" == include || "$name" == lib64 || "$name" == lib ]] && continue
        ln -s "$entry" "$toolkit/$name"
    done
    # ... and include/ and lib64/ joined with the wheel's.
    for dir in "$CUDA_HOME/include" "$inc"; do
        for f in "$dir"/*; do ln -sf "$f" "$toolkit/include/"; done
    done
    for dir in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$lib"; do
        [[ -d "$dir" ]] || continue
        for f in "$dir"/*; do ln -sf "$f" "$toolkit/lib64/"; done
    done
    ln -sfn lib64 "$toolkit/lib"
    # The wheel ships versioned libraries only; CMake links the unversioned names.
    for so in "$lib"/libcublas*.so.*; do
        base="$(basename "$so")"
        ln -sf "$so" "$toolkit/lib64/${base%%.so.*}.so"
    done
    echo "cuBLAS from nvidia-cublas in $lib; toolkit root of symlinks $toolkit" >&2
    echo "at run time: export LD_LIBRARY_PATH=$lib:\$LD_LIBRARY_PATH" >&2
fi

# The sources of the installed version, as bench/build_batched_bench.sh gets them.
version="$(python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
sdist_dir="$build/sdist"
src="$sdist_dir/llama_cpp_python-$version"
tarball="$sdist_dir/llama_cpp_python-$version.tar.gz"
mkdir -p "$sdist_dir"
if [[ ! -f "$tarball" ]]; then
    python -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" \
        -d "$sdist_dir" >&2
fi
[[ -f "$src/CMakeLists.txt" ]] || tar -xzf "$tarball" -C "$sdist_dir"

cmake_args=(
    -DGGML_CUDA=on
    "-DCUDAToolkit_ROOT=$toolkit"
    "-DCMAKE_CUDA_COMPILER=$toolkit/bin/nvcc"
    -DGGML_CUDA_NO_VMM=ON
    "-DCMAKE_CUDA_ARCHITECTURES=$arch"
    # The GPU does the work; AVX-512/AMX kernels of this machine would not run everywhere.
    -DGGML_NATIVE=OFF
)

if [[ "$configure_only" == 1 ]]; then
    probe="$build/configure-$arch"
    cmake -S "$src" -B "$probe" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}" >&2
    # Two small ggml-cuda objects: nvcc, the architecture and cuBLAS's headers all work.
    mapfile -t objects < <(ninja -C "$probe" -t targets all \
        | sed -n 's/^\(.*ggml-cuda\.dir\/\(arange\|fill\|clamp\|scale\)\.cu\.o\):.*/\1/p' | head -2)
    [[ ${#objects[@]} -gt 0 ]] || { echo "no ggml-cuda objects among the targets" >&2; exit 1; }
    ninja -C "$probe" -j "$jobs" "${objects[@]}" >&2
    for o in "${objects[@]}"; do ls -la "$probe/$o" >&2; done
    echo "configured $probe and compiled ${#objects[@]} ggml-cuda objects"
    exit 0
fi

export CMAKE_ARGS="${cmake_args[*]}"
export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
python -m pip wheel --no-deps --wheel-dir "$out" "$tarball" >&2
wheel="$(ls -t "$out"/llama_cpp_python-"$version"-*.whl | head -1)"
echo "$wheel $(du -m "$wheel" | cut -f1) MiB"
