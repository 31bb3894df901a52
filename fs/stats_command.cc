#include "fs/stats_command.h"

#include <limits.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fs/stats_prometheus.h"
#include "fs/stats_text.h"
#include "fs/stats_xattr.h"

namespace pagefs {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

const char kUsage[] =
    "Usage: pagefs stats MOUNTPOINT [-i SECONDS [-c COUNT]] [--json | --prometheus] [-o FILE]\n"
    "Shows the statistics of a mounted pagefs: averages since the mount, or with\n"
    "-i a live view of each interval.\n"
    "\n"
    "  -i SECONDS    report every SECONDS (e.g. 1, 0.5)\n"
    "  -c COUNT      stop after COUNT reports (with -i)\n"
    "  --json        one JSON object per report\n"
    "  --prometheus  Prometheus text exposition format (totals since the mount)\n"
    "  -o FILE       write each report to FILE, replacing it atomically\n";

enum class Format { kText, kJson, kPrometheus };

struct Options {
  std::string mountpoint;
  double interval_s = 0;  // 0: one report since the mount
  uint64_t count = 0;     // 0: until interrupted
  Format format = Format::kText;
  std::string output;
};

bool parse_double(std::string_view text, double* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && std::isfinite(*out);
}

// Parses argv; returns -1 to go on, or the exit code to stop with.
int parse_options(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    auto value = [&](std::string_view what) -> const char* {
      if (i + 1 < argc) return argv[++i];
      std::fprintf(stderr, "pagefs stats: %s needs %s\n", argv[i], what.data());
      return nullptr;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--json") {
      o->format = Format::kJson;
    } else if (arg == "--prometheus") {
      o->format = Format::kPrometheus;
    } else if (arg == "-i" || arg == "--interval") {
      const char* v = value("SECONDS");
      if (v == nullptr || !parse_double(v, &o->interval_s) || o->interval_s < 0.01 ||
          o->interval_s > 86400) {
        std::fprintf(stderr, "pagefs stats: invalid interval (seconds, 0.01 to 86400)\n");
        return kExitUsage;
      }
    } else if (arg == "-c" || arg == "--count") {
      const char* v = value("COUNT");
      double count = 0;
      if (v == nullptr || !parse_double(v, &count) || count < 1 || count != std::floor(count)) {
        std::fprintf(stderr, "pagefs stats: invalid count\n");
        return kExitUsage;
      }
      o->count = uint64_t(count);
    } else if (arg == "-o" || arg == "--output") {
      const char* v = value("FILE");
      if (v == nullptr) return kExitUsage;
      o->output = v;
    } else if (arg.starts_with("-") || !o->mountpoint.empty()) {
      std::fprintf(stderr, "pagefs stats: unexpected '%s'\n%s", argv[i], kUsage);
      return kExitUsage;
    } else {
      o->mountpoint = arg;
    }
  }
  if (o->mountpoint.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  char resolved[PATH_MAX];
  if (realpath(o->mountpoint.c_str(), resolved) != nullptr) o->mountpoint = resolved;
  return -1;
}

bool read_sample(const std::string& path, StatsSample* sample) {
  std::vector<char> text(256 * 1024);
  ssize_t len =
      getxattr(path.c_str(), std::string(kStatsXattrName).c_str(), text.data(), text.size());
  if (len < 0) {
    bool not_pagefs = errno == ENODATA || errno == ENOTSUP;
    std::fprintf(
        stderr, "pagefs stats: %s\n",
        not_pagefs
            ? (path + " is not the root of a pagefs mount").c_str()
            : ("cannot read the statistics of " + path + ": " + std::strerror(errno)).c_str());
    return false;
  }
  *sample = StatsSample{};
  if (!parse_stats(std::string_view(text.data(), size_t(len)), sample)) {
    std::fprintf(stderr, "pagefs stats: the statistics of %s are malformed\n", path.c_str());
    return false;
  }
  return true;
}

// The change from `prev` to `cur` over `seconds` (since the mount when prev
// is empty).
struct Interval {
  const StatsSample& prev;
  const StatsSample& cur;
  double seconds;

