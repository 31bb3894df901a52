# The concurrency section of scripts/bench.sh (sourced by it; uses its helpers:
# setup, teardown, record, log, die, cold, $mnt, $work, $target, $round).
#
# For 1, 2, 4, 8 and 16 threads, each working on its own file or directory:
#   c_rand_N    4 KiB random overwrites (psync, end_fsync)        IOPS, all threads
#   c_seq_N     1 MiB sequential writes (end_fsync)               MB/s, all threads
#   c_sync_N    4 KiB random overwrite + fdatasync each (psync)   IOPS, all threads
#   c_create_N  file creates, one directory per thread            files/s, all threads
# and the fdatasync latency of one writer (4 KiB random overwrite + fdatasync)
# alone (lat_alone_*) and while two threads overwrite at random and one reads
# sequentially (lat_busy_*): p50, p99 and max in microseconds.
#
# CONC_RUNTIME (seconds per fio job, default 10; 4 with --quick) and
# CONC_THREADS ("1 2 4 8 16") tune it.

conc_threads=${CONC_THREADS:-"1 2 4 8 16"}
conc_file_mb=64  # per thread
# per thread; passthrough_ll holds an fd for every inode the kernel knows, so
# 16 threads x 1000 stays under the 20,000 open files a process may hold here
conc_creates=1000

# Writes the files the overwrite jobs use: c.0 ... c.15 of conc_file_mb each.
conc_layout() {
  local n=16
  fio --name=layout --directory="$mnt" --numjobs=$n --filename_format='c.$jobnum' \
    --size="${conc_file_mb}M" --rw=write --bs=1M --end_fsync=1 --output-format=json \
    --output="$work/logs/fio-r$round-$target-layout.json" >&2 || die "fio layout on $target failed"
}

# Runs fio with $1 threads and the given options on the laid-out files; prints the JSON path.
conc_fio() {
  local name=$1 threads=$2; shift 2
  local json=$work/logs/fio-r$round-$target-$name-$threads.json
  fio --name="$name" --directory="$mnt" --numjobs="$threads" --filename_format='c.$jobnum' \
    --size="${conc_file_mb}M" --group_reporting --time_based --runtime="$conc_runtime" \
    --output-format=json --output="$json" "$@" >&2 || die "fio $name x$threads on $target failed"
  echo "$json"
}

# $1 threads create conc_creates files each, every one in its own directory; files/s.
conc_creates_rate() {
  local threads=$1 i t0 t1 pids=()
  for ((i = 0; i < threads; i++)); do mkdir -p "$mnt/cr$threads/t$i"; done
  drop_caches
  t0=$(now)
  for ((i = 0; i < threads; i++)); do
    "$work/tools/metabench" create "$mnt/cr$threads/t$i" "$conc_creates" 1 >/dev/null &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "metabench create failed on $target"; done
  t1=$(now)
  rm -rf "$mnt/cr$threads"
  awk -v n=$((threads * conc_creates)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }'
}

# fdatasync latency of one writer, alone or with company ($1 = alone|busy); records
# lat_$1_p50, lat_$1_p99, lat_$1_max (microseconds).
conc_latency() {
  local kind=$1 json=$work/logs/fio-r$round-$target-lat-$1.json
  local args=(--output-format=json --output="$json" --time_based --runtime="$conc_runtime"
    --name=syncer --filename="$mnt/c.0" --size="${conc_file_mb}M" --rw=randwrite --bs=4k
    --ioengine=psync --fdatasync=1)
  if [[ $kind == busy ]]; then
    args+=(--name=overwriter --filename="$mnt/c.1:$mnt/c.2" --size="${conc_file_mb}M"
      --rw=randwrite --bs=4k --ioengine=psync --numjobs=2
      --name=reader --filename="$mnt/c.3" --size="${conc_file_mb}M" --rw=read --bs=1M)
  fi
  fio "${args[@]}" >&2 || die "fio latency ($kind) on $target failed"
  local p
  for p in 50 99; do
    record "$target" "lat_${kind}_p$p" "$(jq -r --arg p "$p.000000" \
      '.jobs[] | select(.jobname == "syncer") | .sync.lat_ns.percentile[$p] / 1000' "$json")"
  done
  record "$target" "lat_${kind}_max" "$(jq -r \
    '.jobs[] | select(.jobname == "syncer") | .sync.lat_ns.max / 1000' "$json")"
}

