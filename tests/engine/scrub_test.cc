// engine/scrub.cc: the online scrub on a mounted filesystem, with the
// committer, checkpointer and write-back threads running. Pages are damaged
// through the device while it is mounted (or before the mount), and the scrub
// must find them, repair metadata only from an exact copy and through a
// transaction, and never take the filesystem's own changes for damage.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "engine/xattr_item.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/device_ref.h"
#include "tests/engine/repair_fixture.h"

namespace pagefs::test {
namespace {

using fsck::Mode;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

Buffer aligned(size_t bytes) {
  return Buffer(static_cast<std::byte*>(std::aligned_alloc(kPageBytes, bytes)));
}

std::string contents(size_t seed, size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; i++) s[i] = char((seed * 131 + i * 7) % 251);
  return s;
}

class ScrubTest : public RepairTest {
 protected:
  FileSystem* mount_small(std::unique_ptr<Device> device = nullptr) {
    MountOptions options;
    options.cache_bytes = 2 << 20;  // evicts: pages come and go under the scrub
    options.commit_interval_s = 1;
    std::string msg;
    auto r = FileSystem::mount(device ? std::move(device) : std::make_unique<DeviceRef>(*dev_),
                               options, &msg);
    EXPECT_TRUE(r.ok()) << "mount: " << msg;
    fs_ = r.ok() ? std::move(r).value() : nullptr;
    return fs_.get();
  }

  // Changes one page through the device, as a stray write would: safe while
  // the filesystem is mounted, since the device serializes requests.
  void damage_page(MemDevice& dev, uint64_t page, const std::function<void(std::byte*)>& change) {
    Buffer buf = aligned(kPageBytes);
    ASSERT_TRUE(dev.read_at(page * kPageBytes, buf.get(), kPageBytes).ok());
    change(buf.get());
    ASSERT_TRUE(dev.write_at(page * kPageBytes, buf.get(), kPageBytes).ok());
  }
  void break_mounted_page(uint64_t page) {
    damage_page(*dev_, page, [](std::byte* p) { p[kPageBytes - 100] ^= std::byte{0x5a}; });
  }

