#!/usr/bin/env bash
# Installs the Debian 12 packages pagefs needs to build, test and run.
# Runs apt-get only when something is missing; safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libfuse3-dev fuse3 liburing-dev libzstd-dev libisal-dev libmount-dev clang-format
  scdoc       # man pages (docs/man/*.scd)
  python3-prometheus-client  # checks pagefs stats --prometheus where promtool is missing
  libgtest-dev libbenchmark-dev
  util-linux  # fincore, flock
  attr        # getfattr, setfattr
  acl         # getfacl, setfacl, used by the ACL mount tests
  e2fsprogs   # mkfs.ext4, used by the mount tests
  python3     # its sqlite3 module, used by the mount tests
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "deps.sh: missing packages and neither root nor sudo available; install them with:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# FUSE needs /dev/fuse; load the module if it is not there (best effort: a
# container may not allow it, and the mount tests will then say so).
if [[ ! -e /dev/fuse ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    modprobe fuse 2>/dev/null || true
  elif command -v sudo >/dev/null 2>&1; then
    sudo modprobe fuse 2>/dev/null || true
  fi
  [[ -e /dev/fuse ]] || echo "deps.sh: warning: /dev/fuse is missing; mounting will not work" >&2
fi
