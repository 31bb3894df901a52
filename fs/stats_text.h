// The text of the virtual attribute user.pagefs.stats (fs/stats_xattr.h):
// how the daemon writes it and how `pagefs stats` reads it back.
//
// One item per line, "name: value". The first eleven lines are the counters
// earlier versions printed, unchanged, so scripts that grep them keep
// working. Then come the daemon's pid, device and uptime_ms, more counters
// and gauges,
// "requests.OP: N" for each FUSE request type seen, and histograms as
//
//   NAME: hist COUNT SUM BUCKET:COUNT BUCKET:COUNT ...
//
// listing only the buckets that are not empty (engine/stats.h: bucket i holds
// [2^(i-1), 2^i)). Latencies are in nanoseconds ("..._ns"); request latencies
// are "request_ns.OP". Counters count from the mount; gauges ("dirty_pages",
// "pinned_pages", "journal_used_bytes", "free_pages", ...) are the values
// now. The running or last scrub is "scrub_state: never|running|done|
// cancelled|failed", "scrub_finished" (seconds since the epoch, 0 until one
// ends), "scrub_pages_checked", "scrub_errors" and "scrub_repaired". Unknown
// lines are kept, so newer daemons can add items.
//
// Thread-safety: pure functions.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "engine/stats.h"
#include "fs/request_stats.h"

namespace pagefs {

// Who serves the mount: its process, its device and how long it has run.
struct DaemonInfo {
  pid_t pid = 0;
  std::string_view device;
  uint64_t uptime_ms = 0;
};

std::string format_stats(const StatsReport& report, const RequestStats& requests,
                         const DaemonInfo& daemon);

struct StatsSample {
  std::map<std::string, uint64_t, std::less<>> values;      // counters and gauges
  std::map<std::string, std::string, std::less<>> strings;  // "device", and any non-number
  std::map<std::string, HistogramSnapshot, std::less<>> histograms;

  uint64_t value(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? 0 : it->second;
  }
  HistogramSnapshot histogram(std::string_view name) const {
    auto it = histograms.find(name);
    return it == histograms.end() ? HistogramSnapshot{} : it->second;
  }
};

// Parses the attribute's text; false if a histogram line is malformed or
// no line is "name: value".
bool parse_stats(std::string_view text, StatsSample* out);

}  // namespace pagefs
