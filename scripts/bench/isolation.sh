# The isolation benchmark, sourced by scripts/bench.sh (which provides setup,
# teardown, log, die, record-style helpers and the variables below).
#
# A latency-sensitive reader (fio: 4 KiB random reads, psync, queue depth 1)
# over a working set that fits pagefs's cache (iso_ws_mb of a 256M cache), on
# the target filesystem, measured alone and while another process streams a
# large file (iso_stream_mb, on the disk's own filesystem, not the target)
# through the kernel page cache with dd. Everything (the reader, the stream,
# the FUSE daemon) runs in one memory cgroup limited to iso_budget, as one
# container would. Each configuration runs iso_rounds times; the report shows
# medians of p50/p99 completion latency and of IOPS.
#
# The cgroup: a directory made by hand under cgroup v2 when its memory
# controller is there, else under cgroup v1's memory hierarchy (this is what
# `systemd-run --scope -p MemoryMax=` would make, where systemd runs).

iso_budget_mb=${ISO_BUDGET_MB:-768}
iso_ws_mb=${ISO_WS_MB:-128}
iso_stream_mb=${ISO_STREAM_MB:-3072}
iso_runtime=${ISO_RUNTIME:-$((quick ? 5 : 15))}
iso_rounds=${ISO_ROUNDS:-3}
iso_results=$work/isolation.txt
: >"$iso_results"
iso_cgroup=

# Makes the cgroup and sets its limit; sets iso_cgroup to its directory.
iso_make_cgroup() {
  local name=pagefs-bench-$$
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    iso_cgroup=/sys/fs/cgroup/$name
    mkdir "$iso_cgroup"
    echo "${iso_budget_mb}M" >"$iso_cgroup/memory.max"
    echo 0 >"$iso_cgroup/memory.swap.max" 2>/dev/null || true
    iso_cgroup_kind="cgroup v2 memory.max"
  elif [[ -d /sys/fs/cgroup/memory ]]; then
    iso_cgroup=/sys/fs/cgroup/memory/$name
    mkdir "$iso_cgroup"
    echo "${iso_budget_mb}M" >"$iso_cgroup/memory.limit_in_bytes"
    iso_cgroup_kind="cgroup v1 memory.limit_in_bytes"
  else
    die "no memory cgroup controller (v2 or v1) to confine the isolation benchmark"
  fi
}

iso_remove_cgroup() {
  [[ -n $iso_cgroup && -d $iso_cgroup ]] || return 0
  local p
  for p in $(cat "$iso_cgroup/cgroup.procs" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  rmdir "$iso_cgroup" 2>/dev/null || log "warning: cannot remove $iso_cgroup"
}

# One fio run of the reader; appends "target phase round p50_us p99_us iops".
iso_read() {  # $1 = phase (alone or disturbed)
  local json=$work/logs/iso-$target-$1-$round.json
  fio --name=reader --filename="$mnt/ws" --rw=randread --bs=4k --ioengine=psync --iodepth=1 \
    --direct=0 --time_based --runtime="$iso_runtime" --size="${iso_ws_mb}M" \
    --output-format=json --output="$json" >&2 || die "fio reader on $target failed; see $json"
  jq -r --arg t "$target" --arg p "$1" --arg r "$round" \
    '[$t, $p, $r, (.jobs[0].read.clat_ns.percentile["50.000000"] / 1000),
      (.jobs[0].read.clat_ns.percentile["99.000000"] / 1000), .jobs[0].read.iops] | @tsv' \
    "$json" | tr '\t' ' ' >>"$iso_results"
}

# Runs in the cgroup (a subshell that moved itself in): mount, warm, measure.
iso_run_target() {
  echo "$BASHPID" >"$iso_cgroup/cgroup.procs"
  setup
  dd if=/dev/urandom of="$mnt/ws" bs=1M count="$iso_ws_mb" conv=fsync status=none
  # Start from a quiet, cold state (pagefs remounted, kernel caches dropped), so
  # that no write-back of the file runs during the measurements; then warm it.
  cold
  cat "$mnt/ws" >/dev/null
  cat "$mnt/ws" >/dev/null  # twice: a page read again counts as hot everywhere
  sleep 1
  iso_read alone
  (while :; do dd if="$work/stream" of=/dev/null bs=1M status=none; done) &
  local streamer=$!
  sleep 2
  iso_read disturbed
  kill "$streamer"
  wait "$streamer" 2>/dev/null || true
  pkill -P "$streamer" dd 2>/dev/null || true
  teardown
}

run_isolation() {
  local t iso_targets=()
  for t in "${targets[@]}"; do
    case $t in pagefs | ext4 | fuse2fs) iso_targets+=("$t") ;; esac
  done
  ((${#iso_targets[@]} > 0)) || return 0
  log "isolation: making a ${iso_stream_mb} MiB file to stream"
  dd if=/dev/zero of="$work/stream" bs=1M count="$iso_stream_mb" conv=fsync status=none
  iso_make_cgroup
  log "isolation: $iso_cgroup_kind ${iso_budget_mb}M; working set ${iso_ws_mb} MiB; fio ${iso_runtime}s; $iso_rounds round(s)"
  for ((round = 1; round <= iso_rounds; round++)); do
    for target in "${iso_targets[@]}"; do
      log "isolation round $round: $target"
      drop_caches
      mounted+=("$work/mnt/$target")
      (iso_run_target) || die "isolation run of $target failed"
      daemon_pid=
    done
  done
  iso_remove_cgroup
  rm -f "$work/stream"
  iso_report
}

# Medians per target and phase, and the target check.
iso_report() {
  local table
  table=$(awk -v ws="$iso_ws_mb" -v budget="$iso_budget_mb" -v stream="$iso_stream_mb" '
    function median(k, c,   n, i, j, a, t) {
      n = cnt[k]; if (!n) return ""
      for (i = 1; i <= n; i++) a[i] = val[k, c, i]
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { k = $1 SUBSEP $2; n = ++cnt[k]; val[k, 4, n] = $4; val[k, 5, n] = $5; val[k, 6, n] = $6
      if (!seen[$1]++) order[++nt] = $1 }
    END {
      print "| target | p50 alone (µs) | p99 alone (µs) | IOPS alone | p50 disturbed (µs) | p99 disturbed (µs) | IOPS disturbed | p99 disturbed / alone |"
      print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
      for (i = 1; i <= nt; i++) {
        t = order[i]; a = t SUBSEP "alone"; d = t SUBSEP "disturbed"
        r = median(d, 5) / median(a, 5)
        printf "| %s | %.1f | %.1f | %.0f | %.1f | %.1f | %.0f | %.2f× |\n", t,
          median(a, 4), median(a, 5), median(a, 6), median(d, 4), median(d, 5), median(d, 6), r
        ratio[t] = r
      }
      print ""
      printf "Reader: 4 KiB random reads, psync QD1, over a %d MiB file; disturbance: dd streaming a %d MiB file through the page cache; both in a %d MiB memory cgroup with the FUSE daemon.\n", ws, stream, budget
      if ("pagefs" in ratio)
        printf "\n- [%s] pagefs disturbed p99 within 1.5× of undisturbed: %.2f×\n", ratio["pagefs"] <= 1.5 ? "x" : " ", ratio["pagefs"]
    }' "$iso_results")
  {
    echo
    echo "Isolation ($iso_cgroup_kind ${iso_budget_mb}M, $iso_rounds round(s), medians; $(date -u +%F))"
    echo
    echo "$table"
  } | tee ${out_file:+-a "$out_file"}
  log "isolation: every measurement in $iso_results"
}
