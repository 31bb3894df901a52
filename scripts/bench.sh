#!/usr/bin/env bash
# Benchmarks pagefs against fuse2fs, kernel ext4 on a loop device, libfuse's
# passthrough_ll and fio on a raw image file, all on the same disk, and prints
# one Markdown table of medians with pagefs's ratio to each.
#
#   scripts/bench.sh            full run: 1 GiB files, 20,000 files, 30 s fio jobs, 2 rounds
#   scripts/bench.sh --quick    256 MiB files, 5,000 files, 5 s fio jobs, 1 round (< 3 min)
#   scripts/bench.sh --concurrency   only the concurrency section (scripts/bench/concurrency.sh):
#                               1-16 threads on their own files, and fsync latency under load,
#                               for pagefs, ext4 and passthrough_ll
#
# Options:
#   --quick             the small configuration above
#   --rounds N          rounds (each round runs every target once; even rounds run
#                       the targets in reverse order); the table shows medians
#   --targets "a b"     subset of: pagefs fuse2fs ext4 passthrough raw (default all)
#   --out FILE          also write the table (and the target check) to FILE
#   --no-build          do not run scripts/build.sh first
#   --isolation         run only the isolation benchmark (scripts/bench/isolation.sh):
#                       a cached reader alone and next to a page-cache stream, in one
#                       memory cgroup; pagefs, ext4 and fuse2fs (ISO_ROUNDS, default 3)
#   --no-isolation      skip it (a full run ends with it)
#   -h, --help
# Environment:
#   BUILD_DIR   pagefs build directory (default ./build); built with scripts/build.sh
#   BENCH_DIR   work directory on the disk under test (default ./bench-work); it is
#               removed at the end unless BENCH_KEEP=1 (logs and fio JSON are kept then)
#
# Needs root (loop mounts, /proc/sys/vm/drop_caches). Installs fio, fuse2fs,
# e2fsprogs and jq with apt-get when they are missing. Everything it mounts is
# unmounted and every process it starts is stopped on exit, also on failure.
# How the workloads are run, and why, is in docs/benchmarks.md.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# ---------------------------------------------------------------- options

quick=0
rounds=
targets_arg="pagefs fuse2fs ext4 passthrough raw"
out_file=
do_build=1
concurrency=0
isolation=1       # run the isolation section after the main table
only_isolation=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($# > 0)); do
  case $1 in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --targets) targets_arg=${2:?--targets needs a list}; shift ;;
    --out) out_file=${2:?--out needs a file}; shift ;;
    --no-build) do_build=0 ;;
    --concurrency) concurrency=1 ;;
    --isolation) only_isolation=1 ;;
    --no-isolation) isolation=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if ((quick)); then
  img_size=2G file_mb=256 nfiles=5000 runtime=5
  rounds=${rounds:-1}
else
  img_size=4G file_mb=1024 nfiles=20000 runtime=30
  rounds=${rounds:-2}
fi
if ((concurrency)); then
  [[ $targets_arg == "pagefs fuse2fs ext4 passthrough raw" ]] && targets_arg="pagefs ext4 passthrough"
  conc_runtime=${CONC_RUNTIME:-$( ((quick)) && echo 4 || echo 10)}
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds must be a positive number" >&2; exit 2; }
ndirs_many=100
cache_size=256M       # pagefs default, used for everything but random read
cache_size_small=64M  # pagefs cache for random read: the file is 4-16x larger
read -r -a targets <<<"$targets_arg"
for t in "${targets[@]}"; do
  case $t in pagefs | fuse2fs | ext4 | passthrough | raw) ;;
    *) echo "bench.sh: unknown target $t" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "bench.sh: needs root (loop mounts and /proc/sys/vm/drop_caches); run it with sudo" >&2
  exit 1
fi

build_dir=${BUILD_DIR:-$root/build}
work=${BENCH_DIR:-$root/bench-work}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- set-up

