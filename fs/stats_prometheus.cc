#include "fs/stats_prometheus.h"

#include <cstdio>
#include <string_view>

namespace pagefs {
namespace {

// Latency buckets: le = 2^i ns for i in [kFirstBucket, kLastBucket].
constexpr size_t kFirstBucket = 10;      // 1.024 µs
constexpr size_t kLastBucket = 36;       // 68.7 s
constexpr size_t kLastBatchBucket = 17;  // 65536 pages of 4 KiB: 256 MiB

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// Escapes a label value: backslash, double quote and newline.
std::string label_value(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  explicit Writer(const std::string& mountpoint)
      : labels_("mountpoint=\"" + label_value(mountpoint) + "\"") {}

  void header(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view name, double value, std::string_view extra = "") {
    out_.append(name).append("{").append(labels_);
    if (!extra.empty()) out_.append(",").append(extra);
    out_.append("} ").append(number(value)).append("\n");
  }
  void metric(std::string_view name, std::string_view type, std::string_view help, double value) {
    header(name, type, help);
    sample(name, value);
  }
  // A histogram sample set; `scale` converts a bucket bound to the unit.
  // Bucket i holds [2^(i-1), 2^i): its `le` is 2^i for durations (no value
  // is exactly 2^i ns and rounding hides the difference) and 2^i - 1 for
  // counts (`whole`), which are whole numbers.
  void histogram(std::string_view name, const HistogramSnapshot& h, size_t first, size_t last,
                 double scale, std::string_view extra = "", bool whole = false) {
    const std::string prefix = extra.empty() ? "" : std::string(extra) + ",";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= last; i++) {
      cumulative += h.counts[i];
      if (i < first) continue;
      const double le = double(HistogramSnapshot::bucket_end(i) - (whole ? 1 : 0)) * scale;
      sample(std::string(name) + "_bucket", double(cumulative),
             prefix + "le=\"" + number(le) + "\"");
    }
    sample(std::string(name) + "_bucket", double(h.count()), prefix + "le=\"+Inf\"");
    sample(std::string(name) + "_sum", double(h.sum) * scale, extra);
    sample(std::string(name) + "_count", double(h.count()), extra);
  }
  void latency(std::string_view name, std::string_view help, const HistogramSnapshot& h) {
    header(name, "histogram", help);
    histogram(name, h, kFirstBucket, kLastBucket, 1e-9);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string labels_;
  std::string out_;
};

struct CounterItem {
  const char* key;
  const char* name;
  const char* help;
  double scale;  // pages: the page size
};

}  // namespace

std::string render_prometheus(const StatsSample& s, const std::string& mountpoint) {
  Writer w(mountpoint);
  const double page = double(s.value("page_size"));
  const CounterItem counters[] = {
      {"app_read_bytes", "pagefs_app_read_bytes_total", "Bytes applications read.", 1},
      {"app_write_bytes", "pagefs_app_written_bytes_total", "Bytes applications wrote.", 1},
      {"device_read_bytes", "pagefs_device_read_bytes_total", "Bytes read from the device.", 1},
      {"device_write_bytes", "pagefs_device_written_bytes_total", "Bytes written to the device.",
       1},
      {"device_read_requests", "pagefs_device_read_requests_total",
       "Read requests sent to the device (adjacent pages merged).", 1},
      {"device_write_requests", "pagefs_device_write_requests_total",
       "Write requests sent to the device (adjacent pages merged).", 1},
      {"cache_hits", "pagefs_cache_hits_total", "Page lookups the cache answered.", 1},
      {"cache_misses", "pagefs_cache_misses_total", "Page lookups that read the device.", 1},
      {"cache_readahead_pages", "pagefs_cache_readahead_pages_total",
       "Pages read ahead of the reads that wanted them.", 1},
      {"cache_readahead_hits", "pagefs_cache_readahead_hits_total",
       "Cache hits that were the first use of a page read ahead.", 1},
      {"pages_written", "pagefs_writeback_pages_total", "Pages written home from the cache.", 1},
      {"writeback_batches", "pagefs_writeback_batches_total", "Write-back device calls.", 1},
      {"writeback_requests", "pagefs_writeback_requests_total",
       "Write-back requests, each a run of adjacent pages.", 1},
      {"checksum_errors", "pagefs_checksum_errors_total", "Pages that failed their CRC32C.", 1},
      {"metadata_errors", "pagefs_metadata_errors_total",
       "Metadata that passed its checksum but could not be right.", 1},
  };
  for (const CounterItem& c : counters) {
    w.metric(c.name, "counter", c.help, double(s.value(c.key)) * c.scale);
  }
  w.metric("pagefs_size_bytes", "gauge", "Bytes of the data region.",
           double(s.value("total_pages")) * page);
  w.metric("pagefs_free_bytes", "gauge", "Bytes of file data that still fit.",
           double(s.value("free_pages")) * page);
  w.metric("pagefs_inodes", "gauge", "Inodes in use.", double(s.value("inodes")));
  w.metric("pagefs_cache_size_bytes", "gauge", "Bytes of the page cache.",
           double(s.value("cache_frames")) * page);
  w.metric("pagefs_dirty_bytes", "gauge", "Bytes of dirty pages in the cache.",
           double(s.value("dirty_pages")) * page);
  w.metric("pagefs_pinned_bytes", "gauge", "Bytes of pages pinned in the cache.",
           double(s.value("pinned_pages")) * page);
  w.metric("pagefs_journal_size_bytes", "gauge", "Bytes of the journal region.",
           double(s.value("journal_bytes")));
  w.metric("pagefs_journal_used_bytes", "gauge", "Bytes of the journal not yet checkpointed.",
           double(s.value("journal_used_bytes")));
  w.metric("pagefs_uptime_seconds", "gauge", "Seconds since the mount.",
           double(s.value("uptime_ms")) / 1e3);
  // The running or last scrub: its counts start again with each one.
  auto scrub_state = s.strings.find("scrub_state");
  w.metric("pagefs_scrub_running", "gauge", "1 while a scrub runs.",
           scrub_state != s.strings.end() && scrub_state->second == "running" ? 1 : 0);
  w.metric("pagefs_scrub_last_finished_timestamp_seconds", "gauge",
           "When the last scrub ended (0: none since the mount).",
           double(s.value("scrub_finished")));
  w.metric("pagefs_scrub_pages_checked", "gauge", "Pages the running or last scrub checked.",
           double(s.value("scrub_pages_checked")));
  w.metric("pagefs_scrub_errors", "gauge", "Damaged pages the running or last scrub found.",
           double(s.value("scrub_errors")));
  w.metric("pagefs_scrub_repaired", "gauge", "Damaged pages the running or last scrub repaired.",
           double(s.value("scrub_repaired")));
  w.header("pagefs_requests_total", "counter", "FUSE requests served, by type.");
  for (const auto& [key, value] : s.values) {
    if (key.starts_with("requests.")) {
      w.sample("pagefs_requests_total", double(value), "op=\"" + key.substr(9) + "\"");
    }
  }
  w.header("pagefs_request_duration_seconds", "histogram",
           "Time from reading a FUSE request to writing its reply, by type.");
  for (const auto& [key, h] : s.histograms) {
    if (key.starts_with("request_ns.")) {
      w.histogram("pagefs_request_duration_seconds", h, kFirstBucket, kLastBucket, 1e-9,
                  "op=\"" + key.substr(11) + "\"");
    }
  }
  w.latency("pagefs_commit_duration_seconds", "Journal commits: compress, write, flush.",
            s.histogram("commit_ns"));
  w.latency("pagefs_checkpoint_duration_seconds", "Checkpoints, their commit included.",
            s.histogram("checkpoint_ns"));
  w.latency("pagefs_fsync_duration_seconds", "fsync and fdatasync calls.", s.histogram("fsync_ns"));
  w.latency("pagefs_lock_exclusive_wait_seconds",
            "Waits for the filesystem lock held exclusively (every change).",
            s.histogram("lock_exclusive_wait_ns"));
  w.latency("pagefs_lock_exclusive_hold_seconds",
            "Holds of the filesystem lock exclusively: the serial section of changes.",
            s.histogram("lock_exclusive_hold_ns"));
  w.latency("pagefs_lock_shared_wait_seconds", "Waits for the filesystem lock held shared.",
            s.histogram("lock_shared_wait_ns"));
  w.latency("pagefs_device_read_duration_seconds", "Device read calls (a batch each).",
            s.histogram("device_read_ns"));
  w.latency("pagefs_device_write_duration_seconds", "Device write calls (a batch each).",
            s.histogram("device_write_ns"));
  w.latency("pagefs_device_flush_duration_seconds", "Device flushes.",
            s.histogram("device_flush_ns"));
  w.header("pagefs_device_write_batch_pages", "histogram",
           "4 KiB units written per device write call.");
  w.histogram("pagefs_device_write_batch_pages", s.histogram("device_write_batch_pages"), 1,
              kLastBatchBucket, 1, "", /*whole=*/true);
  return w.take();
}

}  // namespace pagefs
