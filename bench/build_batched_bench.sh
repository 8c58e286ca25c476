#!/usr/bin/env bash
# Builds llama.cpp's own `llama-batched-bench` from the sources vendored in the sdist of the
# installed llama-cpp-python, so the C++ baseline runs the very llama.cpp troop links against.
#
# Usage: bench/build_batched_bench.sh        (prints the binary's path on its last line)
# Env:   JOBS=N (default 2), BENCH_BUILD=DIR (default bench/_build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${BENCH_BUILD:-$here/_build}"
jobs="${JOBS:-2}"
version="$(python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
sdist_dir="$build/sdist"
src="$sdist_dir/llama_cpp_python-$version"
tarball="$sdist_dir/llama_cpp_python-$version.tar.gz"

mkdir -p "$sdist_dir"
# An extraction left by an earlier run is reused: the download alone prepares pyproject metadata.
if [[ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]]; then
    if [[ ! -f "$tarball" ]]; then
        pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$sdist_dir"
    fi
    tar -xzf "$tarball" -C "$sdist_dir"
fi

generator=()
if command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi

# LLAMA_CURL is deprecated in this llama.cpp (a warning only) and is not passed; OpenSSL is
# only for HTTPS model downloads, which a benchmark never does. TOOLS must be on because
# batched-bench lives in tools/, and APP (the unified binary) would build every tool.
cmake -S "$src/vendor/llama.cpp" -B "$build/llama" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF >&2
cmake --build "$build/llama" --target llama-batched-bench -j "$jobs" >&2

binary="$build/llama/bin/llama-batched-bench"
if [[ ! -x "$binary" ]]; then
    echo "build finished but $binary is missing" >&2
    exit 1
fi
echo "$binary"