  ScrubStatus scrub() {
    ScrubOptions options;
    options.rate_mbps = 2000;
    EXPECT_TRUE(fs_->scrub_start(options).ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    for (;;) {
      ScrubStatus s = fs_->scrub_status();
      if (s.state != ScrubStatus::State::kRunning) return s;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the scrub did not end";
        fs_->scrub_cancel();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Transactions closed for the committer: a change made through the
  // running transaction is counted once it is on its way to the journal.
  uint64_t commits() { return fs_->internals_for_testing().committer_->closed_txn(); }

  // The device as a crash now would leave it: one read of all of it, which
  // the device serializes against the filesystem's writes.
  std::unique_ptr<MemDevice> crash_image() {
    auto copy = std::make_unique<MemDevice>(dev_->size_bytes());
    Buffer bytes = aligned(dev_->size_bytes());
    EXPECT_TRUE(dev_->read_at(0, bytes.get(), dev_->size_bytes()).ok());
    std::memcpy(copy->raw(), bytes.get(), dev_->size_bytes());
    return copy;
  }

  static std::string describe(const ScrubStatus& s) {
    std::string out = "state " + std::to_string(int(s.state)) + " " + s.failure;
    for (const ScrubDamage& d : s.damage) {
      out += "\n  page " + std::to_string(d.page) + " " + d.owner + ": " + d.what +
             (d.repaired ? " (repaired)" : "");
    }
    return out;
  }
};

// Files are written, rewritten, fsync'd, removed and made while scrubs run
// back to back: pages move between the cache, the journal and home all the
// time, and none of it is damage.
TEST_F(ScrubTest, ChangesDuringScrubsAreNotDamage) {
  populate();
  ASSERT_NE(mount_small(), nullptr);
  const InodeNo many{ino_of("/many")};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; t++) {
    workers.emplace_back([&, t] {
      for (uint64_t round = 0; !stop; round++) {
        const std::string name = "w" + std::to_string(t) + "_" + std::to_string(round % 24);
        (void)fs_->unlink(many, name, Caller{});
        auto made = fs_->mknod(many, name, S_IFREG | 0644, 0, Caller{});
        if (!made.ok()) continue;
        const std::string data = contents(round, 1000 + (round % 9) * 7000);
        (void)fs_->write(InodeNo{made->ino}, 0, data.data(), data.size());
        // Overwrites of live data pages, which are journaled.
        const InodeNo old{ino_of("/many/f" + std::string(round % 10 < 5 ? "01" : "07") +
                                 std::to_string(round % 10))};
        const std::string again = contents(round + 7, 300);
        (void)fs_->write(old, 0, again.data(), again.size());
        if (round % 5 == 0) (void)fs_->fsync(InodeNo{made->ino}, false);
      }
    });
  }
  for (int i = 0; i < 8; i++) {
    const ScrubStatus s = scrub();
    EXPECT_EQ(s.state, ScrubStatus::State::kDone) << describe(s);
    EXPECT_EQ(s.errors, 0u) << describe(s);
    EXPECT_GT(s.pages_checked, 0u);
  }
  stop = true;
  for (std::thread& w : workers) w.join();
  unmount();
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, 0) << check.out;
}

// A leaf rotted on the device while the cache does not hold it comes back
// from the journal's image of the same version, as a transaction: a commit
// carries it, and a crash right after leaves it repaired.
TEST_F(ScrubTest, ADamagedLeafIsRestoredFromTheJournalThroughACommit) {
  populate();
  const uint64_t ino = ino_of("/many/f100");
  const uint64_t leaf = leaf_of(*dev_, Key::of(ino, KeyKind::kInode, 0));
  ASSERT_NE(leaf, superblock(*dev_).tree_root);
  break_page(*dev_, leaf);
  ASSERT_NE(mount_small(), nullptr);
  const uint64_t commits_before = commits();
  const ScrubStatus s = scrub();
  EXPECT_EQ(s.state, ScrubStatus::State::kDone) << describe(s);
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 1u) << describe(s);
  EXPECT_EQ(s.damage[0].page, leaf);
  EXPECT_TRUE(s.damage[0].metadata);
  EXPECT_TRUE(s.damage[0].repaired);
  EXPECT_GT(commits(), commits_before) << "the repair was not committed";
  ASSERT_TRUE(fs_->fsync(kRootInode, false).ok());
  std::unique_ptr<MemDevice> crashed = crash_image();
  unmount();
  // Recovery of the image a crash would have left brings the leaf back.
  MemDevice& image = *crashed;
  ASSERT_NE(mount_small(std::make_unique<DeviceRef>(image)), nullptr);
  std::string data(oracle_.at("/many/f100").data.size(), '\0');
  auto n = fs_->read(InodeNo{ino}, 0, data.size(), data.data());
  ASSERT_TRUE(n.ok()) << strerror(n.error());
  EXPECT_EQ(data, oracle_.at("/many/f100").data);
  unmount();
  FsckResult check = fsck_on(image, Mode::kCheck);
  EXPECT_EQ(check.code, 0) << check.out;
}

// A leaf the cache holds clean is what the device should hold: the scrub
// puts it back, again as a committed change.
TEST_F(ScrubTest, ADamagedLeafTheCacheHoldsIsRewrittenFromIt) {
  populate();
  const uint64_t ino = ino_of("/many/f060");
  const uint64_t leaf = leaf_of(*dev_, Key::of(ino, KeyKind::kInode, 0));
  ASSERT_NE(mount_small(), nullptr);
  ASSERT_TRUE(fs_->getattr(InodeNo{ino}).ok());  // reads the leaf into the cache
  break_mounted_page(leaf);
  const uint64_t commits_before = commits();
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 1u) << describe(s);
  EXPECT_GT(commits(), commits_before) << "the repair was not committed";
  unmount();
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, 0) << check.out;
  expect_intact();
}

// Bitmap pages are all cached from the mount on: a damaged one is rewritten
// from the cache.
TEST_F(ScrubTest, ADamagedBitmapPageIsRewrittenFromTheCache) {
  populate();
  ASSERT_NE(mount_small(), nullptr);
  break_mounted_page(superblock(*dev_).bitmap_start);
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 1u) << describe(s);
  EXPECT_NE(s.damage[0].owner.find("bitmap"), std::string::npos) << describe(s);
  unmount();
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, 0) << check.out;
}

