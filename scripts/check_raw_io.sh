#!/usr/bin/env bash
# Fails if code outside the device files does its own device I/O: every page
# must go through the Device interface (engine/file_device.cc), so that it is
# O_DIRECT, io_uring-batched and checksummed. Test code is exempt.
set -euo pipefail
cd "$(dirname "$0")/.."
calls='(pread|pwrite|preadv|pwritev|pread64|pwrite64|fsync|fdatasync|sync_file_range|io_uring_submit)'
# A call of the libc function: not a method (.x( ->x( Class::x() and not a declaration.
pattern="(^|[^A-Za-z0-9_.>:]|[^A-Za-z0-9_]::)${calls}[[:space:]]*\\("
hits=$(grep -nE "$pattern" engine/*.cc engine/*.h fs/*.cc fs/*.h mkfs/*.cc fsck/*.cc fsck/*.h 2>/dev/null |
  grep -vE '^engine/file_device\.(cc|h):' |
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' |
  grep -vE "(Status|void|bool|int)[[:space:]]+${calls}[[:space:]]*\\(" || true)
if [ -n "$hits" ]; then
  echo "raw device I/O outside engine/file_device.cc (use the Device interface):"
  echo "$hits"
  exit 1
fi
echo "no raw device I/O outside the device files"