  double delta(std::string_view name) const {
    uint64_t a = prev.value(name), b = cur.value(name);
    return b >= a ? double(b - a) : 0;
  }
  double rate(std::string_view name) const { return delta(name) / seconds; }
  HistogramSnapshot hist(std::string_view name) const {
    return cur.histogram(name).since(prev.histogram(name));
  }
};

struct OpRate {
  std::string name;
  double per_s;
  HistogramSnapshot latency;
};

// Request types with requests in the interval, busiest first.
std::vector<OpRate> op_rates(const Interval& in) {
  std::vector<OpRate> ops;
  for (const auto& [key, value] : in.cur.values) {
    if (!key.starts_with("requests.")) continue;
    std::string op = key.substr(9);
    double n = in.delta(key);
    if (n > 0) ops.push_back({op, n / in.seconds, in.hist("request_ns." + op)});
  }
  std::stable_sort(ops.begin(), ops.end(),
                   [](const OpRate& a, const OpRate& b) { return a.per_s > b.per_s; });
  return ops;
}

// printf of up to four numbers (every conversion in `fmt` takes a double).
std::string format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b, c, d);
  return buf;
}

// A duration in ns as "850us", "1.2ms", "3.4s".
std::string duration(double ns) {
  if (ns < 1e3) return format("%.0fns", ns);
  if (ns < 1e6) return format("%.0fus", ns / 1e3);
  if (ns < 1e9) return format("%.1fms", ns / 1e6);
  return format("%.2fs", ns / 1e9);
}

std::string percentiles(const HistogramSnapshot& h) {
  if (h.count() == 0) return "-";
  return "p50 " + duration(h.quantile(0.5)) + " p99 " + duration(h.quantile(0.99));
}

double ratio(double part, double whole) {
  return whole > 0 ? part / whole : 0;
}

std::string scrub_state(const StatsSample& s) {
  auto it = s.strings.find("scrub_state");
  return it == s.strings.end() ? "never" : it->second;
}

// "done 2026-11-30 05:12, 27012 pages checked, 2 damaged, 1 repaired".
std::string scrub_line(const StatsSample& s) {
  const std::string state = scrub_state(s);
  if (state == "never") return "never since the mount";
  std::string out = state;
  const time_t finished = time_t(s.value("scrub_finished"));
  struct tm local;
  char when[32];
  if (finished != 0 && localtime_r(&finished, &local) != nullptr &&
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &local) > 0) {
    out += std::string(" ") + when;
  }
  return out + format(", %.0f pages checked, %.0f damaged, %.0f repaired",
                      double(s.value("scrub_pages_checked")), double(s.value("scrub_errors")),
                      double(s.value("scrub_repaired")));
}

