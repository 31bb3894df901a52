#!/usr/bin/env bash
# Builds the Debian package (and its -dbgsym) in BUILD_DIR (default
# ./build-deb, configured for /usr) and runs lintian on both.
#   scripts/package.sh            -> build-deb/pagefs_VERSION_ARCH.deb
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build-deb}
"$root/scripts/deps.sh"
for pkg in dpkg-dev lintian; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends "$pkg"
done
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INSTALL_PREFIX=/usr -DPAGEFS_TESTS=OFF -DPAGEFS_BENCHMARKS=OFF
cmake --build "$build_dir" -j "$(nproc)"
(cd "$build_dir" && cpack --config CPackConfig.cmake)
debs=("$build_dir"/pagefs*.deb)
echo "packages: ${debs[*]}"
debs+=("$build_dir"/pagefs*.ddeb)
lintian --no-tag-display-limit "${debs[@]}" || true
