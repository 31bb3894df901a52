// Micro-benchmark of pagefs::crc32c, the checksum of every page.
//
// What: crc32c() over one 4 KiB page (the default page size) and one 64 KiB
// page (the largest), plus crc32c_extend() over a 4 KiB page split in two the
// way a header-then-body checksum would be taken. Reported as bytes/s.
//
// Why: every device read is verified and every metadata write-out is stamped
// with a CRC32C, and the journal checksums each record twice (payload and
// commit). The checksum therefore sits on the hot path of cache misses,
// write-back and commit; this gives the per-page cost to compare against the
// other costs on those paths (a MemDevice memcpy, a zstd compression, a tree
// descent).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/crc32c.h"

namespace {

// A page-aligned buffer of pseudo-random bytes (contents do not change the
// speed of CRC32C, but keep the compiler from seeing a constant).
std::byte* random_buffer(size_t bytes) {
  auto* p = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < bytes; j++) p[i + j] = std::byte(v >> (8 * j));
  }
  return p;
}

void BM_Crc32c(benchmark::State& state) {
  const size_t bytes = size_t(state.range(0));
  std::byte* buf = random_buffer(bytes);
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf);
    uint32_t crc = pagefs::crc32c(buf, bytes);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
  state.SetLabel(bytes == 4096 ? "4KiB page" : "64KiB page");
  std::free(buf);
}
BENCHMARK(BM_Crc32c)->Arg(4096)->Arg(65536);

// The two-part form: the first 32 bytes (a PageHeader), then the rest.
void BM_Crc32cExtend(benchmark::State& state) {
  const size_t bytes = 4096;
  std::byte* buf = random_buffer(bytes);
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf);
    uint32_t crc = pagefs::crc32c(buf, 32);
    crc = pagefs::crc32c_extend(crc, buf + 32, bytes - 32);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
  state.SetLabel("4KiB page, 32 B + rest");
  std::free(buf);
}
BENCHMARK(BM_Crc32cExtend);

}  // namespace
