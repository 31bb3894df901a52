// Access times follow relatime: a read moves atime when it is not newer than
// mtime, and leaves it alone otherwise.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountAtime : public MountTest {};

timespec atime_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_atim;
}

TEST_F(MountAtime, ReadUpdatesAtimeOnlyWhenItIsNotNewerThanMtime) {
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, "some bytes"));
  // atime older than mtime: the next read must move it.
  timespec times[2] = {{1000, 0}, {UTIME_OMIT, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), times, 0), 0);
  EXPECT_EQ(read_file(f), "some bytes");
  timespec after_read = atime_of(f);
  EXPECT_GT(after_read.tv_sec, 1000);
  // Now newer than mtime and ctime: another read leaves it.
  EXPECT_EQ(read_file(f), "some bytes");
  timespec again = atime_of(f);
  EXPECT_EQ(again.tv_sec, after_read.tv_sec);
  EXPECT_EQ(again.tv_nsec, after_read.tv_nsec);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(atime_of(f).tv_sec, after_read.tv_sec);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
