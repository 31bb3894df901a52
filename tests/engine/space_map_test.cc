// SpaceMap tests: page ranges that only damaged metadata can produce are EIO
// and metadata damage, never an assert; a bitmap that frees reserved pages is
// refused at load; the windows of sequential writers are left to them while
// other pages are free, and used when none is.
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

// Inode 5 writes sequentially: its window lies ahead of its last page.
TEST_F(SpaceMapTest, AnotherWritersWindowIsSkipped) {
  auto map = load();
  ASSERT_TRUE(map.ok());
  SpaceMap& m = **map;
  auto first = m.allocate(PageNo{0}, 1, false, 5);
  ASSERT_TRUE(first.ok());
  const uint64_t at = first->start.value;
  m.streams().allocated(5, AllocStreams::kMinFilePage, at);
  ASSERT_EQ(m.streams().foreign_window_end(at + 1, 0), at + AllocStreams::kMinWindow);

  // Another file, a tree page, a small file: past the window.
  auto other = m.allocate(PageNo{at + 1}, 1, false, 9);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->start.value, at + AllocStreams::kMinWindow);
  auto meta = m.allocate(PageNo{at + 1}, 1, true);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->start.value, at + AllocStreams::kMinWindow + 1);
  // The window's owner gets the page after its last.
  auto own = m.allocate(PageNo{at + 1}, 1, false, 5);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->start.value, at + 1);
}

// A window is only a preference: with every other page taken, its pages go
// to whoever asks, and the filesystem is not full before the device is.
TEST_F(SpaceMapTest, AWindowIsUsedWhenNothingElseIsFree) {
  auto map = load();
  ASSERT_TRUE(map.ok());
  SpaceMap& m = **map;
  auto first = m.allocate(PageNo{0}, 1, false, 5);
  ASSERT_TRUE(first.ok());
  m.streams().allocated(5, AllocStreams::kMinFilePage, first->start.value);
  const uint64_t window_end = first->start.value + AllocStreams::kMinWindow;
  uint64_t in_window = 0;
  while (m.data_free_pages() > 0) {
    const uint64_t free_before = m.data_free_pages();
    auto run = m.allocate(PageNo{0}, 1, false);
    ASSERT_TRUE(run.ok()) << "ENOSPC with " << free_before << " pages free";
    if (run->start.value > first->start.value && run->start.value < window_end) {
      in_window++;
      // Only the window's own pages were left (and the metadata reserve).
      EXPECT_LE(free_before + SpaceMap::kMetadataReserve, AllocStreams::kMinWindow - 1)
          << "page " << run->start.value;
    }
  }
  EXPECT_EQ(in_window, AllocStreams::kMinWindow - 1 - SpaceMap::kMetadataReserve);
  EXPECT_EQ(m.allocate(PageNo{0}, 1, false).error(), ENOSPC);
  auto meta = m.allocate(PageNo{0}, 1, true);  // the reserve, in the window too
  ASSERT_TRUE(meta.ok());
  EXPECT_GT(meta->start.value, first->start.value);
  EXPECT_LT(meta->start.value, window_end);
}

}  // namespace
}  // namespace pagefs
