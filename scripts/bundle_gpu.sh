#!/bin/bash
# scripts/bundle_gpu.sh — builds the GPU binaries here and packs them to run on another x86-64 Linux machine that
# has a GPU, its driver and the CUDA 13 libraries but none of dice's other dependencies (HDF5, OpenBLAS, MPI,
# libpng, libjpeg, cJSON): a GPU box with only PyTorch installed, say.
#
#   scripts/bundle_gpu.sh OUT_DIR [CUDA_ARCH]        (CUDA_ARCH: 90 by default, H100/H200)
#
# Writes OUT_DIR/dice-gpu.tar.xz (build/dice, the GPU test suite and the benchmarks, stripped of debug info,
# plus every shared library they need except glibc's, libstdc++, libgcc and the CUDA libraries) and
# OUT_DIR/run.sh. On the GPU machine, from a checkout of the same commit (the tests read tests/golden):
#   OUT_DIR/run.sh build/gpu/test_dice --cuda-only        # make test-gpu
#   OUT_DIR/run.sh build/bench/unet --iters 10
#   OUT_DIR/run.sh build/dice train-base --device cuda ...
# run.sh unpacks once (with Python's tarfile: no xz needed there; commands started at once do not race), puts
# the bundled libraries, the CUDA toolkit's and the cuDNN / NCCL of PyTorch's nvidia wheels (when present) on
# LD_LIBRARY_PATH, sets DICE_BIN and runs the command from the repository root. The build goes to build-gpu-bundle/, so build/ is untouched.
set -euo pipefail
out=${1:?usage: scripts/bundle_gpu.sh OUT_DIR [CUDA_ARCH]}
arch=${2:-90}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
B=build-gpu-bundle
make -j"$(nproc)" B=$B CUDA_ARCH="$arch" $B/dice $B/gpu/test_dice bench >/dev/null
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/build/gpu" "$stage/build/bench" "$stage/lib"
cp $B/dice "$stage/build/"
cp $B/gpu/test_dice "$stage/build/gpu/"
for b in $B/bench/*; do [[ -x $b && ! $b =~ \.d$ ]] && cp "$b" "$stage/build/bench/"; done
strip --strip-debug "$stage/build/dice" "$stage/build/gpu/test_dice" "$stage"/build/bench/*
# Every library the binaries load, except the C runtime and CUDA's own (the GPU machine has matching ones).
ldd "$stage/build/dice" "$stage/build/gpu/test_dice" "$stage"/build/bench/* | awk '$3 ~ /^\// {print $3}' | sort -u |
    while read -r lib; do
        case $(basename "$lib") in
            libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
            libcuda*|libcudart*|libcublas*|libcudnn*|libnccl*) ;;
            *) cp -L "$lib" "$stage/lib/" ;;
        esac
    done
(cd "$stage" && XZ_OPT="-6 -T0" tar cJf "$root/$out/dice-gpu.tar.xz" .)
cat > "$out/run.sh" <<'RUN'
#!/bin/bash
# Runs a bundled dice binary from the repository root (see scripts/bundle_gpu.sh).
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
while [ ! -f Makefile ] && [ "$PWD" != / ]; do cd ..; done
x=$here/unpacked
if [ ! -d "$x" ]; then  # unpack beside it, then rename: several commands started at once must not race
    tmp=$(mktemp -d "$here/unpacking.XXXXXX")
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$here/dice-gpu.tar.xz" "$tmp"
    mv -T "$tmp" "$x" 2>/dev/null || rm -rf "$tmp"  # another command unpacked first
fi
sp=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH=$x/lib:/usr/local/cuda/lib64:$sp/nvidia/cudnn/lib:$sp/nvidia/nccl/lib:${LD_LIBRARY_PATH:-}
export DICE_BIN=$x/build/dice
bin=$1
shift
exec "$x/$bin" "$@"
RUN
chmod +x "$out/run.sh"
echo "bundle: $out/dice-gpu.tar.xz ($(du -h "$out/dice-gpu.tar.xz" | cut -f1)), run with $out/run.sh BINARY ARGS"
