// open(2) with O_TMPFILE: a file with no name, freed when it is closed, or
// given a name by linkat(2). libfuse 3.14 does not know the kernel's
// FUSE_TMPFILE request; pagefs serves it (fs/request_rewrite.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountTmpfile : public MountTest {};

// Names the file open at `fd` as `path`, as linkat(2)'s manual page shows.
int link_fd(int fd, const std::string& path) {
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  return linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
}

uint64_t free_blocks(const std::string& path) {
  struct statvfs st {};
  EXPECT_EQ(statvfs(path.c_str(), &st), 0);
  return st.f_bfree;
}

TEST_F(MountTmpfile, TmpfileHasNoNameUntilLinkatGivesItOne) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  int fd = open(fs_.path("d").c_str(), O_TMPFILE | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << "O_TMPFILE: " << std::strerror(errno);
  ASSERT_EQ(write(fd, "no name yet", 11), 11);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_mode, mode_t(S_IFREG | 0640));
  EXPECT_TRUE(list_dir(fs_.path("d")).empty());
  ASSERT_EQ(link_fd(fd, fs_.path("d/named")), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  close(fd);
  EXPECT_EQ(read_file(fs_.path("d/named")), "no name yet");
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(fs_.path("d/named")), "no name yet");
  unmount_and_check();
}

TEST_F(MountTmpfile, UnnamedTmpfileIsFreedWhenClosed) {
  ASSERT_TRUE(fs_.start(64 << 20));
  uint64_t before = free_blocks(fs_.path());
  int fd = open(fs_.path().c_str(), O_TMPFILE | O_WRONLY, 0600);
  ASSERT_GE(fd, 0) << "O_TMPFILE: " << std::strerror(errno);
  std::string data = pattern(1, 0, 8 << 20);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  EXPECT_LT(free_blocks(fs_.path()), before - 1000);
  close(fd);
  // The kernel lets go of the inode at the close; its FORGET may lag a little.
  for (int i = 0; i < 100 && free_blocks(fs_.path()) < before; i++) usleep(20'000);
  EXPECT_EQ(free_blocks(fs_.path()), before);
  unmount_and_check();
}

TEST_F(MountTmpfile, ExclusiveTmpfileCannotBeLinked) {
  ASSERT_TRUE(fs_.start(64 << 20));
  int fd = open(fs_.path().c_str(), O_TMPFILE | O_WRONLY | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << "O_TMPFILE: " << std::strerror(errno);
  EXPECT_EQ(link_fd(fd, fs_.path("named")), ENOENT);
  close(fd);
  EXPECT_TRUE(list_dir(fs_.path()).empty());
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
