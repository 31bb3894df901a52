// The randomized repair loop: damage a populated image in one to three random
// ways (bytes of tree pages changed with or without their checksum, items
// removed, pages zeroed, data pages flipped, bitmap bits, superblock fields
// and copies), then fsck -y -E zero_bad_data must leave a filesystem that
// fsck -n calls clean, that a second -y leaves unchanged, that mounts, whose
// every file reads, and in which every inode the damage did not touch is
// still there with the same contents (under its path or in /lost+found).
//
// PAGEFS_SEED picks the seed (test_env.h); PAGEFS_FSCK_ROUNDS the number of
// images (default 12, a few seconds); failures print the seed, the round and
// the damage, so a round can be replayed alone with PAGEFS_FSCK_FIRST_ROUND.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "fsck/checker.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/repair_fixture.h"
#include "tests/test_env.h"

namespace pagefs::test {
namespace {

using fsck::Mode;

// The pages of the tree, by level, from a walk of the healthy image.
struct TreePages {
  std::vector<uint64_t> leaves;
  std::vector<uint64_t> interior;
};

TreePages tree_pages(MemDevice& dev) {
  TreePages out;
  std::vector<uint64_t> level = {superblock(dev).tree_root};
  while (!level.empty()) {
    std::vector<uint64_t> next;
    for (uint64_t page : level) {
      Node node = node_at(dev, page);
      if (node.is_leaf()) {
        out.leaves.push_back(page);
        continue;
      }
      out.interior.push_back(page);
      for (uint16_t i = 0; i < node.count(); i++) next.push_back(node.child_at(i));
    }
    level.swap(next);
  }
  return out;
}

class FsckRandom : public RepairTest {
 protected:
  void SetUp() override {
    RepairTest::SetUp();
    populate();
    image_.assign(dev_->raw(), dev_->raw() + dev_->size_bytes());
    pages_ = tree_pages(*dev_);
    map_data_pages();
  }

  void restore() { std::memcpy(dev_->raw(), image_.data(), image_.size()); }

  // Which inode owns each data page.
  void map_data_pages() {
    for (uint64_t leaf : pages_.leaves) {
      Node node = node_at(*dev_, leaf);
      for (uint16_t i = 0; i < node.count(); i++) {
        const Key key = node.key_at(i);
        if (key.kind != uint8_t(KeyKind::kExtent)) continue;
        ExtentValue ev;
        std::memcpy(&ev, node.value_at(i).data(), sizeof ev);
        for (uint32_t p = 0; p < ev.pages; p++) owner_[ev.phys + p] = key.ino;
      }
    }
  }

  // Inodes with items in `leaf`, and the targets of its entries: what
  // damage to the leaf may change.
  void touch_leaf(uint64_t leaf) {
    Node node = node_at(*dev_, leaf);
    for (uint16_t i = 0; i < node.count(); i++) {
      const Key key = node.key_at(i);
      affected_.insert(key.kind == uint8_t(KeyKind::kOrphan) ? key.off : key.ino);
      if (key.kind == uint8_t(KeyKind::kDirent)) {
        DirentValue dv;
        std::memcpy(&dv, node.value_at(i).data(), sizeof dv);
        affected_.insert(dv.ino);
      }
    }
  }

  // A tree page; the ones damaged earlier in the round are remembered.
  uint64_t pick(const std::vector<uint64_t>& v) {
    const uint64_t page = v[rng_() % v.size()];
    damaged_.insert(page);
    return page;
  }

