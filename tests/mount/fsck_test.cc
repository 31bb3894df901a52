// fsck.pagefs as users run it: on images made through a real mount and damaged
// on disk, with its exit codes, messages, -p's clean flag, progress output
// and usage errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/mount/image_pages.h"
#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class FsckTool : public MountTest {
 protected:
  // /a/keep.txt, /data.bin (25 pages), /other.txt; unmounted afterwards.
  void populate() {
    ASSERT_TRUE(fs_.start(64 * kMiB));
    ASSERT_EQ(mkdir(fs_.path("a").c_str(), 0755), 0);
    ASSERT_TRUE(write_file(fs_.path("a/keep.txt"), keep_));
    ASSERT_TRUE(write_file(fs_.path("data.bin"), data_));
    ASSERT_TRUE(write_file(fs_.path("other.txt"), "other\n"));
    struct stat st;
    ASSERT_EQ(stat(fs_.path("data.bin").c_str(), &st), 0);
    data_ino_ = st.st_ino;
    ASSERT_EQ(fs_.unmount(), 0) << fs_.last_error();
  }
  std::string out() const { return fs_.last_fsck().out + fs_.last_fsck().err; }

  const std::string keep_ = pattern(7, 0, 10000);
  std::string data_ = pattern(8, 0, 100 * 1024);
  uint64_t data_ino_ = 0;
};

TEST_F(FsckTool, DataDamageIsReportedByPathAndZeroedOnRequest) {
  populate();
  {
    ImagePages image(fs_.image());
    image.break_page(image.extent(data_ino_, 0).phys + 3);
  }
  EXPECT_EQ(fs_.fsck({"-n"}), 4) << out();
  EXPECT_NE(out().find("/data.bin (inode " + std::to_string(data_ino_) + "): data at offset 12288"),
            std::string::npos)
      << out();
  EXPECT_EQ(fs_.fsck({"-y"}), 4) << out() << "the data error is left without -E";
  EXPECT_EQ(fs_.fsck({"-y", "-E", "zero_bad_data"}), 1) << out();
  EXPECT_EQ(fs_.fsck({"-n"}), 0) << out();
  ASSERT_TRUE(fs_.mount());
  EXPECT_EQ(read_file(fs_.path("a/keep.txt")), keep_);
  std::string zeroed = data_;
  std::fill(zeroed.begin() + 12288, zeroed.begin() + 16384, '\0');
  EXPECT_TRUE(read_file(fs_.path("data.bin")) == zeroed);
  unmount_and_check();
}

TEST_F(FsckTool, PreenSkipsACleanFilesystemUnlessForced) {
  populate();
  {
    ImagePages image(fs_.image());
    image.break_page(image.superblock().bitmap_start);
  }
  EXPECT_EQ(fs_.fsck({"-p"}), 0) << out();
  EXPECT_NE(out().find("clean"), std::string::npos) << out();
  EXPECT_EQ(fs_.fsck({"-n"}), 4) << out() << "-n always checks";
  EXPECT_EQ(fs_.fsck({"-p", "-f"}), 1) << out();
  EXPECT_NE(out().find("bitmap page"), std::string::npos) << out();
  EXPECT_EQ(fs_.fsck({"-n"}), 0) << out();
}

// After a crash, -p replays the journal, checks everything and marks the
// filesystem clean, so that the next boot's -p skips it.
TEST_F(FsckTool, PreenAfterACrashReplaysChecksAndMarksClean) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  ASSERT_TRUE(write_file(fs_.path("kept.txt"), keep_));
  int fd = open(fs_.path("kept.txt").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  kill(fs_.daemon_pid(), SIGKILL);
  EXPECT_EQ(fs_.unmount(), 128 + SIGKILL);
  EXPECT_EQ(fs_.fsck({"-p"}), 1) << out();
  EXPECT_NE(out().find("replayed"), std::string::npos) << out();
  EXPECT_EQ(fs_.fsck({"-p"}), 0) << out();
  EXPECT_NE(out().find(": clean, "), std::string::npos) << out();
  ASSERT_TRUE(fs_.mount());
  EXPECT_EQ(read_file(fs_.path("kept.txt")), keep_);
  unmount_and_check();
}

TEST_F(FsckTool, ProgressAsABarOrLinesOrForFrontEnds) {
  populate();
  EXPECT_EQ(fs_.fsck({"-n", "-C", "0"}), 0) << out();
  EXPECT_NE(out().find("Pass 3: walking the tree and verifying data: 100%"), std::string::npos)
      << out();
  EXPECT_EQ(fs_.fsck({"-n", "-C", "2"}), 0) << out();
  EXPECT_NE(fs_.last_fsck().err.find("5 "), std::string::npos) << out();
  EXPECT_NE(fs_.last_fsck().err.find(" " + fs_.image() + "\n"), std::string::npos) << out();
}

TEST_F(FsckTool, UsageErrorsExit16) {
  populate();
  EXPECT_EQ(fs_.fsck({"-E", "bogus"}), 16) << out();
  EXPECT_EQ(fs_.fsck({"-n", "-y"}), 16) << out();
  EXPECT_EQ(fs_.fsck({"-n"}), 0) << out();
}

}  // namespace
}  // namespace pagefs::test
