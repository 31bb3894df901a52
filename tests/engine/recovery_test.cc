// Recovery tests: choosing a superblock copy, and what the journal leaves
// behind after recovery stopped early.
#include "engine/recovery.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "fsck/checker.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

std::mutex g_log_mu;
std::vector<std::string> g_log;

void keep_line(LogLevel, const char* line) {
  std::lock_guard lock(g_log_mu);
  g_log.push_back(line);
}

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    set_log_sink(keep_line);
  }
  void TearDown() override {
    fs_.reset();
    set_log_sink(nullptr);
    g_log.clear();
  }

  // Mounts the device; the error and the user's message on failure.
  Status mount(std::string* message) {
    auto r =
        FileSystem::mount(std::make_unique<FaultDevice>(dev_, 1), MountOptions{8 << 20}, message);
    if (!r.ok()) return Err{r.error()};
    fs_ = std::move(r).value();
    return ok_status();
  }
  void mount() {
    std::string msg;
    ASSERT_TRUE(mount(&msg).ok()) << msg;
  }
  void unmount() {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
  }
  bool logged(const std::string& text) {
    std::lock_guard lock(g_log_mu);
    for (const std::string& l : g_log) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

  MemDevice dev_{64 << 20};
  std::unique_ptr<FileSystem> fs_;
};

// ---- the superblock ---------------------------------------------------------------

struct Damage {
  const char* what;
  std::function<void(Superblock&)> apply;
};

// Each of these makes a superblock copy unusable, whatever its checksum says.
std::vector<Damage> geometry_damage() {
  return {
      {"page_count past the device", [](Superblock& s) { s.page_count = 1ull << 40; }},
      {"page_count that overflows bytes", [](Superblock& s) { s.page_count = ~0ull / 2; }},
      {"journal over the superblocks", [](Superblock& s) { s.journal_start = 1; }},
      {"journal too small", [](Superblock& s) { s.journal_pages = 16; }},
      {"bitmap inside the journal", [](Superblock& s) { s.bitmap_start -= 1; }},
      {"absurd bitmap size", [](Superblock& s) { s.bitmap_pages = 1ull << 40; }},
      {"bitmap one page short", [](Superblock& s) { s.bitmap_pages = 0; }},
      {"bitmap one page too many", [](Superblock& s) { s.bitmap_pages += 1; }},
      {"data region inside the bitmap",
       [](Superblock& s) { s.data_start = s.bitmap_start + s.bitmap_pages - 1; }},
      {"data region past the end", [](Superblock& s) { s.data_start = s.page_count + 1000; }},
      {"tree root outside the data region", [](Superblock& s) { s.tree_root = 3; }},
      {"tree root past the end", [](Superblock& s) { s.tree_root = s.page_count; }},
      {"tree height 0", [](Superblock& s) { s.tree_height = 0; }},
      {"tree height past the maximum", [](Superblock& s) { s.tree_height = kMaxTreeHeight + 1; }},
      {"next_inode 1", [](Superblock& s) { s.next_inode = 1; }},
      {"journal tail inside a page", [](Superblock& s) { s.journal_tail += 100; }},
      {"journal tail near 2^64", [](Superblock& s) { s.journal_tail = ~0ull - 4095; }},
  };
}

TEST_F(RecoveryTest, MountRefusesSuperblocksWithImpossibleGeometry) {
  const Superblock good = test::superblock(dev_);
  for (const Damage& d : geometry_damage()) {
    Superblock bad = good;
    d.apply(bad);
    test::put_superblocks(dev_, bad);
    std::string message;
    EXPECT_EQ(mount(&message).error(), EIO) << d.what;
    EXPECT_EQ(message, "both superblock copies are damaged; run fsck.pagefs") << d.what;
    fs_.reset();
  }
  test::put_superblocks(dev_, good);
  mount();
}

// The newer copy is damaged: the older one is used, with a warning.
TEST_F(RecoveryTest, NewestValidCopyWins) {
  Superblock good = test::superblock(dev_);
  for (const Damage& d : geometry_damage()) {
    g_log.clear();
    Superblock bad = good;
    bad.generation = good.generation + 1;
    d.apply(bad);
    test::put_superblock(dev_, bad, 0);
    test::put_superblock(dev_, good, 1);
    std::string message;
    ASSERT_TRUE(mount(&message).ok()) << d.what << ": " << message;
    EXPECT_TRUE(logged("superblock copy 0")) << d.what;
    unmount();
    good = test::superblock(dev_);
  }
}

TEST_F(RecoveryTest, TruncatedDeviceIsNamedAsSuch) {
  MemDevice half(dev_.size_bytes() / 2);
  std::memcpy(half.raw(), dev_.raw(), half.size_bytes());
  std::string message;
  auto r =
      FileSystem::mount(std::make_unique<FaultDevice>(half, 1), MountOptions{8 << 20}, &message);
  EXPECT_EQ(r.error(), EINVAL);
  EXPECT_EQ(message, "device is smaller than the filesystem on it (truncated image?)");
}

// ---- the journal after a stop ------------------------------------------------------

// Files in the root directory, sorted.
std::vector<std::string> root_names(FileSystem& fs) {
  std::vector<std::string> names;
  EXPECT_TRUE(fs.readdir(kRootInode, 0, [&](const DirEntry& e) {
                  names.emplace_back(e.name);
                  return true;
                }).ok());
  std::sort(names.begin(), names.end());
  return names;
}

