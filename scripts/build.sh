#!/usr/bin/env bash
# Installs dependencies and builds pagefs.
#   BUILD_DIR=dir   build directory (default ./build, or ./build-asan with SANITIZE=1)
#   SANITIZE=1      AddressSanitizer + UndefinedBehaviorSanitizer build (./build-asan)
#   SANITIZE=thread ThreadSanitizer build (./build-tsan)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/deps.sh"

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
case "${SANITIZE:-0}" in
  1 | address)
    build_dir=${BUILD_DIR:-$root/build-asan}
    cmake_args+=(-DPAGEFS_SANITIZE=ON -DPAGEFS_TSAN=OFF)
    ;;
  thread)
    build_dir=${BUILD_DIR:-$root/build-tsan}
    cmake_args+=(-DPAGEFS_SANITIZE=OFF -DPAGEFS_TSAN=ON)
    ;;
  *)
    build_dir=${BUILD_DIR:-$root/build}
    cmake_args+=(-DPAGEFS_SANITIZE=OFF -DPAGEFS_TSAN=OFF)
    ;;
esac

cmake -S "$root" -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j "$(nproc)"