// A damaged superblock copy is written again from the superblock in memory.
TEST_F(ScrubTest, ADamagedSuperblockCopyIsRewritten) {
  populate();
  ASSERT_NE(mount_small(), nullptr);
  break_mounted_page(1);
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 1u) << describe(s);
  const char* why = nullptr;
  Buffer page = aligned(kPageBytes);
  ASSERT_TRUE(dev_->read_at(kPageBytes, page.get(), kPageBytes).ok());
  EXPECT_TRUE(verify_meta_page(page.get(), kPageBytes, PageNo{1}, PageType::kSuperblock, &why))
      << why;
  unmount();
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, 0) << check.out;
}

// Damaged file data that no copy covers is reported with its path and
// offset, and left for fsck.
TEST_F(ScrubTest, DamagedDataIsReportedWithItsPath) {
  populate();
  const uint64_t ino = ino_of("/docs/big.bin");
  const uint64_t phys = extent_at(*dev_, ino, 0).phys + 3;
  break_page(*dev_, phys);
  ASSERT_NE(mount_small(), nullptr);
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 0u) << describe(s);
  EXPECT_FALSE(s.damage[0].metadata);
  EXPECT_EQ(s.damage[0].ino, ino);
  EXPECT_EQ(s.damage[0].offset, 3u * kPageBytes);
  EXPECT_EQ(s.damage[0].owner, "/docs/big.bin");
  unmount();
  EXPECT_EQ(fsck(Mode::kCheck).code, 4);
}

// A running scrub lists a damaged page only once what owns it and whether
// it was repaired are known, so that `pagefs scrub`, which prints each line
// once as it appears, never prints a file's damage without its path, or a
// page as damaged that the journal then repairs.
TEST_F(ScrubTest, ARunningScrubListsDamageOnlyOnceItIsSettled) {
  populate();
  const uint64_t data_page = extent_at(*dev_, ino_of("/docs/big.bin"), 0).phys + 3;
  const uint64_t leaf = leaf_of(*dev_, Key::of(ino_of("/many/f100"), KeyKind::kInode, 0));
  break_page(*dev_, data_page);
  break_page(*dev_, leaf);
  ASSERT_NE(mount_small(), nullptr);
  ScrubOptions options;
  options.rate_mbps = 20;  // slow enough to be seen at work
  ASSERT_TRUE(fs_->scrub_start(options).ok());
  std::vector<ScrubDamage> seen;
  int polls = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (;; polls++) {
    const ScrubStatus s = fs_->scrub_status();
    for (size_t i = 0; i < s.damage.size(); i++) {
      const ScrubDamage& d = s.damage[i];
      EXPECT_FALSE(d.owner.empty()) << "listed before its owner was named: page " << d.page;
      if (i < seen.size()) {
        EXPECT_EQ(d.owner, seen[i].owner) << "page " << d.page;
        EXPECT_EQ(d.repaired, seen[i].repaired) << "page " << d.page << " changed once listed";
      } else {
        seen.push_back(d);
      }
    }
    if (s.state != ScrubStatus::State::kRunning) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the scrub did not end";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GT(polls, 10) << "the scrub ended too soon to be watched";
  ASSERT_EQ(seen.size(), 2u);
  for (const ScrubDamage& d : seen) {
    if (d.metadata) {
      EXPECT_EQ(d.page, leaf);
      EXPECT_TRUE(d.repaired) << "the leaf is restored from the journal";
    } else {
      EXPECT_EQ(d.page, data_page);
      EXPECT_EQ(d.owner, "/docs/big.bin");
    }
  }
  unmount();
}

// A hostile tree whose root points to its first child from every slot: the
// child is walked once, each extra pointer is reported, and nothing is
// "repaired" from the cache, whose copy of the child is the device's.
TEST_F(ScrubTest, ANodeThatManySlotsPointToIsWalkedOnceAndNotRepaired) {
  populate();
  const uint64_t root = superblock(*dev_).tree_root;
  const uint16_t slots = node_at(*dev_, root).count();
  ASSERT_FALSE(node_at(*dev_, root).is_leaf());
  ASSERT_GE(slots, 2);
  const uint64_t first = node_at(*dev_, root).child_at(0);
  for (uint16_t i = 1; i < slots; i++) set_child(*dev_, root, i, first);
  ASSERT_NE(mount_small(), nullptr);
  // Every lookup now ends under the first child: it and its subtree are cached clean.
  for (const auto& [path, entry] : oracle_) (void)fs_->getattr(InodeNo{entry.ino});
  const ScrubStatus s = scrub();
  EXPECT_EQ(s.state, ScrubStatus::State::kDone) << describe(s);
  EXPECT_EQ(s.errors, uint64_t(slots - 1)) << describe(s);
  EXPECT_EQ(s.repaired, 0u) << describe(s);
  for (const ScrubDamage& d : s.damage) EXPECT_EQ(d.page, first) << describe(s);
  EXPECT_LE(s.pages_checked, s.pages_total) << "a subtree was walked more than once";
  unmount();
  EXPECT_EQ(fsck(Mode::kCheck).code, 4);
}

// The pages of the xattr `name` of `ino` kept in pages, as the image holds them.
std::vector<XattrPage> xattr_pages_of(MemDevice& dev, uint64_t ino, std::string_view name) {
  const Key key = Key::of(ino, KeyKind::kXattr, cookie_of(name));
  const Superblock sb = superblock(dev);
  XattrItem x;
  const char* why = nullptr;
  ItemLimits limits{sb.data_start, sb.page_count, kDefaultPageSize, true};
  EXPECT_TRUE(XattrItem::decode(value_of(dev, key), limits, &x, &why)) << why;
  return x.pages;
}

// A value kept in pages is scrubbed as file data is: a damaged page is
// reported with the file's path and the xattr's name, and left for fsck
// when no copy of it is held.
TEST_F(ScrubTest, ADamagedXattrValuePageIsReportedWithItsName) {
  populate();
  const uint64_t ino = ino_of("/docs/sub/deep.txt");
  ASSERT_NE(mount(), nullptr);
  ASSERT_TRUE(fs_->setxattr(InodeNo{ino}, "user.big", contents(7, 10000), 0).ok());
  unmount();
  const std::vector<XattrPage> pages = xattr_pages_of(*dev_, ino, "user.big");
  ASSERT_EQ(pages.size(), 3u);
  break_page(*dev_, pages[1].phys);
  ASSERT_NE(mount_small(), nullptr);
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 0u) << describe(s);
  EXPECT_EQ(s.damage[0].page, pages[1].phys);
  EXPECT_FALSE(s.damage[0].metadata);
  EXPECT_EQ(s.damage[0].ino, ino);
  EXPECT_EQ(s.damage[0].offset, kPageBytes);
  EXPECT_EQ(s.damage[0].owner, "/docs/sub/deep.txt");
  EXPECT_NE(s.damage[0].what.find("xattr user.big"), std::string::npos) << describe(s);
  EXPECT_EQ(fs_->getxattr(InodeNo{ino}, "user.big").error(), EIO);
  unmount();
  EXPECT_EQ(fsck(Mode::kCheck).code, 4);
}