bench_concurrency() {
  local n json
  log "  $target: concurrency ($conc_threads threads, ${conc_runtime}s jobs)"
  conc_layout
  for n in $conc_threads; do
    json=$(conc_fio crand "$n" --rw=randwrite --bs=4k --ioengine=psync --end_fsync=1)
    record "$target" "c_rand_$n" "$(fio_iops "$json" write)"
    json=$(conc_fio cseq "$n" --rw=write --bs=1M --end_fsync=1)
    record "$target" "c_seq_$n" "$(fio_mbs "$json" write)"
    json=$(conc_fio csync "$n" --rw=randwrite --bs=4k --ioengine=psync --fdatasync=1)
    record "$target" "c_sync_$n" "$(fio_iops "$json" write)"
    record "$target" "c_create_$n" "$(conc_creates_rate "$n")"
  done
  conc_latency alone
  conc_latency busy
  rm -f "$mnt"/c.*
}

# The section's table: every row per target, and each multi-thread row's ratio to
# one thread; then the latency rows and the issue's targets.
concurrency_report() {
  awk -v threads="$conc_threads" '
    function median(k,   n, i, j, a, t) {
      n = cnt[k]; if (!n) return ""
      for (i = 1; i <= n; i++) a[i] = val[k, i]
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(v) { return v == "" ? "—" : (v >= 100 ? sprintf("%.0f", v) : sprintf("%.2f", v)) }
    function scale(t, w, n,   a, b) {
      a = median(t SUBSEP "c_" w "_" n); b = median(t SUBSEP "c_" w "_1")
      return (a == "" || b == "" || b + 0 == 0) ? "—" : sprintf("%.2f×", a / b)
    }
    { k = $2 SUBSEP $3; val[k, ++cnt[k]] = $4 }
    END {
      split("pagefs ext4 passthrough", T, " ")
      split("rand|4 KiB random overwrite|IOPS;seq|1 MiB sequential write|MB/s;sync|4 KiB overwrite + fdatasync|IOPS;create|create, own directory|files/s", W, ";")
      nn = split(threads, N, " ")
      print "| workload | threads | unit | pagefs | ext4 (loop) | passthrough_ll | pagefs vs 1 thread | ext4 vs 1 thread | passthrough vs 1 thread |"
      print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
      for (w = 1; w <= 4; w++) {
        split(W[w], F, "|")
        for (i = 1; i <= nn; i++) {
          line = "| " F[2] " | " N[i] " | " F[3]
          for (t = 1; t <= 3; t++) line = line " | " fmt(median(T[t] SUBSEP "c_" F[1] "_" N[i]))
          for (t = 1; t <= 3; t++) line = line " | " scale(T[t], F[1], N[i])
          print line " |"
        }
      }
      print ""
      print "| fdatasync latency of one writer (µs) | pagefs | ext4 (loop) | passthrough_ll |"
      print "| --- | ---: | ---: | ---: |"
      split("alone|alone;busy|with 2 overwriters and a reader", L, ";")
      for (l = 1; l <= 2; l++) {
        split(L[l], F, "|")
        for (p = 1; p <= 3; p++) {
          s = (p == 1) ? "p50" : (p == 2) ? "p99" : "max"
          line = "| " F[2] ", " s
          for (t = 1; t <= 3; t++) line = line " | " fmt(median(T[t] SUBSEP "lat_" F[1] "_" s))
          print line " |"
        }
      }
      print ""
      print "Targets from the concurrency issue (pagefs):"
      r4 = median("pagefs" SUBSEP "c_rand_4"); r1 = median("pagefs" SUBSEP "c_rand_1")
      check("4 threads of 4 KiB random overwrites ≥ 1.6× one thread", (r1 > 0) ? r4 / r1 : "", 1.6)
      s4 = median("pagefs" SUBSEP "c_sync_4"); s1 = median("pagefs" SUBSEP "c_sync_1")
      check("4 threads of write+fdatasync ≥ 2.0× one thread", (s1 > 0) ? s4 / s1 : "", 2.0)
      a = median("pagefs" SUBSEP "lat_alone_p99"); b = median("pagefs" SUBSEP "lat_busy_p99")
      if (a == "" || b == "" || a + 0 == 0) print "- [ ] fsync p99 under load ≤ 3× its p99 alone: not measured"
      else printf "- [%s] fsync p99 under load ≤ 3× its p99 alone: %.2f×\n", (b / a <= 3) ? "x" : " ", b / a
      m = median("pagefs" SUBSEP "lat_busy_max")
      if (m == "") print "- [ ] fsync max under load ≤ 50 ms: not measured"
      else printf "- [%s] fsync max under load ≤ 50 ms: %.1f ms\n", (m <= 50000) ? "x" : " ", m / 1000
    }
    function check(what, r, need) {
      if (r == "") { printf "- [ ] %s: not measured\n", what; return }
      printf "- [%s] %s: %.2f×%s\n", (r >= need) ? "x" : " ", what, r, (r >= need) ? "" : " — MISS"
    }
  ' "$results"
}