need=()
command -v fio >/dev/null || need+=(fio)
command -v fuse2fs >/dev/null || need+=(fuse2fs)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v jq >/dev/null || need+=(jq)
command -v fincore >/dev/null || need+=(util-linux)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]} > 0)); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if ((do_build)); then
  log "building pagefs in $build_dir"
  BUILD_DIR=$build_dir "$root/scripts/build.sh" >"${TMPDIR:-/tmp}/pagefs-bench-build.log" 2>&1 ||
    { tail -20 "${TMPDIR:-/tmp}/pagefs-bench-build.log" >&2; die "build failed"; }
fi
[[ -x $build_dir/pagefs && -x $build_dir/mkfs.pagefs ]] || die "no pagefs build in $build_dir"
[[ -w /proc/sys/vm/drop_caches ]] || die "/proc/sys/vm/drop_caches is not writable"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing"
# passthrough_ll keeps an O_PATH descriptor open for every inode the kernel knows, so
# 20,000 files need more than the usual limit; raise it for every daemon alike, as far
# as we may. metabench also drops the dentry/inode caches (clock stopped) every 5,000 files.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export METABENCH_DROP_EVERY=5000

# State for the cleanup trap: the mount points we mounted and the daemons we started.
mounted=()  # mount points
pids=()     # daemon pids (children of this shell)
work_made=0