  // One random damage; its description goes to `log_`.
  void damage() {
    const Superblock sb = superblock(*dev_);
    switch (rng_() % 9) {
      case 0: {  // bit rot in a leaf
        uint64_t leaf = pick(pages_.leaves);
        touch_leaf(leaf);
        break_page(*dev_, leaf);
        log_ << "leaf " << leaf << " fails its checksum; ";
        break;
      }
      case 1: {  // bit rot in an interior node (or the root leaf)
        uint64_t node = pages_.interior.empty() ? sb.tree_root : pick(pages_.interior);
        if (pages_.interior.empty()) touch_leaf(node);
        break_page(*dev_, node);
        log_ << "node " << node << " fails its checksum; ";
        break;
      }
      case 2: {  // a wrong byte with a good checksum (a bug, a misdirected write)
        uint64_t leaf = pick(pages_.leaves);
        touch_leaf(leaf);
        size_t at = sizeof(PageHeader) + rng_() % (kPageBytes - sizeof(PageHeader));
        page_at(*dev_, leaf)[at] ^= std::byte(1 + rng_() % 255);
        restamp(*dev_, leaf);
        log_ << "leaf " << leaf << " byte " << at << " changed, restamped; ";
        break;
      }
      case 3: {  // an item lost (erased in place: the path to the leaf may be damaged)
        const uint64_t leaf = pages_.leaves[rng_() % pages_.leaves.size()];
        Node node = node_at(*dev_, leaf);
        if (node.count() < 2 || damaged_.count(leaf) > 0) break;  // its layout is not trusted
        damaged_.insert(leaf);
        touch_leaf(leaf);
        const uint16_t i = uint16_t(rng_() % node.count());
        const Key key = node.key_at(i);
        node.erase_at(i);
        restamp(*dev_, leaf);
        log_ << "item " << key.ino << "/" << int(key.kind) << "/" << key.off << " erased; ";
        break;
      }
      case 4: {  // a zeroed tree page
        uint64_t leaf = pick(pages_.leaves);
        touch_leaf(leaf);
        std::memset(page_at(*dev_, leaf), 0, kPageBytes);
        log_ << "leaf " << leaf << " zeroed; ";
        break;
      }
      case 5: {  // bit rot in file data
        auto it = owner_.begin();
        std::advance(it, rng_() % owner_.size());
        affected_.insert(it->second);
        break_page(*dev_, it->first);
        log_ << "data page " << it->first << " of inode " << it->second << " flipped; ";
        break;
      }
      case 6: {  // space-map bits
        for (int i = 0; i < 4; i++) {
          uint64_t page = sb.data_start + rng_() % (sb.page_count - sb.data_start);
          set_bitmap_bit(*dev_, page, rng_() % 2);
        }
        log_ << "bitmap bits changed; ";
        break;
      }
      case 7: {  // superblock counters in one copy, with a good checksum
        Superblock bad = sb;
        bad.free_pages = rng_() % sb.page_count;
        bad.inode_count = rng_() % 1000;
        bad.next_inode = 2 + rng_() % sb.next_inode;
        put_superblock(*dev_, bad, rng_() % 2);
        log_ << "superblock counters changed; ";
        break;
      }
      case 8: {  // a superblock copy (rarely both) fails its checksum
        const bool both = rng_() % 4 == 0;
        break_page(*dev_, rng_() % 2);
        if (both) break_page(*dev_, 1 - (rng_() % 2));
        log_ << (both ? "both superblock copies broken; " : "a superblock copy broken; ");
        break;
      }
    }
  }

  // The checks every round must pass; `what` names the round in failures.
  void check_round(const std::string& what) {
    FsckResult repair = fsck(Mode::kRepair, /*zero_bad_data=*/true);
    ASSERT_TRUE(repair.code == fsck::kExitClean || repair.code == fsck::kExitFixed) << what << "\n"
                                                                                    << repair.out;
    FsckResult check = fsck(Mode::kCheck);
    ASSERT_EQ(check.code, fsck::kExitClean) << what << "\n" << repair.out << check.out;
    std::vector<std::byte> before(dev_->raw(), dev_->raw() + dev_->size_bytes());
    FsckResult again = fsck(Mode::kRepair, true);
    ASSERT_EQ(again.code, fsck::kExitClean) << what << "\n" << again.out;
    ASSERT_EQ(std::memcmp(before.data(), dev_->raw(), before.size()), 0)
        << what << ": a second fsck -y changed the device";
    ASSERT_NE(mount(), nullptr) << what;
    Tree tree = walk();
    unmount();
    std::map<uint64_t, const Entry*> found;
    for (const auto& [path, e] : tree) {
      ASSERT_NE(e.data, "<EIO>") << what << ": " << path << " cannot be read\n" << repair.out;
      found[e.ino] = &e;
    }
    for (const auto& [path, e] : oracle_) {
      if (affected_.count(e.ino) > 0) continue;
      auto it = found.find(e.ino);
      ASSERT_NE(it, found.end()) << what << ": " << path << " (inode " << e.ino << ") is gone\n"
                                 << repair.out;
      EXPECT_EQ(it->second->type, e.type) << what << ": " << path;
      EXPECT_TRUE(it->second->data == e.data) << what << ": " << path << " changed\n" << repair.out;
    }
  }

  std::vector<std::byte> image_;
  TreePages pages_;
  std::map<uint64_t, uint64_t> owner_;  // data page -> inode
  std::mt19937_64 rng_;
  std::set<uint64_t> affected_;
  std::set<uint64_t> damaged_;  // tree pages damaged in this round
  std::ostringstream log_;
};

TEST_F(FsckRandom, EveryDamageIsRepairedAndSparesWhatItDidNotTouch) {
  const uint64_t seed = testenv::seed_from_env();
  const uint64_t rounds = testenv::env_u64("PAGEFS_FSCK_ROUNDS", 12);
  const uint64_t first = testenv::env_u64("PAGEFS_FSCK_FIRST_ROUND", 0);
  for (uint64_t round = first; round < first + rounds; round++) {
    restore();
    rng_.seed(seed * 1000003 + round);
    affected_.clear();
    damaged_.clear();
    log_.str("");
    const int damages = 1 + int(rng_() % 3);
    for (int i = 0; i < damages; i++) damage();
    const std::string what =
        "seed " + std::to_string(seed) + " round " + std::to_string(round) + ": " + log_.str();
    check_round(what);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
  printf("[ info ] %llu damaged images repaired (seed %llu)\n", (unsigned long long)rounds,
         (unsigned long long)seed);
}

}  // namespace
}  // namespace pagefs::test
