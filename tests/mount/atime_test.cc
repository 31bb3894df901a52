// Access times follow relatime by default: a read moves atime when it is not
// newer than mtime, and leaves it alone otherwise. -o noatime, strictatime,
// nodiratime and lazytime change that as on other Linux filesystems.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

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

void set_atime(const std::string& path, time_t sec) {
  timespec times[2] = {{sec, 0}, {UTIME_OMIT, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST_F(MountAtime, NoatimeKeepsAtimeOnReadAndExec) {
  ASSERT_TRUE(fs_.start(64 << 20, "noatime"));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, "some bytes"));
  set_atime(f, 1000);
  EXPECT_EQ(read_file(f), "some bytes");
  EXPECT_EQ(atime_of(f).tv_sec, 1000);
  // A program run from the mount is read through page faults.
  const std::string program = fs_.path("true");
  ASSERT_EQ(run_command({"cp", "/bin/true", program}).exit_code, 0);
  set_atime(program, 1000);
  EXPECT_EQ(run_command({program}).exit_code, 0);
  EXPECT_EQ(atime_of(program).tv_sec, 1000);
  ASSERT_TRUE(fs_.remount("noatime"));
  EXPECT_EQ(atime_of(f).tv_sec, 1000);
  unmount_and_check();
}

TEST_F(MountAtime, StrictatimeMovesAtimeOnEveryRead) {
  ASSERT_TRUE(fs_.start(64 << 20, "strictatime"));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, "some bytes"));
  EXPECT_EQ(read_file(f), "some bytes");
  timespec first = atime_of(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(read_file(f), "some bytes");
  timespec second = atime_of(f);
  EXPECT_TRUE(second.tv_sec > first.tv_sec ||
              (second.tv_sec == first.tv_sec && second.tv_nsec > first.tv_nsec));
  unmount_and_check();
}

// nodiratime: listing a directory leaves its atime; files keep relatime.
// lazytime is accepted: atime updates already join the running transaction.
TEST_F(MountAtime, NodiratimeAndLazytimeMount) {
  ASSERT_TRUE(fs_.start(64 << 20, "nodiratime,lazytime"));
  const std::string d = fs_.path("d");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  ASSERT_TRUE(write_file(d + "/f", "some bytes"));
  set_atime(d, 1000);
  set_atime(d + "/f", 1000);
  EXPECT_EQ(list_dir(d).size(), 1u);
  EXPECT_EQ(atime_of(d).tv_sec, 1000);
  EXPECT_EQ(read_file(d + "/f"), "some bytes");
  EXPECT_GT(atime_of(d + "/f").tv_sec, 1000);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
