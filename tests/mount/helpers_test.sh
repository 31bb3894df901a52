#!/usr/bin/env bash
# mount(8), umount(8) and fstab with the pagefs helpers (fs/mount_helpers.h):
# `mount -t pagefs`, an fstab line through `mount -T FSTAB`, and an umount
# that returns only once the daemon has written everything home, checked by
# running fsck.pagefs (which takes the device's lock) right after it.
#
# mount(8) looks for helpers in /sbin only, so the test runs in a private
# mount namespace whose /usr/sbin (/sbin on Debian) is a tmpfs of links to
# the real one plus the built helpers; nothing outside the namespace changes.
# Usage: helpers_test.sh BUILD_DIR   (needs root; exit 77 skips)
set -euo pipefail
build=$(cd "$1" && pwd)
if [[ $(id -u) -ne 0 || ! -e /dev/fuse ]] || ! command -v unshare >/dev/null; then
  echo "skipped: needs root, /dev/fuse and unshare"
  exit 77
fi
if [[ "${PAGEFS_IN_NAMESPACE:-}" != 1 ]]; then
  PAGEFS_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi

dir=$(mktemp -d /tmp/pagefs-helpers-XXXXXX)
cleanup() {
  umount -l "$dir/mnt" 2>/dev/null || true
  umount -l /usr/sbin 2>/dev/null || true
  umount -l "$dir/sbin" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/sbin" "$dir/mnt"
mount -t tmpfs tmpfs "$dir/sbin"
for f in /usr/sbin/*; do ln -s "$f" "$dir/sbin/"; done
for h in mount.pagefs umount.pagefs umount.fuse.pagefs; do ln -s "$build/pagefs" "$dir/sbin/$h"; done
mount --bind "$dir/sbin" /usr/sbin

fail() { echo "FAIL: $*"; exit 1; }
img=$dir/img
"$build/mkfs.pagefs" -q -s 512M "$img"

# mount -t pagefs, a large unsynced write, umount, fsck at once.
mount -t pagefs -o cache_size=384M "$img" "$dir/mnt" || fail "mount -t pagefs"
grep -q " $dir/mnt .* fuse.pagefs $img " /proc/self/mountinfo || fail "not in mountinfo"
dd if=/dev/urandom of="$dir/mnt/f" bs=1M count=256 status=none
sum=$(md5sum <"$dir/mnt/f")
umount "$dir/mnt" || fail "umount"
"$build/fsck.pagefs" -n "$img" || fail "fsck right after umount (the daemon was still running?)"

# An fstab line, with the x-systemd options the man page suggests for boot.
cat >"$dir/fstab" <<EOT
$img $dir/mnt pagefs cache_size=64M,nofail,x-systemd.requires-mounts-for=$dir,x-systemd.mount-timeout=5min 0 0
EOT
mount -T "$dir/fstab" "$dir/mnt" || fail "mount from fstab"
[[ $(md5sum <"$dir/mnt/f") == "$sum" ]] || fail "file changed across the remount"
echo more >"$dir/mnt/g"
umount "$dir/mnt" || fail "umount of the fstab mount"
"$build/fsck.pagefs" -n "$img" || fail "fsck after the fstab mount"

# A busy mount point is refused and the filesystem stays mounted.
mount -t pagefs "$img" "$dir/mnt"
exec 9<"$dir/mnt/g"
if umount "$dir/mnt" 2>/dev/null; then fail "umount of a busy mount succeeded"; fi
exec 9<&-
umount "$dir/mnt"
"$build/fsck.pagefs" -n "$img" >/dev/null || fail "fsck at the end"
echo "helpers: 1 passed, 0 failed"
