#!/usr/bin/env bash
# A user formats, mounts and writes to an image of their own, as the README
# shows: mkfs.pagefs run by that user gives them the root directory, pagefs
# mounts through fusermount3, the user writes, fusermount3 -u unmounts.
# Also: -E root_owner=UID:GID, and a root mount with allow_other that the
# user writes into.
#
# Debian opens /dev/fuse to every user; where it is not (a bare container),
# the test runs in a private mount namespace with a /dev/fuse of mode 0666
# bound over it, so nothing outside the test changes.
# Usage: user_test.sh BUILD_DIR   (needs root and setpriv; exit 77 skips)
set -euo pipefail
build=$(cd "$1" && pwd)
if [[ $(id -u) -ne 0 || ! -e /dev/fuse ]] || ! command -v setpriv >/dev/null ||
  ! command -v fusermount3 >/dev/null; then
  echo "skipped: needs root, /dev/fuse, setpriv and fusermount3"
  exit 77
fi
if [[ "${PAGEFS_IN_NAMESPACE:-}" != 1 ]]; then
  PAGEFS_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi

uid=65534 gid=65534 # nobody
as_user() { setpriv --reuid=$uid --regid=$gid --clear-groups -- "$@"; }
dir=$(mktemp -d /tmp/pagefs-user-XXXXXX)
chmod 755 "$dir"
cleanup() {
  fusermount3 -u -z "$dir/home/mnt" 2>/dev/null || true
  umount -l "$dir/mnt" 2>/dev/null || true
  umount -l /dev/fuse 2>/dev/null || true
  umount -l "$dir/dev" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

if ! as_user test -r /dev/fuse -a -w /dev/fuse; then
  mkdir "$dir/dev"
  mount -t tmpfs -o mode=755 tmpfs "$dir/dev"
  mknod -m 666 "$dir/dev/fuse" c 10 229
  mount --bind "$dir/dev/fuse" /dev/fuse
fi

# The whole user flow, as the user.
mkdir -p "$dir/home/mnt"
chown -R $uid:$gid "$dir/home"
img=$dir/home/img
as_user "$build/mkfs.pagefs" -q -s 64M "$img" || fail "mkfs as the user"
as_user "$build/pagefs" "$img" "$dir/home/mnt" || fail "mount as the user"
[[ $(as_user stat -c %u:%g "$dir/home/mnt") == "$uid:$gid" ]] || fail "root directory not the user's"
as_user sh -c "echo hello > '$dir/home/mnt/file' && mkdir '$dir/home/mnt/sub'" ||
  fail "the user cannot write in their mount"
as_user fusermount3 -u "$dir/home/mnt" || fail "fusermount3 -u"
flock "$img" true
"$build/fsck.pagefs" -n "$img" >/dev/null || fail "fsck"

# root formats for the user with -E root_owner, mounts with allow_other.
mkdir "$dir/mnt"
"$build/mkfs.pagefs" -q -s 64M -E root_owner=$uid:$gid "$dir/img2"
"$build/pagefs" "$dir/img2" "$dir/mnt" -o allow_other
[[ $(stat -c %u:%g "$dir/mnt") == "$uid:$gid" ]] || fail "-E root_owner"
as_user sh -c "echo hi > '$dir/mnt/f'" || fail "the user cannot write in the allow_other mount"
[[ $(stat -c %u "$dir/mnt/f") == "$uid" ]] || fail "the file is not the user's"
fusermount3 -u "$dir/mnt"
flock "$dir/img2" true
"$build/fsck.pagefs" -n "$dir/img2" >/dev/null || fail "fsck of the second image"
echo "user: 1 passed, 0 failed"
