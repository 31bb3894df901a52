// fsck runs (fsck/run.cc) that must agree with what a mount does: fsck -n
// reports exactly what a mount would see, and says so when it cannot.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "fsck/checker.h"
#include "fsck/run.h"
#include "tests/engine/corrupt.h"

namespace pagefs {
namespace {

// A device on which every read that starts in [from, to) (bytes) fails with
// EIO: the journal's pages have gone bad, while fsck's read of the superblock
// area, which starts at byte 0, still works.
class BadStretch : public Device {
 public:
  BadStretch(Device& inner, uint64_t from, uint64_t to) : inner_(inner), from_(from), to_(to) {}
  Status read(std::span<const IoRequest> batch) override {
    for (const IoRequest& r : batch) {
      if (r.offset >= from_ && r.offset < to_) return Err{EIO};
    }
    return inner_.read(batch);
  }
  Status write(std::span<const IoRequest> batch) override { return inner_.write(batch); }
  Status flush() override { return inner_.flush(); }
  uint64_t size_bytes() const override { return inner_.size_bytes(); }
  uint32_t block_size() const override { return inner_.block_size(); }
  bool read_only() const override { return inner_.read_only(); }

 private:
  Device& inner_;
  uint64_t from_, to_;
};

class FsckRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    out_ = std::tmpfile();
    err_ = std::tmpfile();
  }
  void TearDown() override {
    std::fclose(out_);
    std::fclose(err_);
  }

  // Runs fsck -n on `device`; its exit code.
  int check(Device& device) {
    return fsck::run_fsck(device, "img", fsck::RunOptions{.out = out_, .err = err_});
  }
  static std::string text(FILE* f) {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
    return s;
  }
  Status mount(Device& device, std::string* message) {
    auto fs =
        FileSystem::mount(std::make_unique<FaultDevice>(device, 1), MountOptions{8 << 20}, message);
    return fs.ok() ? ok_status() : Status(Err{fs.error()});
  }

  MemDevice dev_{64 << 20};
  FILE* out_ = nullptr;
  FILE* err_ = nullptr;
};

// Mount fails when it cannot read the journal; fsck -n used to check the
// device without it and call the image clean.
TEST_F(FsckRunTest, JournalThatCannotBeReadIsOneLineAndExit4) {
  {
    auto device = std::make_unique<FaultDevice>(dev_, 2);
    FaultDevice* faults = device.get();
    std::string msg;
    auto fs = FileSystem::mount(std::move(device), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    ASSERT_TRUE((*fs)->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{}).ok());
    ASSERT_TRUE((*fs)->fsync(kRootInode, false).ok());
    faults->drop_writes_after(faults->write_count());  // crash with "a" only in the journal
  }
  Superblock sb = test::superblock(dev_);
  BadStretch bad(dev_, sb.journal_start * 4096, (sb.journal_start + sb.journal_pages) * 4096);
  std::string message;
  EXPECT_EQ(mount(bad, &message).error(), EIO);
  EXPECT_EQ(check(bad), fsck::kExitUncorrected);
  std::string err = text(err_);
  EXPECT_NE(err.find("journal"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// Mount ignores a copy whose geometry is impossible and uses the other; fsck
// reports the damaged copy and checks the filesystem the other describes.
TEST_F(FsckRunTest, SuperblockCopyWithImpossibleGeometryIsReportedAndTheOtherChecked) {
  Superblock sb = test::superblock(dev_);
  Superblock bad = sb;
  bad.generation++;
  bad.bitmap_pages = 1ull << 40;
  test::put_superblock(dev_, bad, 0);
  EXPECT_EQ(check(dev_), fsck::kExitUncorrected);
  std::string out = text(out_);
  EXPECT_NE(out.find("superblock copy at page 0"), std::string::npos) << out;
  size_t problems = 0;
  for (size_t at = out.find("fsck.pagefs: "); at != std::string::npos;
       at = out.find("fsck.pagefs: ", at + 1)) {
    problems++;
  }
  EXPECT_EQ(problems, 1u) << out;
  std::string message;
  EXPECT_TRUE(mount(dev_, &message).ok()) << message;
}

TEST_F(FsckRunTest, SuperblockPairThatMountRefusesCannotBeChecked) {
  Superblock sb = test::superblock(dev_);
  sb.data_start = sb.page_count + 10;
  test::put_superblocks(dev_, sb);
  std::string message;
  EXPECT_EQ(mount(dev_, &message).error(), EIO);
  EXPECT_EQ(check(dev_), fsck::kExitOperational);
}

}  // namespace
}  // namespace pagefs
