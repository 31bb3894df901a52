// BufferPool statistics: hits on pages read ahead are counted apart, once
// each, so `pagefs stats` can say how much of the hit ratio read-ahead made.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/crc32c.h"
#include "engine/mem_device.h"

namespace pagefs {
namespace {

constexpr uint32_t kPage = 4096;

TEST(BufferPoolStats, AHitOnAPageReadAheadCountsOnce) {
  MemDevice dev(1 << 20);
  struct alignas(kPage) Page {
    std::byte bytes[kPage];
  };
  auto page = std::make_unique<Page>();  // the device takes aligned buffers only
  std::vector<uint32_t> crcs;
  for (uint64_t p = 10; p < 13; p++) {
    std::memset(page->bytes, int(p), kPage);
    ASSERT_TRUE(dev.write_at(p * kPage, page->bytes, kPage).ok());
    crcs.push_back(crc32c(page->bytes, kPage));
  }
  auto pool = std::move(BufferPool::open(dev, kPage, 1 << 20, false)).value();
  const DataPageRequest ahead[] = {{PageNo{10}, crcs[0]}, {PageNo{11}, crcs[1]}};
  pool->prefetch_data(ahead);
  EXPECT_EQ(pool->stats().readahead_pages, 2u);

  for (int round = 0; round < 2; round++) {  // the second use is a plain hit
    for (uint64_t p = 10; p < 13; p++) {
      auto ref = pool->fetch_data(PageNo{p}, crcs[p - 10]);
      ASSERT_TRUE(ref.ok());
      EXPECT_EQ(ref->data()[0], std::byte(p));
    }
  }
  const PoolStats s = pool->stats();
  EXPECT_EQ(s.misses, 1u) << "page 12 was not read ahead";
  EXPECT_EQ(s.hits, 5u);
  EXPECT_EQ(s.readahead_hits, 2u);
}

}  // namespace
}  // namespace pagefs
