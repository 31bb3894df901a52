#include "fs/stats_text.h"

#include <charconv>
#include <vector>

namespace pagefs {
namespace {

void line(std::string& out, std::string_view name, uint64_t value) {
  out.append(name).append(": ").append(std::to_string(value)).push_back('\n');
}

void line(std::string& out, std::string_view name, const HistogramSnapshot& h) {
  out.append(name).append(": hist ").append(std::to_string(h.count()));
  out.append(" ").append(std::to_string(h.sum));
  for (size_t i = 0; i < HistogramSnapshot::kBuckets; i++) {
    if (h.counts[i] == 0) continue;
    out.append(" ").append(std::to_string(i)).append(":").append(std::to_string(h.counts[i]));
  }
  out.push_back('\n');
}

void format_requests(std::string& out, const RequestStats& requests) {
  for (size_t op = 0; op < RequestStats::kOpcodes; op++) {
    const uint64_t n = requests.requests(op);
    if (n == 0) continue;
    const std::string name(RequestStats::opcode_name(op));
    line(out, "requests." + name, n);
    const HistogramSnapshot latency = requests.latency(op);
    if (latency.count() > 0) line(out, "request_ns." + name, latency);
  }
}

bool parse_number(std::string_view text, uint64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> words;
  while (!text.empty()) {
    size_t space = text.find(' ');
    if (space != 0) words.push_back(text.substr(0, space));
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  return words;
}

// "hist COUNT SUM I:C ..."; the count must match the buckets'.
bool parse_histogram(std::string_view value, HistogramSnapshot* h) {
  std::vector<std::string_view> words = split(value);
  uint64_t count = 0;
  if (words.size() < 3 || words[0] != "hist" || !parse_number(words[1], &count) ||
      !parse_number(words[2], &h->sum)) {
    return false;
  }
  for (size_t w = 3; w < words.size(); w++) {
    size_t colon = words[w].find(':');
    uint64_t bucket = 0, n = 0;
    if (colon == std::string_view::npos || !parse_number(words[w].substr(0, colon), &bucket) ||
        !parse_number(words[w].substr(colon + 1), &n) || bucket >= HistogramSnapshot::kBuckets) {
      return false;
    }
    h->counts[bucket] = n;
  }
  return h->count() == count;
}

}  // namespace

std::string format_stats(const StatsReport& r, const RequestStats& requests,
                         const DaemonInfo& daemon) {
  std::string out;
  out.reserve(8192);
  line(out, "page_size", r.page_size);
  line(out, "total_pages", r.total_pages);
  line(out, "free_pages", r.free_pages);
  line(out, "inodes", r.inodes);
  line(out, "checksum_errors", r.checksum_errors);
  line(out, "metadata_errors", r.metadata_errors);
  line(out, "cache_hits", r.cache_hits);
  line(out, "cache_misses", r.cache_misses);
  line(out, "cache_readahead_pages", r.cache_readahead_pages);
  line(out, "cache_readahead_hits", r.cache_readahead_hits);
  line(out, "cache_frames", r.cache_frames);
  line(out, "pages_read", r.pages_read);
  line(out, "pages_written", r.pages_written);
  line(out, "pid", uint64_t(daemon.pid));
  out.append("device: ").append(daemon.device).push_back('\n');
  line(out, "uptime_ms", daemon.uptime_ms);
  line(out, "dirty_pages", r.dirty_pages);
  line(out, "pinned_pages", r.pinned_pages);
  line(out, "writeback_batches", r.writeback_batches);
  line(out, "writeback_requests", r.writeback_requests);
  line(out, "journal_bytes", r.journal_bytes);
  line(out, "journal_used_bytes", r.journal_used_bytes);
  line(out, "device_read_bytes", r.device_read_bytes);
  line(out, "device_read_requests", r.device_read_requests);
  line(out, "device_write_bytes", r.device_write_bytes);
  line(out, "device_write_requests", r.device_write_requests);
  line(out, "app_read_bytes", requests.app_read_bytes());
  line(out, "app_write_bytes", requests.app_write_bytes());
  line(out, "device_read_ns", r.device_read_ns);
  line(out, "device_write_ns", r.device_write_ns);
  line(out, "device_flush_ns", r.device_flush_ns);
  line(out, "device_write_batch_pages", r.device_write_batch_pages);
  line(out, "commit_ns", r.commit_ns);
  line(out, "checkpoint_ns", r.checkpoint_ns);
  line(out, "fsync_ns", r.fsync_ns);
  line(out, "lock_exclusive_wait_ns", r.lock_exclusive_wait_ns);
  line(out, "lock_exclusive_hold_ns", r.lock_exclusive_hold_ns);
  line(out, "lock_shared_wait_ns", r.lock_shared_wait_ns);
  out.append("scrub_state: ").append(r.scrub_state).push_back('\n');
  line(out, "scrub_finished", r.scrub_finished);
  line(out, "scrub_pages_checked", r.scrub_pages_checked);
  line(out, "scrub_errors", r.scrub_errors);
  line(out, "scrub_repaired", r.scrub_repaired);
  format_requests(out, requests);
  return out;
}

bool parse_stats(std::string_view text, StatsSample* out) {
  bool any = false;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view l = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    size_t colon = l.find(": ");
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name(l.substr(0, colon));
    std::string_view value = l.substr(colon + 2);
    uint64_t number = 0;
    if (value.starts_with("hist ")) {
      HistogramSnapshot h;
      if (!parse_histogram(value, &h)) return false;
      out->histograms[name] = h;
    } else if (parse_number(value, &number)) {
      out->values[name] = number;
    } else {
      out->strings[name] = std::string(value);
    }
    any = true;
  }
  return any;
}

}  // namespace pagefs
