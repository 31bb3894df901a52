// B+tree tests over the in-memory device: inserts, lookups, scans and deletes
// large enough to split and collapse nodes at several levels.
#include "engine/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "tests/engine/corrupt.h"

namespace pagefs {
namespace {

class BtreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    sb_.page_size = 4096;
    // Reuse the geometry mkfs wrote.
    ASSERT_TRUE(dev_.read_at(0, page_, 4096).ok());
    std::memcpy(&sb_, page_, sizeof sb_);
    pool_ = std::move(BufferPool::open(dev_, 4096, 1 << 20, false)).value();
    space_ = std::move(SpaceMap::load(*pool_, sb_)).value();
    root_ = TreeRoot{sb_.tree_root, sb_.tree_height};
    tree_ = std::make_unique<Btree>(*pool_, *space_, root_);
  }

  static std::span<const std::byte> bytes(const std::string& s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }

  // Writes the tree home and starts over with an empty cache, so that bytes
  // changed on the device are what the next operation reads.
  void reopen() {
    ASSERT_TRUE(pool_->flush_all().ok());
    tree_ = nullptr;
    space_ = nullptr;
    pool_ = std::move(BufferPool::open(dev_, 4096, 1 << 20, false)).value();
    space_ = std::move(SpaceMap::load(*pool_, sb_)).value();
    tree_ = std::make_unique<Btree>(*pool_, *space_, root_);
  }
  // A tree three levels deep: keys (i + 2, kInode, 0) for i < 5000.
  void fill_three_levels() {
    for (uint64_t i = 0; i < 5000; i++) {
      ASSERT_TRUE(tree_->put(key(i), bytes(std::string(200, 'q'))).ok());
    }
    ASSERT_EQ(root_.height, 3u);
  }
  static Key key(uint64_t i) { return Key::of(i + 2, KeyKind::kInode, 0); }
  // The first child of the first child of the root: a leaf.
  uint64_t first_leaf() {
    Node root = test::node_at(dev_, root_.page);
    return test::node_at(dev_, root.child_at(0)).child_at(0);
  }
  uint64_t metadata_errors() const { return pool_->stats().metadata_errors; }

  MemDevice dev_{64 << 20};
  alignas(4096) std::byte page_[4096];
  Superblock sb_{};
  std::unique_ptr<BufferPool> pool_;
  std::unique_ptr<SpaceMap> space_;
  TreeRoot root_;
  std::unique_ptr<Btree> tree_;
};

TEST_F(BtreeTest, InsertLookupAndScanInOrderAcrossSplits) {
  std::map<Key, std::string> model;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; i++) {
    Key k = Key::of(rng() % 5000 + 2, KeyKind::kDirent, rng());
    std::string v(rng() % 200, char('a' + i % 26));
    ASSERT_TRUE(tree_->put(k, bytes(v)).ok());
    model[k] = v;
  }
  EXPECT_GE(root_.height, 3u);
  std::string out;
  for (auto& [k, v] : model) {
    auto r = tree_->get(k, &out);
    ASSERT_TRUE(r.ok() && *r);
    ASSERT_EQ(out, v);
  }
  std::vector<Key> seen;
  ASSERT_TRUE(tree_
                  ->scan(Key::min(), Key::max(),
                         [&](const Key& k, std::span<const std::byte>) {
                           seen.push_back(k);
                           return true;
                         })
                  .ok());
  // The root inode written by mkfs is in the tree too.
  ASSERT_EQ(seen.size(), model.size() + 1);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST_F(BtreeTest, EraseEverythingCollapsesTheTree) {
  std::vector<Key> keys;
  for (uint64_t i = 0; i < 30000; i++) keys.push_back(Key::of(100, KeyKind::kExtent, i * 7));
  std::string v(48, 'x');
  for (const Key& k : keys) ASSERT_TRUE(tree_->insert(k, bytes(v)).ok());
  uint64_t free_full = space_->free_pages();
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(7));
  for (const Key& k : keys) {
    auto r = tree_->erase(k);
    ASSERT_TRUE(r.ok() && *r);
  }
  EXPECT_EQ(root_.height, 1u);
  EXPECT_GT(space_->free_pages_after_commit(), free_full);  // emptied nodes were freed
  std::string out;
  auto r = tree_->get(Key::of(1, KeyKind::kInode, 0), &out);
  EXPECT_TRUE(r.ok() && *r);  // the one item left
  pool_->check_invariants();
}

TEST_F(BtreeTest, InsertOnlyRefusesDuplicatesAndPutReplacesWithOtherSize) {
  Key k = Key::of(9, KeyKind::kXattr, 1234);
  ASSERT_TRUE(tree_->insert(k, bytes("one")).ok());
  EXPECT_EQ(tree_->insert(k, bytes("two")).error(), EEXIST);
  ASSERT_TRUE(tree_->put(k, bytes(std::string(500, 'z'))).ok());
  std::string out;
  ASSERT_TRUE(*tree_->get(k, &out));
  EXPECT_EQ(out, std::string(500, 'z'));
  EXPECT_EQ(tree_->put(k, bytes(std::string(4000, 'z'))).error(), E2BIG);
}