// Recovery stops at a record with one flipped bit; the records written after
// it before the crash stay in the region, whole. New transactions then start
// at the stop, and after a clean unmount the tail lies where an old record
// with the expected sequence number still lies: unless the sequence moved on,
// the next mount (or fsck -y) replays stale transactions over live pages.
TEST_F(RecoveryTest, RecordsAbandonedAtAStopAreNeverReplayed) {
  {
    auto device = std::make_unique<FaultDevice>(dev_, 2);
    FaultDevice* faults = device.get();
    std::string msg;
    auto fs = FileSystem::mount(std::move(device), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    for (int i = 0; i < 10; i++) {
      ASSERT_TRUE((*fs)->mknod(kRootInode, "a" + std::to_string(i), S_IFREG | 0644, 0, {}).ok());
      ASSERT_TRUE((*fs)->fsync(kRootInode, false).ok());
    }
    faults->drop_writes_after(faults->write_count());  // the crash
  }
  std::vector<test::RecordRef> records = test::journal_records(dev_);
  ASSERT_EQ(records.size(), 10u);
  dev_.raw()[records[3].offset + sizeof(JournalHeader) + 5] ^= std::byte{0x20};

  mount();  // recovers a0..a2 and stops at the damaged record
  ASSERT_TRUE(fs_->mknod(kRootInode, "b0", S_IFREG | 0644, 0, Caller{}).ok());
  ASSERT_TRUE(fs_->fsync(kRootInode, false).ok());
  const std::vector<std::string> live = {"a0", "a1", "a2", "b0"};
  EXPECT_EQ(root_names(*fs_), live);
  unmount();

  auto scanned = Journal::scan(dev_, test::superblock(dev_),
                               [](PageNo, const std::byte*) { return Status(); });
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(scanned->transactions, 0u) << "a clean unmount leaves nothing to replay";
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(fsck.code, fsck::kExitClean) << fsck.text;
  mount();
  EXPECT_EQ(root_names(*fs_), live);
}

// ---- the superblock after a replay ---------------------------------------------------

// Creates files x0..x4, each made durable, and crashes with them only in the
// journal.
void crash_with_five_files(MemDevice& dev) {
  auto device = std::make_unique<FaultDevice>(dev, 2);
  FaultDevice* faults = device.get();
  std::string msg;
  auto fs = FileSystem::mount(std::move(device), MountOptions{8 << 20}, &msg);
  ASSERT_TRUE(fs.ok()) << msg;
  for (int i = 0; i < 5; i++) {
    ASSERT_TRUE((*fs)->mknod(kRootInode, "x" + std::to_string(i), S_IFREG | 0644, 0, {}).ok());
    ASSERT_TRUE((*fs)->fsync(kRootInode, false).ok());
  }
  faults->drop_writes_after(faults->write_count());
}

// The secondary copy claims a higher generation than anything the journal
// holds (it is damaged, or was written by a bug). The replayed page 0 is the
// newest state all the same: a stale copy's next_inode would hand out the
// numbers of live inodes.
TEST_F(RecoveryTest, ReplayedSuperblockWinsOverAStaleSecondary) {
  crash_with_five_files(dev_);
  Superblock stale = test::superblock(dev_, 1);
  ASSERT_EQ(stale.next_inode, 2u);
  stale.generation += 1000;
  test::put_superblock(dev_, stale, 1);
  mount();
  auto x0 = fs_->lookup(kRootInode, "x0");
  ASSERT_TRUE(x0.ok());
  auto y = fs_->mknod(kRootInode, "y", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(y.ok());
  EXPECT_GT(y->ino, x0->ino + 4) << "an inode number still in use was handed out again";
  EXPECT_EQ(fs_->lookup(kRootInode, "x0")->ino, x0->ino);
  EXPECT_TRUE(S_ISREG(fs_->getattr(InodeNo{x0->ino})->mode));
  unmount();
  EXPECT_GT(test::superblock(dev_, 0).generation, stale.generation);
  EXPECT_GT(test::superblock(dev_, 1).generation, stale.generation);
}

// next_inode never goes back: of two valid copies the larger number counts.
TEST_F(RecoveryTest, NextInodeIsTheLargestOfTheValidCopies) {
  mount();
  auto a = fs_->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  unmount();
  Superblock sb = test::superblock(dev_, 0);
  Superblock older = sb;
  older.generation -= 1;
  sb.next_inode = 2;  // the newer copy went back
  test::put_superblock(dev_, sb, 0);
  test::put_superblock(dev_, older, 1);
  mount();
  auto b = fs_->mknod(kRootInode, "b", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b->ino, a->ino);
}

// When both copies hand out a number in use, creating a file is EIO and
// metadata damage, and the live inode is left alone.
TEST_F(RecoveryTest, InodeNumberStillInUseIsEioNotAnOverwrite) {
  mount();
  auto a = fs_->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(fs_->write(InodeNo{a->ino}, 0, "abc", 3).ok());
  unmount();
  Superblock sb = test::superblock(dev_);
  sb.next_inode = a->ino;
  test::put_superblocks(dev_, sb);
  mount();
  EXPECT_EQ(fs_->mknod(kRootInode, "b", S_IFREG | 0644, 0, Caller{}).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_EQ(fs_->lookup(kRootInode, "b").error(), ENOENT);
  EXPECT_EQ(fs_->getattr(InodeNo{a->ino})->size, 3u);
}

}  // namespace
}  // namespace pagefs
