#!/usr/bin/env bash
# Builds the corrupt-image fuzzer with AddressSanitizer and UBSan and runs it
# for a long time (an hour by default) with a new seed, printing the seed, every
# failing image with its reproducer, and a summary at the end.
#   scripts/fuzz.sh [SECONDS]
#   BUILD_DIR=dir     build directory (default ./build-asan)
#   PAGEFS_SEED=n     a fixed seed instead of a random one
#   PAGEFS_FUZZ_IMAGES, PAGEFS_FUZZ_TIMEOUT   see tests/fuzz/image_fuzzer.cc
# Exits 0 when no image failed, 1 when one did.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${BUILD_DIR:-$root/build-asan}
seconds=${1:-${PAGEFS_FUZZ_SECONDS:-3600}}

"$root/scripts/deps.sh" >/dev/null
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEFS_SANITIZE=ON
cmake --build "$build_dir" --target image_fuzzer -j "$(nproc)"

# The fuzzer forks a child per image: a sanitizer report ends only that child.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
PAGEFS_SEED=${PAGEFS_SEED:-random} PAGEFS_FUZZ_SECONDS=$seconds \
  exec "$build_dir/tests/image_fuzzer"
