// The cost of the statistics kept while pagefs runs (engine/stats.h,
// fs/request_stats.h): what every FUSE request and device call pays.
#include <benchmark/benchmark.h>
#include <linux/fuse.h>

#include <cstring>

#include "engine/stats.h"
#include "fs/request_stats.h"

namespace pagefs {
namespace {

void BM_HistogramRecord(benchmark::State& state) {
  Histogram h;
  uint64_t v = 1;
  for (auto _ : state) {
    h.record(v);
    v = v * 2862933555777941757ull + 3037000493ull;
  }
  benchmark::DoNotOptimize(h.snapshot().count());
}
BENCHMARK(BM_HistogramRecord)->Threads(1)->Threads(2);

void BM_LatencyTimer(benchmark::State& state) {
  Histogram h;
  for (auto _ : state) {
    LatencyTimer timer(h);
  }
}
BENCHMARK(BM_LatencyTimer);

// One request read and answered: what channel_read and channel_writev add.
void BM_RequestStatsPerRequest(benchmark::State& state) {
  RequestStats stats;
  char request[sizeof(fuse_in_header) + sizeof(fuse_read_in)] = {};
  fuse_out_header out{};
  out.len = sizeof out + 4096;
  iovec iov{&out, sizeof out};
  uint64_t unique = 1;
  for (auto _ : state) {
    fuse_in_header in{};
    in.opcode = FUSE_READ;
    in.unique = ++unique;
    std::memcpy(request, &in, sizeof in);
    stats.note_request(request, sizeof request);
    out.unique = unique;
    stats.note_reply(&iov, 1);
  }
  benchmark::DoNotOptimize(stats.requests(FUSE_READ));
}
BENCHMARK(BM_RequestStatsPerRequest);

}  // namespace
}  // namespace pagefs