// A value's page the cache holds clean is written back home from it.
TEST_F(ScrubTest, ADamagedXattrValuePageTheCacheHoldsIsRewrittenFromIt) {
  populate();
  const uint64_t ino = ino_of("/docs/a.txt");
  const std::string value = contents(8, 9000);
  ASSERT_NE(mount(), nullptr);
  ASSERT_TRUE(fs_->setxattr(InodeNo{ino}, "user.big", value, 0).ok());
  unmount();
  const std::vector<XattrPage> pages = xattr_pages_of(*dev_, ino, "user.big");
  ASSERT_EQ(pages.size(), 3u);
  ASSERT_NE(mount_small(), nullptr);
  ASSERT_TRUE(fs_->getxattr(InodeNo{ino}, "user.big").ok());  // reads the pages into the cache
  break_mounted_page(pages[2].phys);
  const ScrubStatus s = scrub();
  ASSERT_EQ(s.errors, 1u) << describe(s);
  EXPECT_EQ(s.repaired, 1u) << describe(s);
  EXPECT_EQ(s.damage[0].offset, 2 * kPageBytes);
  unmount();
  EXPECT_EQ(fsck(Mode::kCheck).code, 0);
  ASSERT_NE(mount(), nullptr);
  auto got = fs_->getxattr(InodeNo{ino}, "user.big");
  ASSERT_TRUE(got.ok()) << strerror(got.error());
  EXPECT_EQ(*got, value);
  unmount();
}

}  // namespace
}  // namespace pagefs::test