// `every_s`: the interval asked for (0 since the mount); rates use the one measured.
std::string render_text(const Interval& in, const std::string& mountpoint, double every_s) {
  const bool since_mount = every_s == 0;
  const double mb = 1e6;
  std::string out =
      mountpoint + (since_mount ? format("  since the mount (%.1f s ago)\n", in.seconds)
                                : format("  every %g s\n", every_s));
  std::vector<OpRate> ops = op_rates(in);
  double total = 0;
  for (const OpRate& op : ops) total += op.per_s;
  out += format("requests    %.1f/s", total);
  for (size_t i = 0; i < ops.size() && i < 8; i++) {
    out += "  " + ops[i].name + format(" %.1f", ops[i].per_s);
  }
  out += "\n";
  for (size_t i = 0; i < ops.size() && i < 4; i++) {
    if (ops[i].latency.count() == 0) continue;
    out += "  " + ops[i].name + std::string(10 - std::min<size_t>(ops[i].name.size(), 9), ' ') +
           percentiles(ops[i].latency) + "\n";
  }
  out += format("app         read %.1f MB/s  write %.1f MB/s\n", in.rate("app_read_bytes") / mb,
                in.rate("app_write_bytes") / mb);
  out += format("device      read %.1f MB/s %.0f req/s ", in.rate("device_read_bytes") / mb,
                in.rate("device_read_requests")) +
         percentiles(in.hist("device_read_ns")) +
         format("\n            write %.1f MB/s %.0f req/s ", in.rate("device_write_bytes") / mb,
                in.rate("device_write_requests")) +
         percentiles(in.hist("device_write_ns")) +
         format("\n            flush %.1f/s ",
                double(in.hist("device_flush_ns").count()) / in.seconds) +
         percentiles(in.hist("device_flush_ns")) + "\n";
  const double hits = in.delta("cache_hits"), misses = in.delta("cache_misses");
  out +=
      format("cache       hit ratio %.1f%% (%.1f%% read ahead)", 100 * ratio(hits, hits + misses),
             100 * ratio(in.delta("cache_readahead_hits"), hits)) +
      format("  frames %.0f  dirty %.0f  pinned %.0f\n", double(in.cur.value("cache_frames")),
             double(in.cur.value("dirty_pages")), double(in.cur.value("pinned_pages")));
  const double journal = double(in.cur.value("journal_bytes")),
               used = double(in.cur.value("journal_used_bytes"));
  out += format("journal     used %.1f of %.1f MiB (%.0f%%)", used / 1048576, journal / 1048576,
                100 * ratio(used, journal)) +
         format("  commits %.1f/s ", double(in.hist("commit_ns").count()) / in.seconds) +
         percentiles(in.hist("commit_ns")) +
         format("  checkpoints %.2f/s\n", double(in.hist("checkpoint_ns").count()) / in.seconds);
  out += format("fsync       %.1f/s ", double(in.hist("fsync_ns").count()) / in.seconds) +
         percentiles(in.hist("fsync_ns")) + "\n";
  const HistogramSnapshot held = in.hist("lock_exclusive_hold_ns");
  out += format("fs lock     exclusive %.1f/s held %.1f%% ", double(held.count()) / in.seconds,
                100 * ratio(double(held.sum) / 1e9, in.seconds)) +
         percentiles(held) + "  wait " + percentiles(in.hist("lock_exclusive_wait_ns")) +
         "  shared wait " + percentiles(in.hist("lock_shared_wait_ns")) + "\n";
  const double batches = in.delta("writeback_batches"), pages = in.delta("pages_written");
  out += format("write-back  %.1f batches/s  %.1f pages/batch  %.1f pages/request\n",
                batches / in.seconds, ratio(pages, batches),
                ratio(pages, in.delta("writeback_requests")));
  out += format("errors      checksum %.0f  metadata %.0f\n",
                double(in.cur.value("checksum_errors")), double(in.cur.value("metadata_errors")));
  out += "scrub       " + scrub_line(in.cur) + "\n";
  return out;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_latency(const HistogramSnapshot& h) {
  return format("\"count\":%.0f,\"p50_us\":%.3f,\"p99_us\":%.3f", double(h.count()),
                h.quantile(0.5) / 1e3, h.quantile(0.99) / 1e3);
}

std::string render_json(const Interval& in, const std::string& mountpoint, bool since_mount) {
  std::string out = "{\"mountpoint\":" + json_string(mountpoint) +
                    format(",\"interval_s\":%.3f,\"since_mount\":", in.seconds) +
                    (since_mount ? "true" : "false") + ",\"requests\":{";
  bool first = true;
  for (const OpRate& op : op_rates(in)) {
    out += (first ? "" : ",") + json_string(op.name) + format(":{\"per_s\":%.3f,", op.per_s) +
           json_latency(op.latency) + "}";
    first = false;
  }
  const double hits = in.delta("cache_hits"), misses = in.delta("cache_misses");
  out += "},\"app\":" + format("{\"read_bytes_per_s\":%.0f,\"write_bytes_per_s\":%.0f}",
                               in.rate("app_read_bytes"), in.rate("app_write_bytes"));
  out += ",\"device\":{" +
         format("\"read_bytes_per_s\":%.0f,\"read_requests_per_s\":%.3f,",
                in.rate("device_read_bytes"), in.rate("device_read_requests")) +
         format("\"write_bytes_per_s\":%.0f,\"write_requests_per_s\":%.3f,",
                in.rate("device_write_bytes"), in.rate("device_write_requests")) +
         "\"read\":{" + json_latency(in.hist("device_read_ns")) + "},\"write\":{" +
         json_latency(in.hist("device_write_ns")) + "},\"flush\":{" +
         json_latency(in.hist("device_flush_ns")) + "}}";
  out += ",\"cache\":" +
         format("{\"hit_ratio\":%.4f,\"readahead_share\":%.4f,\"readahead_pages_per_s\":%.3f,",
                ratio(hits, hits + misses), ratio(in.delta("cache_readahead_hits"), hits),
                in.rate("cache_readahead_pages")) +
         format("\"frames\":%.0f,\"dirty_pages\":%.0f,\"pinned_pages\":%.0f}",
                double(in.cur.value("cache_frames")), double(in.cur.value("dirty_pages")),
                double(in.cur.value("pinned_pages")));
  out += ",\"journal\":" +
         format("{\"size_bytes\":%.0f,\"used_bytes\":%.0f,\"checkpoints_per_s\":%.3f,",
                double(in.cur.value("journal_bytes")), double(in.cur.value("journal_used_bytes")),
                double(in.hist("checkpoint_ns").count()) / in.seconds) +
         "\"commit\":{" + json_latency(in.hist("commit_ns")) + "}}";
  out += ",\"fsync\":{" + json_latency(in.hist("fsync_ns")) + "}";
  const HistogramSnapshot held = in.hist("lock_exclusive_hold_ns");
  out += ",\"fs_lock\":" +
         format("{\"exclusive_per_s\":%.3f,\"exclusive_held_share\":%.4f,",
                double(held.count()) / in.seconds, ratio(double(held.sum) / 1e9, in.seconds)) +
         "\"exclusive_hold\":{" + json_latency(held) + "},\"exclusive_wait\":{" +
         json_latency(in.hist("lock_exclusive_wait_ns")) + "},\"shared_wait\":{" +
         json_latency(in.hist("lock_shared_wait_ns")) + "}}";
  const double batches = in.delta("writeback_batches"), pages = in.delta("pages_written");
  out += ",\"writeback\":" +
         format("{\"batches_per_s\":%.3f,\"pages_per_batch\":%.2f,\"pages_per_request\":%.2f}",
                batches / in.seconds, ratio(pages, batches),
                ratio(pages, in.delta("writeback_requests")));
  out += ",\"errors\":" + format("{\"checksum\":%.0f,\"metadata\":%.0f}",
                                 double(in.cur.value("checksum_errors")),
                                 double(in.cur.value("metadata_errors")));
  out += ",\"scrub\":{\"state\":" + json_string(scrub_state(in.cur)) +
         format(",\"finished\":%.0f,\"pages_checked\":%.0f,\"errors\":%.0f,\"repaired\":%.0f}",
                double(in.cur.value("scrub_finished")), double(in.cur.value("scrub_pages_checked")),
                double(in.cur.value("scrub_errors")), double(in.cur.value("scrub_repaired")));
  return out + "}\n";
}

// Writes `text` to stdout, or to `path` through a temporary file renamed over it.
bool emit(const std::string& text, const std::string& path) {
  if (path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  }
  const std::string temporary = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(temporary.c_str(), "w");
  bool ok = f != nullptr && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (f != nullptr && std::fclose(f) == 0) && ok;
  if (ok && std::rename(temporary.c_str(), path.c_str()) == 0) return true;
  std::fprintf(stderr, "pagefs stats: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
  std::remove(temporary.c_str());
  return false;
}

std::string render(const Options& o, const Interval& in, bool since_mount) {
  switch (o.format) {
    case Format::kJson:
      return render_json(in, o.mountpoint, since_mount);
    case Format::kPrometheus:
      return render_prometheus(in.cur, o.mountpoint);
    case Format::kText:
      break;
  }
  return render_text(in, o.mountpoint, since_mount ? 0 : o.interval_s) + (since_mount ? "" : "\n");
}

int run(const Options& o) {
  StatsSample prev, cur;
  if (!read_sample(o.mountpoint, &cur)) return kExitFailed;
  if (o.interval_s == 0) {
    const StatsSample none;
    const double uptime_s = std::max(1e-3, double(cur.value("uptime_ms")) / 1e3);
    return emit(render(o, Interval{none, cur, uptime_s}, true), o.output) ? 0 : kExitFailed;
  }
  for (uint64_t n = 0; o.count == 0 || n < o.count; n++) {
    prev = cur;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
    if (!read_sample(o.mountpoint, &cur)) return kExitFailed;
    const double seconds =
        std::max(1e-3, double(cur.value("uptime_ms") - prev.value("uptime_ms")) / 1e3);
    if (!emit(render(o, Interval{prev, cur, seconds}, false), o.output)) return kExitFailed;
  }
  return 0;
}

}  // namespace

int stats_command(int argc, char** argv) {
  Options options;
  if (int code = parse_options(argc, argv, &options); code >= 0) return code;
  return run(options);
}

}  // namespace pagefs
