#!/usr/bin/env bash
# Installs dependencies and builds pagefs.
#   BUILD_DIR=dir   build directory (default ./build, or ./build-asan with SANITIZE=1)
#   SANITIZE=1      AddressSanitizer + UndefinedBehaviorSanitizer build
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/deps.sh"

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ "${SANITIZE:-0}" == 1 ]]; then
  build_dir=${BUILD_DIR:-$root/build-asan}
  cmake_args+=(-DPAGEFS_SANITIZE=ON)
else
  build_dir=${BUILD_DIR:-$root/build}
  cmake_args+=(-DPAGEFS_SANITIZE=OFF)
fi

cmake -S "$root" -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j "$(nproc)"
