// SpaceMap tests: page ranges that only damaged metadata can produce are EIO
// and metadata damage, never an assert; a bitmap that frees reserved pages is
// refused at load.
#include "engine/space_map.h"

#include <gtest/gtest.h>

#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "tests/engine/corrupt.h"

namespace pagefs {
namespace {

class SpaceMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    sb_ = test::superblock(dev_);
    pool_ = std::move(BufferPool::open(dev_, 4096, 1 << 20, false)).value();
  }
  Result<std::unique_ptr<SpaceMap>> load() { return SpaceMap::load(*pool_, sb_); }
  uint64_t metadata_errors() const { return pool_->stats().metadata_errors; }
  // Clears the bitmap bit of `page` on the device, with a valid checksum.
  void mark_free_on_device(uint64_t page) {
    uint64_t bits = bitmap_bits_per_page(4096);
    std::byte* map = test::page_at(dev_, sb_.bitmap_start + page / bits) + sizeof(PageHeader);
    map[(page % bits) / 8] &= ~std::byte(1u << (page % 8));
    test::restamp(dev_, sb_.bitmap_start + page / bits);
  }

  MemDevice dev_{64 << 20};
  Superblock sb_{};
  std::unique_ptr<BufferPool> pool_;
};

TEST_F(SpaceMapTest, FreeOutsideTheDataRegionIsEio) {
  auto map = load();
  ASSERT_TRUE(map.ok());
  const uint64_t bad_starts[] = {
      0, 5, sb_.data_start - 1, sb_.page_count - 1, sb_.page_count, ~uint64_t{0} - 1};
  for (uint64_t start : bad_starts) {
    EXPECT_EQ((*map)->free(PageNo{start}, 2).error(), EIO) << start;
  }
  EXPECT_EQ(metadata_errors(), std::size(bad_starts));
  EXPECT_EQ((*map)->pending_pages(), 0u) << "nothing was freed";
}

TEST_F(SpaceMapTest, IsUsedOutsideTheDataRegionIsEio) {
  auto map = load();
  ASSERT_TRUE(map.ok());
  EXPECT_TRUE(*(*map)->is_used(PageNo{sb_.data_start}));  // the root leaf
  EXPECT_EQ((*map)->is_used(PageNo{3}).error(), EIO);
  EXPECT_EQ((*map)->is_used(PageNo{sb_.page_count + 100000}).error(), EIO);
  EXPECT_EQ(metadata_errors(), 2u);
}

TEST_F(SpaceMapTest, FreeingAFreePageIsEio) {
  auto map = load();
  ASSERT_TRUE(map.ok());
  EXPECT_EQ((*map)->free(PageNo{sb_.page_count - 10}, 1).error(), EIO);
  EXPECT_EQ(metadata_errors(), 1u);
}

// A free bit in the journal region would let the allocator hand out a journal
// page as a tree node; one past the end, a page that is not the filesystem's.
TEST_F(SpaceMapTest, LoadRefusesReservedPagesMarkedFree) {
  mark_free_on_device(sb_.journal_start + 3);
  EXPECT_EQ(load().error(), EIO);
  EXPECT_EQ(metadata_errors(), 1u);
}

TEST_F(SpaceMapTest, LoadRefusesPagesPastTheEndMarkedFree) {
  mark_free_on_device(sb_.page_count + 1);
  EXPECT_EQ(load().error(), EIO);
  EXPECT_EQ(metadata_errors(), 1u);
}

}  // namespace
}  // namespace pagefs
