// Micro-benchmarks of the BufferPool fetch paths over a MemDevice.
//
// What:
//   - BM_PoolHit: fetch_data() + unpin (PageRef destruction) of pages that are
//     already cached, in a random order over a 1024-page working set held by a
//     2048-frame pool. One and two threads share the one pool, so the two-thread
//     numbers show what the pool mutex (taken twice per fetch: lookup and unpin)
//     costs under contention. Reported as fetches/s (wall clock).
//   - BM_PoolMiss: the same random fetches over a 4096-page working set with a
//     64-frame pool, so nearly every fetch misses: clock eviction of a clean
//     victim, a 4 KiB MemDevice read (memcpy under the device mutex) and the
//     CRC32C verification of the page. Also one and two threads.
//
// Why: every tree descent and every file read goes through fetch(); the hit
// path is the floor under all metadata operations, and the miss path
// (without real I/O) shows the pool's own overhead per page read, to set
// against device latency.
//
// The pages are data pages (fetch_data): their bytes are written straight into
// the MemDevice and the expected CRC32C of each is passed to fetch_data, as an
// extent record would. The hit path of fetch_meta is the same code.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/crc32c.h"
#include "engine/mem_device.h"

namespace pagefs {
namespace {

constexpr uint32_t kPageSize = 4096;
constexpr size_t kSequenceLength = 1 << 16;  // random page order, a power of two

// A MemDevice holding `pages` pseudo-random data pages (pages 1..pages; page 0
// is never a valid page number), their CRCs, and a pool of `frames` frames.
struct PoolEnv {
  PoolEnv(uint32_t pages, uint32_t frames) : dev(uint64_t(pages + 1) * kPageSize) {
    std::mt19937_64 rng(pages);
    crc.resize(pages + 1);
    for (uint32_t p = 1; p <= pages; p++) {
      auto* words = reinterpret_cast<uint64_t*>(dev.raw() + uint64_t(p) * kPageSize);
      for (size_t i = 0; i < kPageSize / 8; i++) words[i] = rng();
      crc[p] = crc32c(words, kPageSize);
    }
    auto opened = BufferPool::open(dev, kPageSize, uint64_t(frames) * kPageSize, false);
    if (!opened.ok()) {
      std::fprintf(stderr, "BufferPool::open: errno %d\n", opened.error());
      std::abort();
    }
    pool = std::move(opened).value();
    order.resize(kSequenceLength);
    for (uint32_t& p : order) p = uint32_t(rng() % pages) + 1;
    // Warm the pool (for the hit case every page stays).
    for (uint32_t p = 1; p <= pages; p++) fetch(p);
  }

  void fetch(uint32_t p) {
    Result<PageRef> ref = pool->fetch_data(PageNo{p}, crc[p]);
    if (!ref.ok()) {
      std::fprintf(stderr, "fetch_data(%u): errno %d\n", p, ref.error());
      std::abort();
    }
    benchmark::DoNotOptimize(ref->data());
  }

  MemDevice dev;
  std::vector<uint32_t> crc;
  std::unique_ptr<BufferPool> pool;
  std::vector<uint32_t> order;
};

// Built once, shared by every thread of every run (function statics are
// initialized thread-safely).
PoolEnv& hit_env() {
  static PoolEnv env(1024, 2048);
  return env;
}
PoolEnv& miss_env() {
  static PoolEnv env(4096, 64);
  return env;
}

void run_fetches(benchmark::State& state, PoolEnv& env) {
  // Each thread walks the shared random order from its own starting point.
  size_t i = size_t(state.thread_index()) * (kSequenceLength / 4);
  PoolStats before = env.pool->stats();
  for (auto _ : state) {
    env.fetch(env.order[i++ & (kSequenceLength - 1)]);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    // Every thread has left the loop here (the loop's end is a barrier).
    PoolStats after = env.pool->stats();
    double hits = double(after.hits - before.hits), misses = double(after.misses - before.misses);
    state.counters["hit_ratio"] = hits + misses > 0 ? hits / (hits + misses) : 0;
  }
}

void BM_PoolHit(benchmark::State& state) {
  run_fetches(state, hit_env());
}
BENCHMARK(BM_PoolHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_PoolMiss(benchmark::State& state) {
  run_fetches(state, miss_env());
}
BENCHMARK(BM_PoolMiss)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace pagefs
