// File attributes through FS_IOC_GETFLAGS/SETFLAGS (chattr, lsattr) and
// FS_IOC_FSGETXATTR/FSSETXATTR (xfs_io): stored, and enforced by pagefs,
// since the kernel leaves immutable and append-only to a FUSE filesystem.
// Setting them needs CAP_LINUX_IMMUTABLE: these tests run as root, whom the
// flags refuse too.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountAttrFlags : public MountTest {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "setting immutable or append-only needs CAP_LINUX_IMMUTABLE";
  }
};

// The flags of `path`, or -1 (with a test failure).
long get_flags(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
  int flags = 0;
  int rc = ioctl(fd, FS_IOC_GETFLAGS, &flags);
  EXPECT_EQ(rc, 0) << "FS_IOC_GETFLAGS " << path << ": " << std::strerror(errno);
  close(fd);
  return rc == 0 ? flags : -1;
}

// 0 or the errno of FS_IOC_SETFLAGS.
int set_flags(const std::string& path, int flags) {
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
  int rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
  int error = rc == 0 ? 0 : errno;
  close(fd);
  return error;
}

// 0 or the errno of open(path, flags).
int open_error(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

int errno_of(int rc) {
  return rc == 0 ? 0 : errno;
}

TEST_F(MountAttrFlags, FlagsSetByIoctlAreReadBackAfterARemount) {
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string f = fs_.path("f"), d = fs_.path("d");
  ASSERT_TRUE(write_file(f, "x"));
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  EXPECT_EQ(get_flags(f), 0);
  EXPECT_EQ(set_flags(f, FS_NODUMP_FL | FS_NOATIME_FL), 0);
  EXPECT_EQ(set_flags(d, FS_APPEND_FL), 0);  // directories too
  EXPECT_EQ(set_flags(f, FS_COMPR_FL), EOPNOTSUPP);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(get_flags(f), FS_NODUMP_FL | FS_NOATIME_FL);
  EXPECT_EQ(get_flags(d), FS_APPEND_FL);
  // The same flags through the xfs-style interface.
  int fd = open(d.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  fsxattr fsx{};
  ASSERT_EQ(ioctl(fd, FS_IOC_FSGETXATTR, &fsx), 0) << std::strerror(errno);
  EXPECT_EQ(fsx.fsx_xflags, uint32_t(FS_XFLAG_APPEND));
  fsx.fsx_xflags = FS_XFLAG_NODUMP;
  ASSERT_EQ(ioctl(fd, FS_IOC_FSSETXATTR, &fsx), 0) << std::strerror(errno);
  close(fd);
  EXPECT_EQ(get_flags(d), FS_NODUMP_FL);
  unmount_and_check();
}

TEST_F(MountAttrFlags, ImmutableFileRefusesEveryChangeEvenToRoot) {
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, "frozen"));
  ASSERT_EQ(setxattr(f.c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(set_flags(f, FS_IMMUTABLE_FL), 0);
  EXPECT_EQ(open_error(f, O_WRONLY), EPERM);
  EXPECT_EQ(open_error(f, O_RDWR | O_APPEND), EPERM);
  EXPECT_EQ(open_error(f, O_RDONLY | O_TRUNC), EPERM);
  EXPECT_EQ(errno_of(truncate(f.c_str(), 0)), EPERM);
  EXPECT_EQ(errno_of(chmod(f.c_str(), 0600)), EPERM);
  EXPECT_EQ(errno_of(chown(f.c_str(), 7, 7)), EPERM);
  EXPECT_EQ(errno_of(utimensat(AT_FDCWD, f.c_str(), nullptr, 0)), EPERM);
  EXPECT_EQ(errno_of(setxattr(f.c_str(), "user.b", "2", 1, 0)), EPERM);
  EXPECT_EQ(errno_of(removexattr(f.c_str(), "user.a")), EPERM);
  EXPECT_EQ(errno_of(link(f.c_str(), fs_.path("g").c_str())), EPERM);
  EXPECT_EQ(errno_of(unlink(f.c_str())), EPERM);
  EXPECT_EQ(errno_of(rename(f.c_str(), fs_.path("g").c_str())), EPERM);
  EXPECT_EQ(read_file(f), "frozen");
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(open_error(f, O_WRONLY), EPERM);
  EXPECT_EQ(set_flags(f, 0), 0);
  EXPECT_TRUE(write_file(f, "thawed"));
  unmount_and_check();
}

TEST_F(MountAttrFlags, AppendOnlyFileTakesOnlyAppends) {
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string f = fs_.path("log");
  ASSERT_TRUE(write_file(f, "line 1\n"));
  ASSERT_EQ(set_flags(f, FS_APPEND_FL), 0);
  EXPECT_EQ(open_error(f, O_WRONLY), EPERM);
  EXPECT_EQ(open_error(f, O_WRONLY | O_APPEND | O_TRUNC), EPERM);
  EXPECT_EQ(errno_of(truncate(f.c_str(), 0)), EPERM);
  EXPECT_EQ(errno_of(unlink(f.c_str())), EPERM);
  int fd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(write(fd, "line 2\n", 7), 7);
  EXPECT_EQ(pwrite(fd, "line 3\n", 7, 0), 7);  // O_APPEND: at the end, whatever the offset
  // The kernel lets O_APPEND be cleared; pagefs still refuses an overwrite.
  ASSERT_EQ(fcntl(fd, F_SETFL, 0), 0);
  EXPECT_EQ(pwrite(fd, "LINE", 4, 0), -1);
  EXPECT_EQ(errno, EPERM);
  close(fd);
  EXPECT_EQ(read_file(f), "line 1\nline 2\nline 3\n");
  EXPECT_EQ(set_flags(f, 0), 0);
  unmount_and_check();
}

// With the kernel's write-back cache, an append reaches pagefs as a write of
// the whole last page, old bytes included: pagefs takes it because those
// bytes come back unchanged.
TEST_F(MountAttrFlags, AppendsGoThroughTheKernelCache) {
  ASSERT_TRUE(fs_.start(64 << 20, "cache=kernel"));
  const std::string f = fs_.path("log");
  ASSERT_TRUE(write_file(f, "line 1\n"));
  ASSERT_EQ(set_flags(f, FS_APPEND_FL), 0);
  int fd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(write(fd, "line 2\n", 7), 7);
  EXPECT_EQ(fsync(fd), 0) << std::strerror(errno);
  close(fd);
  ASSERT_TRUE(fs_.remount("cache=kernel"));
  EXPECT_EQ(read_file(f), "line 1\nline 2\n");
  EXPECT_EQ(set_flags(f, 0), 0);
  unmount_and_check();
}

TEST_F(MountAttrFlags, DirectoryFlagsGuardItsNames) {
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string d = fs_.path("d"), a = fs_.path("a");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(a.c_str(), 0755), 0);
  ASSERT_TRUE(write_file(d + "/old", "old"));
  ASSERT_TRUE(write_file(a + "/old", "old"));
  ASSERT_EQ(set_flags(d, FS_IMMUTABLE_FL), 0);
  ASSERT_EQ(set_flags(a, FS_APPEND_FL), 0);
  EXPECT_EQ(open_error(d + "/new", O_WRONLY | O_CREAT), EPERM);
  EXPECT_EQ(errno_of(unlink((d + "/old").c_str())), EPERM);
  EXPECT_TRUE(write_file(d + "/old", "changed"));  // the file itself is not frozen
  EXPECT_EQ(open_error(a + "/new", O_WRONLY | O_CREAT), 0);
  EXPECT_EQ(errno_of(unlink((a + "/old").c_str())), EPERM);
  EXPECT_EQ(errno_of(rename((a + "/old").c_str(), (a + "/older").c_str())), EPERM);
  EXPECT_EQ(set_flags(d, 0), 0);
  EXPECT_EQ(set_flags(a, 0), 0);
  EXPECT_EQ(unlink((d + "/old").c_str()), 0);
  unmount_and_check();
}

TEST_F(MountAttrFlags, ChattrAndLsattrWork) {
  if (access("/usr/bin/chattr", X_OK) != 0 && access("/bin/chattr", X_OK) != 0) {
    GTEST_SKIP() << "chattr (e2fsprogs) is not installed";
  }
  ASSERT_TRUE(fs_.start(64 << 20));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, "x"));
  ASSERT_EQ(run_command({"chattr", "+i", f}).exit_code, 0);
  CommandResult listed = run_command({"lsattr", f});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.substr(0, listed.out.find(' ')).find('i'), 4u) << listed.out;
  EXPECT_NE(run_command({"sh", "-c", "echo y >> " + f}).exit_code, 0);
  ASSERT_EQ(run_command({"chattr", "-i", "+a", f}).exit_code, 0);
  EXPECT_EQ(run_command({"sh", "-c", "echo y >> " + f}).exit_code, 0);
  EXPECT_EQ(read_file(f), "xy\n");
  ASSERT_EQ(run_command({"chattr", "-a", f}).exit_code, 0);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