TEST_F(BtreeTest, SurvivesFlushAndCacheSmallerThanTree) {
  // A 64-frame pool is far smaller than this tree: every operation evicts.
  pool_ = nullptr;
  tree_ = nullptr;
  space_ = nullptr;
  pool_ = std::move(BufferPool::open(dev_, 4096, 64 * 4096, false)).value();
  space_ = std::move(SpaceMap::load(*pool_, sb_)).value();
  tree_ = std::make_unique<Btree>(*pool_, *space_, root_);
  for (uint64_t i = 0; i < 20000; i++) {
    ASSERT_TRUE(tree_->put(Key::of(i + 2, KeyKind::kInode, 0), bytes(std::string(100, 'q'))).ok());
  }
  ASSERT_TRUE(pool_->flush_all().ok());
  std::string out;
  for (uint64_t i = 0; i < 20000; i += 97) {
    ASSERT_TRUE(*tree_->get(Key::of(i + 2, KeyKind::kInode, 0), &out));
  }
  pool_->check_invariants();
}

// A child one level too low (the root pointing straight at a leaf) is
// damage, not a shorter path: the descent checks every child's level.
TEST_F(BtreeTest, ChildAtTheWrongLevelIsEio) {
  fill_three_levels();
  reopen();
  uint64_t leaf = first_leaf();
  test::set_child(dev_, root_.page, 0, leaf);
  std::string out;
  EXPECT_EQ(tree_->get(key(0), &out).error(), EIO);
  EXPECT_EQ(metadata_errors(), 1u);
}

// A node that points back at the root: without the level check a lookup would
// loop forever and a scan recurse until the stack ran out.
TEST_F(BtreeTest, PointerCycleIsEioNotAHang) {
  fill_three_levels();
  reopen();
  test::set_child(dev_, root_.page, 0, root_.page);
  std::string out;
  EXPECT_EQ(tree_->get(key(0), &out).error(), EIO);
  auto visit = [](const Key&, std::span<const std::byte>) { return true; };
  EXPECT_EQ(tree_->scan(Key::min(), Key::max(), visit).error(), EIO);
  EXPECT_EQ(tree_->put(key(1), bytes("v")).error(), EIO);
  EXPECT_EQ(tree_->erase(key(2)).error(), EIO);
  EXPECT_EQ(metadata_errors(), 4u);
  EXPECT_TRUE(*tree_->get(key(4999), &out)) << "the rest of the tree is still readable";
}

// A child pointer outside the data region is refused before any device read:
// it is not a checksum failure of the page it names.
TEST_F(BtreeTest, ChildOutsideTheDataRegionIsEioWithoutReadingIt) {
  fill_three_levels();
  reopen();
  std::string out;
  for (uint64_t bad : {uint64_t{1}, sb_.data_start - 1, sb_.page_count, ~uint64_t{0}}) {
    test::set_child(dev_, root_.page, 0, bad);
    reopen();
    EXPECT_EQ(tree_->get(key(0), &out).error(), EIO) << bad;
    EXPECT_EQ(metadata_errors(), 1u) << bad;
    EXPECT_EQ(pool_->stats().checksum_errors, 0u) << bad;
  }
}

// Without device reads (BufferPool::NoDeviceReads, for readers holding the
// filesystem lock), a lookup on a cold cache fails at the first page the pool
// lacks and names it; load() reads it, and the lookup, tried again, gets one
// level further each time. Each page is read once.
TEST_F(BtreeTest, ALookupWithoutDeviceReadsNamesEachMissAndLoadFillsIt) {
  fill_three_levels();
  reopen();
  const uint64_t misses_before = pool_->stats().misses;
  std::string v;
  int tries = 0;
  for (;; tries++) {
    ASSERT_LT(tries, 10);
    BufferPool::NoDeviceReads no_reads;
    auto got = tree_->get(key(4321), &v);
    if (got.ok()) {
      EXPECT_TRUE(*got);
      break;
    }
    EXPECT_EQ(got.error(), EWOULDBLOCK);
    ASSERT_TRUE(no_reads.missed().has_value());
    pool_->load(*no_reads.missed());
  }
  EXPECT_EQ(tries, 3);  // root, internal node, leaf
  EXPECT_EQ(v, std::string(200, 'q'));
  EXPECT_EQ(pool_->stats().misses - misses_before, 3u);
}

// A damaged page is left out by load() without a word; the lookup that then
// reads it under its lock reports it, once.
TEST_F(BtreeTest, ADamagedPageIsReportedOnceByTheReadThatNeedsIt) {
  fill_three_levels();
  const uint64_t leaf = test::leaf_of(dev_, key(0));
  reopen();
  test::break_page(dev_, leaf);
  std::string v;
  for (int tries = 0; tries < 5; tries++) {
    BufferPool::NoDeviceReads no_reads;
    auto got = tree_->get(key(0), &v);
    ASSERT_FALSE(got.ok());
    ASSERT_TRUE(no_reads.missed().has_value());
    pool_->load(*no_reads.missed());
  }
  EXPECT_EQ(metadata_errors() + pool_->stats().checksum_errors, 0u);
  auto got = tree_->get(key(0), &v);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), EIO);
  EXPECT_EQ(metadata_errors() + pool_->stats().checksum_errors, 1u);
}

}  // namespace
}  // namespace pagefs
