#!/usr/bin/env bash
# Builds pagefs and runs the whole test suite: engine tests in parallel, the
# mount tests (real FUSE mounts) one at a time. Exits non-zero on any
# failure. Honours BUILD_DIR and SANITIZE=1 / SANITIZE=thread like build.sh.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

case "${SANITIZE:-0}" in
  1 | address) build_dir=${BUILD_DIR:-$root/build-asan} ;;
  thread) build_dir=${BUILD_DIR:-$root/build-tsan} ;;
  *) build_dir=${BUILD_DIR:-$root/build} ;;
esac
export BUILD_DIR=$build_dir

if ! "$root/scripts/build.sh"; then
  echo "test.sh: FAILED (build)"
  exit 1
fi

# The mount tests carry RUN_SERIAL, so ctest runs each of them alone while the
# engine tests share the cores.
status=0
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$(nproc)" || status=1

# The corrupt-image fuzzer's fixed-seed smoke run under AddressSanitizer and
# UBSan (ctest's fuzz.image_smoke runs the same images in the build above):
# 200 damaged images, in a build of just the fuzzer in ./build-asan-fuzz.
# PAGEFS_FUZZ_SMOKE=0 skips it; scripts/fuzz.sh runs the long version.
if [[ ${PAGEFS_FUZZ_SMOKE:-1} != 0 && ${SANITIZE:-0} == 0 ]]; then
  echo "test.sh: corrupt-image fuzzer smoke run under ASan + UBSan"
  BUILD_DIR=$root/build-asan-fuzz PAGEFS_SEED=20261121 PAGEFS_FUZZ_IMAGES=200 \
    "$root/scripts/fuzz.sh" 600 >"$build_dir/fuzz-asan-smoke.log" 2>&1 || status=1
  tail -30 "$build_dir/fuzz-asan-smoke.log"
fi

if ((status == 0)); then
  echo "test.sh: all tests passed ($build_dir)"
else
  echo "test.sh: FAILED, see the output above ($build_dir)"
fi
exit "$status"
