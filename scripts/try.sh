#!/usr/bin/env bash
# Builds pagefs, formats ./pagefs.img (2 GiB) if it does not exist, and mounts
# it on ./mnt so that you can try it. Honours BUILD_DIR like build.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${BUILD_DIR:-$root/build}
export BUILD_DIR=$build_dir
"$root/scripts/build.sh"

image=$root/pagefs.img
mnt=$root/mnt

if [[ ! -e "$image" ]]; then
  "$build_dir/mkfs.pagefs" -s 2G "$image"
fi
mkdir -p "$mnt"

if mountpoint -q "$mnt"; then
  echo "try.sh: $mnt is already mounted"
else
  "$build_dir/pagefs" "$image" "$mnt"
fi

rel_build=$(realpath --relative-to="$root" "$build_dir")
cat <<MSG

pagefs is mounted on ./mnt (image ./pagefs.img).

  use it:        cd mnt
  statistics:    $rel_build/pagefs --stats ./mnt
                 getfattr -n user.pagefs.stats ./mnt
  unmount:       fusermount3 -u ./mnt
  check:         $rel_build/fsck.pagefs -n pagefs.img   (after unmounting; wait for the
                 daemon to finish with: flock pagefs.img true)
MSG
