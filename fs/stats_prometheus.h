// The statistics of a pagefs mount in Prometheus's text exposition format
// (version 0.0.4), for node_exporter's textfile collector or any scraper.
//
// Every metric carries a mountpoint label. Counters end in _total and count
// from the mount; gauges are the values now; latencies are histograms in
// seconds whose buckets are the daemon's log2 buckets from 1.024 µs to
// 68.7 s (le = 2^i ns), and write batches a histogram in 4 KiB units.
//
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "fs/stats_text.h"

namespace pagefs {

std::string render_prometheus(const StatsSample& sample, const std::string& mountpoint);

}  // namespace pagefs
