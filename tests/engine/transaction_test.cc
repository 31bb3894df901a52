// Transactions: the journal admits a transaction only with the room it can
// need, whatever the write pattern, so a commit never fails for lack of it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <string>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

constexpr uint32_t kPage = 4096;
const Caller kUser{1000, 1000};

class TransactionTest : public ::testing::Test {
 protected:
  // A small journal (1 MiB: a transaction holds a few dozen page images)
  // under a large cache, so that the cache never forces a commit first.
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(64ull << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{.journal_bytes = 1 << 20}, &msg).ok()) << msg;
    auto fs = FileSystem::mount(
        std::make_unique<FaultDevice>(*dev_, 1),
        MountOptions{.cache_bytes = 32 << 20, .commit_interval_s = 365u * 24 * 3600}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    fs_ = std::move(fs).value();
  }

  void TearDown() override {
    if (fs_) {
      EXPECT_TRUE(fs_->unmount().ok());
    }
    fs_.reset();
    auto fsck = test::crash::run_fsck_overlay(*dev_);
    EXPECT_EQ(fsck.code, 0) << fsck.text;
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
};

// Pages allocated by fallocate are written first with a few bytes (they
// held nothing live: no journal image), then rewritten whole in the same
// transaction, as a shared map and a writer marking every page do. The
// rewritten pages must still count, or the transaction outgrows the journal
// and its commit fails, taking the filesystem read-only.
TEST_F(TransactionTest, PagesWrittenTwiceAfterFallocateFitTheJournal) {
  constexpr uint64_t kPages = 1024;
  auto f = fs_->mknod(kRootInode, "f", S_IFREG | 0644, 0, kUser);
  ASSERT_TRUE(f.ok());
  InodeNo ino{f->ino};
  ASSERT_TRUE(fs_->fallocate(ino, 0, 0, kPages * kPage).ok());
  ASSERT_TRUE(fs_->fsync(ino, false).ok());
  for (uint64_t p = 0; p < kPages; p++) {
    ASSERT_EQ(fs_->write(ino, p * kPage + 8, "marked", 6).value(), 6u) << "page " << p;
  }
  std::string whole(kPage, 'w');
  for (uint64_t p = 0; p < kPages; p++) {
    ASSERT_EQ(fs_->write(ino, p * kPage, whole.data(), whole.size()).value(), whole.size())
        << "page " << p;
  }
  ASSERT_TRUE(fs_->fsync(ino, false).ok());
  EXPECT_FALSE(fs_->internals_for_testing().failed_);
  std::string back(kPage, '\0');
  ASSERT_EQ(fs_->read(ino, 7 * kPage, back.size(), back.data()).value(), back.size());
  EXPECT_EQ(back, whole);
}

// Freeing an inode erases all its items in batches with commit points
// between them; thousands of xattrs spread over far more leaves than one
// transaction may change, and the free must still work and stay clean.
TEST_F(TransactionTest, FreeingAFileWithThousandsOfXattrsCommitsCleanly) {
  auto f = fs_->mknod(kRootInode, "f", S_IFREG | 0644, 0, kUser);
  ASSERT_TRUE(f.ok());
  InodeNo ino{f->ino};
  for (int i = 0; i < 2000; i++) {
    ASSERT_TRUE(
        fs_->setxattr(ino, "user.attribute-" + std::to_string(i), std::string(300, 'x'), 0).ok())
        << i;
  }
  ASSERT_TRUE(fs_->fsync(ino, false).ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "f", kUser).ok());
  ASSERT_TRUE(fs_->release_inode(ino).ok());
  ASSERT_TRUE(fs_->fsync(kRootInode, false).ok());
  EXPECT_FALSE(fs_->internals_for_testing().failed_);
  EXPECT_EQ(fs_->getattr(ino).error(), ENOENT);
}

}  // namespace
}  // namespace pagefs
