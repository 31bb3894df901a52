// B+tree tests over the in-memory device: inserts, lookups, scans and deletes
// large enough to split and collapse nodes at several levels.
#include "engine/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "engine/formatter.h"
#include "engine/mem_device.h"

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

}  // namespace
}  // namespace pagefs