cleanup() {
  local rc=$? m p
  trap - EXIT INT TERM
  set +e
  for m in "${mounted[@]}"; do
    if mountpoint -q "$m"; then
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    fi
  done
  [[ -n ${iso_cgroup:-} ]] && iso_remove_cgroup
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
  done
  if ((work_made)); then
    for p in "$work/pagefs.img" "$work/ext4.img"; do
      [[ -e $p ]] && flock "$p" true
    done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
      rm -rf --one-file-system "${work:?}/pagefs.img" "$work/ext4.img" "$work/raw.img" "$work/pt-src" "${work:?}/mnt"
      log "kept logs and fio output in $work"
    else
      rm -rf --one-file-system "${work:?}"
    fi
  fi
  ((rc == 0)) || log "failed (exit $rc); everything mounted was unmounted"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -e $work ]]; then
  [[ -z $(ls -A "$work") || -e $work/.pagefs-bench ]] ||
    die "$work exists and was not made by bench.sh; set BENCH_DIR to another directory"
  # Left over from a run that was killed: make sure nothing is still mounted in it.
  for m in "$work"/mnt/*; do
    [[ -d $m ]] && mountpoint -q "$m" && die "$m is still mounted (from an earlier run?); unmount it first"
  done
fi
mkdir -p "$work"/{mnt,logs,tools}
touch "$work/.pagefs-bench"
work_made=1
results=$work/results.txt
: >"$results"

# The filesystem (and disk) that holds the images and passthrough_ll's source directory.
disk_desc=$(findmnt -n -o SOURCE,FSTYPE -T "$work" | tr -s ' ')
avail_kb=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
img_kb=$(( ${img_size%G} * 1024 * 1024 ))
((avail_kb > 3 * img_kb + 1024 * 1024)) || die "need $((3 * img_kb / 1024 / 1024 + 1)) GiB free under $work"

# Tools built at bench time: the metadata helper and libfuse's passthrough_ll example.
log "compiling metabench and passthrough_ll"
cc -O2 -Wall -Wextra -o "$work/tools/metabench" "$root/scripts/bench/metabench.c"
examples=/usr/share/doc/libfuse3-dev/examples
[[ -f $examples/passthrough_ll.c ]] || die "$examples/passthrough_ll.c is missing (libfuse3-dev)"
cp "$examples/passthrough_ll.c" "$examples/passthrough_helpers.h" "$work/tools/"
# shellcheck disable=SC2046  # pkg-config output must split into words
gcc -O2 -Wall -o "$work/tools/passthrough_ll" "$work/tools/passthrough_ll.c" \
  $(pkg-config --cflags --libs fuse3) 2>"$work/logs/passthrough_ll-build.log" ||
  { cat "$work/logs/passthrough_ll-build.log" >&2; die "passthrough_ll does not build"; }

log "making include.tar from /usr/include"
tar -C /usr -cf "$work/include.tar" include
tree_files=$(tar -tf "$work/include.tar" | wc -l)

# ---------------------------------------------------------------- helpers

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
cached_kb() { awk '$1 == "Cached:" { print $2 }' /proc/meminfo; }
record() { echo "$round $1 $2 $3" >>"$results"; }  # target workload value

# Waits for a FUSE daemon (pid $1) to have mounted $2.
wait_mounted() {
  local i
  for ((i = 0; i < 300; i++)); do
    mountpoint -q "$2" && return 0
    kill -0 "$1" 2>/dev/null || die "daemon for $2 exited; see $work/logs"
    sleep 0.1
  done
  die "$2 was not mounted within 30 s"
}

# Peak RSS (VmHWM) of pid $1 in KiB, 0 if not available.
hwm_kb() {
  [[ -r /proc/$1/status ]] || { echo 0; return; }
  awk '$1 == "VmHWM:" { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status"
}

daemon_pid=       # FUSE daemon of the current target
peak_hwm_kb=0     # highest VmHWM of the current target's daemons, this round

note_hwm() {
  [[ -n $daemon_pid ]] || return 0
  local h
  h=$(hwm_kb "$daemon_pid")
  ((h > peak_hwm_kb)) && peak_hwm_kb=$h
  return 0
}

# Starts FUSE daemon "$@" (foreground) for mount point $mnt and waits for the mount.
start_daemon() {
  local name=$1; shift
  "$@" >>"$work/logs/$name.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  wait_mounted "$daemon_pid" "$mnt"
}

# Unmounts $mnt and waits for its daemon, if any, to exit.
unmount_target() {
  note_hwm
  umount "$mnt"
  if [[ -n $daemon_pid ]]; then
    wait "$daemon_pid" || log "warning: daemon $daemon_pid exited with status $?"
    daemon_pid=
  fi
}

mount_pagefs() {  # $1 = cache size
  start_daemon pagefs "$build_dir/pagefs" "$work/pagefs.img" "$mnt" -f -o "cache_size=$1"
}

# Sets up target $target: a fresh filesystem mounted on $mnt (raw: a preallocated file).
setup() {
  mnt=$work/mnt/$target
  mkdir -p "$mnt"
  daemon_pid=
  peak_hwm_kb=0
  case $target in
    pagefs)
      rm -f "$work/pagefs.img"
      "$build_dir/mkfs.pagefs" -q -s "$img_size" "$work/pagefs.img"
      mounted+=("$mnt")
      mount_pagefs "$cache_size"
      ;;
    fuse2fs | ext4)
      rm -f "$work/ext4.img"
      fallocate -l "$img_size" "$work/ext4.img"
      mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$work/ext4.img"
      mounted+=("$mnt")
      if [[ $target == fuse2fs ]]; then
        start_daemon fuse2fs fuse2fs "$work/ext4.img" "$mnt" -f
      else
        mount -o loop "$work/ext4.img" "$mnt"
      fi
      ;;
    passthrough)
      rm -rf "$work/pt-src"
      mkdir "$work/pt-src"
      mounted+=("$mnt")
      start_daemon passthrough_ll "$work/tools/passthrough_ll" -f -o "source=$work/pt-src" "$mnt"
      ;;
    raw)
      rm -f "$work/raw.img"
      fallocate -l "$img_size" "$work/raw.img"
      ;;
  esac
}

teardown() {
  if [[ $target != raw ]]; then
    unmount_target
    [[ $target == pagefs ]] && flock "$work/pagefs.img" true
    [[ $target == ext4 ]] || record "$target" rss_max $((peak_hwm_kb / 1024))
  fi
  rm -rf "$work/pt-src" "$work/raw.img"
}

# Makes the next job start cold. Kernel caches are dropped for every target; pagefs is
# also remounted (with cache size $1, default $cache_size) to empty its private cache.
cold() {
  if [[ $target == pagefs ]]; then
    unmount_target
    flock "$work/pagefs.img" true
    drop_caches
    mount_pagefs "${1:-$cache_size}"
  else
    drop_caches
  fi
}

# The file the fio jobs use, and the image whose pages we look for in the page cache.
fio_file() { if [[ $target == raw ]]; then echo "$work/raw.img"; else echo "$mnt/f"; fi; }
backing_file() {
  case $target in
    pagefs) echo "$work/pagefs.img" ;;
    fuse2fs | ext4) echo "$work/ext4.img" ;;
    passthrough) echo "$work/pt-src/f" ;;
    raw) echo "$work/raw.img" ;;
  esac
}
fincore_kb() { fincore -b -n -o RES "$1" 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1024 }'; }

# Runs fio job $1 with the given options on the target's file; prints the job's JSON path.
run_fio() {
  local name=$1; shift
  local json=$work/logs/fio-r$round-$target-$name.json
  fio --name="$name" --filename="$(fio_file)" --size="${file_mb}M" --fallocate=none \
    --output-format=json --output="$json" "$@" >&2 || die "fio $name on $target failed; see $json"
  echo "$json"
}

# fio's bandwidth (MB/s) or IOPS of direction $2 (read|write) from JSON file $1. fio counts
# the end_fsync in the job's runtime, so the figures include making the data durable.
fio_mbs() { jq -r --arg d "$2" '.jobs[0][$d].bw_bytes / 1e6' "$1"; }
fio_iops() { jq -r --arg d "$2" '.jobs[0][$d].iops' "$1"; }

# ---------------------------------------------------------------- workloads

# Page-cache use attributable to this target, in KiB (fincore, so that other work on the
# machine does not count): the file as seen on the mount plus the file(s) under it.
pcache_kb() {
  local kb
  kb=$(fincore_kb "$(backing_file)")
  [[ $target == raw ]] || kb=$((kb + $(fincore_kb "$mnt/f")))
  echo "$kb"
}

bench_sequential() {
  local direct=0 json c0 f0 c1 f1 grow_cached grow_fincore
  [[ $target == raw ]] && direct=1
  log "  $target: sequential write ${file_mb} MiB"
  drop_caches
  c0=$(cached_kb); f0=$(pcache_kb)
  json=$(run_fio seqwrite --rw=write --bs=1M --direct=$direct --end_fsync=1)
  record "$target" seqwrite "$(fio_mbs "$json" write)"
  grow_cached=$(($(cached_kb) - c0))
  grow_fincore=$(($(pcache_kb) - f0))
  note_hwm

  log "  $target: cold sequential read"
  cold
  c0=$(cached_kb); f0=$(pcache_kb)
  json=$(run_fio seqread --rw=read --bs=1M --direct=$direct)
  record "$target" seqread "$(fio_mbs "$json" read)"
  c1=$(($(cached_kb) - c0)); f1=$(($(pcache_kb) - f0))
  ((c1 > grow_cached)) && grow_cached=$c1
  ((f1 > grow_fincore)) && grow_fincore=$f1
  note_hwm
  ((grow_cached < 0)) && grow_cached=0
  ((grow_fincore < 0)) && grow_fincore=0
  if [[ $target != raw ]]; then
    record "$target" pcache_cached $((grow_cached / 1024))
    record "$target" pcache_fincore $((grow_fincore / 1024))
    [[ $target == ext4 ]] || record "$target" rss_seq $((peak_hwm_kb / 1024))
  fi
  return 0
}

bench_random() {
  local direct=1 json
  # pagefs: direct=0 -- with cache=private pagefs opens files FOPEN_DIRECT_IO, so every
  # read reaches its own (64M) cache; the others: direct=1, so reads are not served by
  # the kernel page cache (which would hold the whole file after a few seconds).
  [[ $target == pagefs ]] && direct=0
  log "  $target: 4 KiB random read"
  cold "$cache_size_small"
  json=$(run_fio randread --rw=randread --bs=4k --ioengine=io_uring --iodepth=16 \
    --direct=$direct --time_based --runtime="$runtime")
  record "$target" randread "$(fio_iops "$json" read)"
  note_hwm

  # Writes: buffered on every filesystem (direct=1 on raw), end_fsync counted in the time.
  direct=0
  [[ $target == raw ]] && direct=1
  log "  $target: 4 KiB random write"
  cold
  json=$(run_fio randwrite --rw=randwrite --bs=4k --ioengine=io_uring --iodepth=16 \
    --direct=$direct --end_fsync=1 --time_based --runtime="$runtime")
  record "$target" randwrite "$(fio_iops "$json" write)"
  note_hwm

  log "  $target: 4 KiB random write + fsync"
  cold
  # io_uring at QD1 rather than psync: on the raw image file psync+fsync is dominated by
  # the host filesystem's journal commits for the mtime, not by the device's flush.
  json=$(run_fio fsyncwrite --rw=randwrite --bs=4k --ioengine=io_uring --iodepth=1 \
    --direct=$direct --fsync=1 --time_based --runtime="$runtime")
  record "$target" fsyncwrite "$(fio_iops "$json" write)"
  note_hwm
  [[ $target == raw ]] || rm -f "$mnt/f"
}

# Metadata: create, stat, readdir, unlink $nfiles files in one directory ($1 = 1) or
# spread over $1 directories. Kernel dentry/inode caches are dropped before each phase
# after create, so every stat/lookup reaches the filesystem.
bench_metadata() {
  local ndirs=$1 phase outp secs count dir=$mnt/meta$1
  log "  $target: metadata, $nfiles files in $ndirs dir(s)"
  mkdir "$dir"
  for phase in create stat readdir unlink; do
    [[ $phase == create ]] || drop_caches
    outp=$("$work/tools/metabench" "$phase" "$dir" "$nfiles" "$ndirs") || die "metabench $phase failed on $target"
    read -r secs count <<<"$outp"
    record "$target" "$phase$ndirs" "$(awk -v s="$secs" -v n="$count" 'BEGIN { printf "%.1f", n / s }')"
  done
  rmdir "$dir"
  note_hwm
}

# A real source tree: extract include.tar, find, du -s, rm -rf (seconds each; caches
# dropped before find, du and rm -rf; no sync inside the timed part of any step).
bench_tree() {
  local t0 t1
  log "  $target: source tree ($tree_files entries)"
  mkdir "$mnt/tree"
  drop_caches
  t0=$(now); tar -C "$mnt/tree" -xf "$work/include.tar"; t1=$(now)
  record "$target" tar_x "$(elapsed "$t0" "$t1")"
  drop_caches
  t0=$(now); find "$mnt/tree" >/dev/null; t1=$(now)
  record "$target" find "$(elapsed "$t0" "$t1")"
  drop_caches
  t0=$(now); du -s "$mnt/tree" >/dev/null; t1=$(now)
  record "$target" du "$(elapsed "$t0" "$t1")"
  drop_caches
  t0=$(now); rm -rf "$mnt/tree"; t1=$(now)
  record "$target" rm "$(elapsed "$t0" "$t1")"
  note_hwm
}

run_target() {
  log "round $round: $target"
  setup
  if ((concurrency)); then
    bench_concurrency
    teardown
    return
  fi
  bench_sequential
  bench_random
  if [[ $target != raw ]]; then
    bench_metadata 1
    bench_metadata "$ndirs_many"
    bench_tree
  fi
  teardown
}

# shellcheck source=scripts/bench/concurrency.sh
source "$root/scripts/bench/concurrency.sh"

# ---------------------------------------------------------------- run

# shellcheck source=scripts/bench/isolation.sh
source "$root/scripts/bench/isolation.sh"
if ((only_isolation)); then
  run_isolation
  exit 0
fi

start=$(now)
log "work dir $work on $disk_desc; images $img_size, files ${file_mb} MiB, $nfiles files, fio ${runtime}s, $rounds round(s)"
for ((round = 1; round <= rounds; round++)); do
  order=("${targets[@]}")
  if ((round % 2 == 0)); then  # reverse every other round, so drift hits all targets alike
    order=()
    for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
  fi
  for target in "${order[@]}"; do run_target; done
done
total=$(elapsed "$start" "$(now)")

# ---------------------------------------------------------------- report

# Rows: key | label | unit | better (hi = higher is better, lo = lower, - = no ratio)
rows="seqwrite|sequential write ${file_mb} MiB (bs=1M, end_fsync)|MB/s|hi
seqread|cold sequential read ${file_mb} MiB (bs=1M)|MB/s|hi
randread|4 KiB random read (io_uring, QD16; pagefs cache 64M)|IOPS|hi
randwrite|4 KiB random write (io_uring, QD16, end_fsync)|IOPS|hi
fsyncwrite|4 KiB random write + fsync each (io_uring, QD1)|IOPS|hi
create1|create $nfiles files, one dir|files/s|hi
stat1|stat $nfiles files, one dir|files/s|hi
readdir1|readdir $nfiles files, one dir|files/s|hi
unlink1|unlink $nfiles files, one dir|files/s|hi
create$ndirs_many|create $nfiles files, $ndirs_many dirs|files/s|hi
stat$ndirs_many|stat $nfiles files, $ndirs_many dirs|files/s|hi
readdir$ndirs_many|readdir $nfiles files, $ndirs_many dirs|files/s|hi
unlink$ndirs_many|unlink $nfiles files, $ndirs_many dirs|files/s|hi
tar_x|extract /usr/include ($tree_files entries)|s|lo
find|find over the tree (cold)|s|lo
du|du -s over the tree (cold)|s|lo
rm|rm -rf the tree (cold)|s|lo
rss_seq|daemon peak RSS, seq write+read|MiB|-
rss_max|daemon peak RSS, whole run|MiB|-
pcache_fincore|page-cache growth, seq write/read (fincore of file + image)|MiB|-
pcache_cached|Cached growth, seq write/read (whole machine, noisy)|MiB|-"

if ((concurrency)); then
  {
    echo
    echo "pagefs concurrency benchmark ($rounds round(s), medians, ${conc_runtime}s jobs; $(date -u +%F), ${total%.*} s)"
    echo "work dir on $disk_desc; nproc $(nproc); kernel $(uname -r)"
    echo
    concurrency_report
  } | tee ${out_file:+"$out_file"}
  exit 0
fi

report=$(awk -v rows="$rows" -v cache_mb="${cache_size%M}" '
  function fmt(v) {
    if (v == "") return "—"
    if (v >= 1000) return sprintf("%.0f", v)
    if (v >= 10) return sprintf("%.1f", v)
    return sprintf("%.2f", v)
  }
  function median(k,   n, i, j, a, t) {
    n = cnt[k]; if (!n) return ""
    for (i = 1; i <= n; i++) a[i] = val[k, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  # pagefs relative to other: > 1 means pagefs is better (faster, or less time)
  function ratio(p, o, better) {
    if (p == "" || o == "" || better == "-" || p + 0 <= 0 || o + 0 <= 0) return ""
    return better == "hi" ? p / o : o / p
  }
  function rfmt(r) { return r == "" ? "—" : sprintf("%.2f×", r) }
  { k = $2 SUBSEP $3; val[k, ++cnt[k]] = $4 }
  END {
    nt = split("pagefs fuse2fs ext4 passthrough raw", T, " ")
    print "| workload | unit | pagefs | fuse2fs | ext4 (loop) | passthrough_ll | raw (fio) | pagefs/fuse2fs | pagefs/ext4 | pagefs/passthrough | pagefs/raw |"
    print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    nr = split(rows, R, "\n")
    for (r = 1; r <= nr; r++) {
      split(R[r], F, "|")
      line = "| " F[2] " | " F[3]
      for (t = 1; t <= nt; t++) { m[T[t]] = median(T[t] SUBSEP F[1]); line = line " | " fmt(m[T[t]]) }
      for (t = 2; t <= nt; t++) line = line " | " rfmt(ratio(m["pagefs"], m[T[t]], F[4]))
      print line " |"
      for (t = 1; t <= nt; t++) med[T[t], F[1]] = m[T[t]]
    }
    print ""
    print "Ratios: > 1 means pagefs is better (higher throughput, or less time for rows in s)."
    print ""
    print "Targets from the performance issue:"
    print ""
    check("create, one dir ≥ 10× fuse2fs", ratio(med["pagefs", "create1"], med["fuse2fs", "create1"], "hi"), 10)
    check("create, one dir ≥ 1.0× passthrough_ll", ratio(med["pagefs", "create1"], med["passthrough", "create1"], "hi"), 1)
    check("tree extract ≥ 3× faster than fuse2fs", ratio(med["pagefs", "tar_x"], med["fuse2fs", "tar_x"], "lo"), 3)
    check("tree extract no slower than passthrough_ll", ratio(med["pagefs", "tar_x"], med["passthrough", "tar_x"], "lo"), 1)
    split("stat readdir unlink", P, " ")
    for (i = 1; i <= 3; i++) {
      check(P[i] ", one dir ≥ 3× fuse2fs", ratio(med["pagefs", P[i] "1"], med["fuse2fs", P[i] "1"], "hi"), 3)
      check(P[i] ", " ND " dirs ≥ 3× fuse2fs", ratio(med["pagefs", P[i] ND], med["fuse2fs", P[i] ND], "hi"), 3)
    }
    check("sequential write ≥ 5× fuse2fs", ratio(med["pagefs", "seqwrite"], med["fuse2fs", "seqwrite"], "hi"), 5)
    check("sequential write ≥ 40% of raw", ratio(med["pagefs", "seqwrite"], med["raw", "seqwrite"], "hi"), 0.4)
    check("cold sequential read ≥ 60% of raw", ratio(med["pagefs", "seqread"], med["raw", "seqread"], "hi"), 0.6)
    check("4 KiB random read ≥ 50% of raw IOPS", ratio(med["pagefs", "randread"], med["raw", "randread"], "hi"), 0.5)
    check("4 KiB random write ≥ 3× fuse2fs", ratio(med["pagefs", "randwrite"], med["fuse2fs", "randwrite"], "hi"), 3)
    check("4 KiB write+fsync ≥ 70% of raw fsync IOPS", ratio(med["pagefs", "fsyncwrite"], med["raw", "fsyncwrite"], "hi"), 0.7)
    rss = med["pagefs", "rss_max"]
    if (rss == "") print "- [ ] daemon RSS ≤ cache_size + 48 MiB: not measured"
    else printf "- [%s] daemon RSS ≤ cache_size + 48 MiB: %s MiB peak (limit %d MiB)\n", (rss <= cache_mb + 48) ? "x" : " ", fmt(rss), cache_mb + 48
    pc = med["pagefs", "pcache_fincore"]
    if (pc == "") print "- [ ] page-cache growth ≤ 64 MiB: not measured"
    else printf "- [%s] page-cache growth ≤ 64 MiB through the write and read: %s MiB (fincore of the file and the image)\n", (pc <= 64) ? "x" : " ", fmt(pc)
  }
  function check(what, r, need) {
    if (r == "") { printf "- [ ] %s: not measured\n", what; return }
    printf "- [%s] %s: %.2f×%s\n", (r >= need) ? "x" : " ", what, r, (r >= need) ? "" : " — MISS"
  }
' ND="$ndirs_many" "$results")

{
  echo
  echo "pagefs benchmark ($( ((quick)) && echo quick || echo full) run, $rounds round(s), medians; $(date -u +%F), ${total%.*} s)"
  echo "work dir on $disk_desc; images $img_size; nproc $(nproc); $(awk '$1 == "MemTotal:" { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo); kernel $(uname -r)"
  echo
  echo "$report"
} | tee ${out_file:+"$out_file"}

if ((isolation)); then run_isolation; fi
