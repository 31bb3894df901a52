// Holes and free space through a real mount: SEEK_DATA and SEEK_HOLE,
// including data the kernel still holds in its page cache (cache=kernel, or
// a shared map in cache=private), sparse copies, and fallocate on a nearly
// full filesystem.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountHoles : public MountTest {};

constexpr off_t kDataAt = 512 * kKiB;
constexpr size_t kDataBytes = 64 * kKiB;

uint64_t free_bytes(const std::string& path) {
  struct statvfs st {};
  EXPECT_EQ(statvfs(path.c_str(), &st), 0) << std::strerror(errno);
  return uint64_t(st.f_bavail) * st.f_frsize;
}

// Whether a sparse copy (cp --sparse=always, which looks for data with
// SEEK_DATA and SEEK_HOLE) of `from` holds `expected`.
::testing::AssertionResult sparse_copy_holds(const std::string& from, const std::string& to,
                                             const std::string& expected) {
  CommandResult r = run_command({"cp", "--sparse=always", from, to});
  if (r.exit_code != 0) return ::testing::AssertionFailure() << "cp: " << r.err;
  std::string copy = read_file(to);
  if (copy == expected) return ::testing::AssertionSuccess();
  size_t differ = 0;
  while (differ < copy.size() && differ < expected.size() && copy[differ] == expected[differ]) {
    differ++;
  }
  return ::testing::AssertionFailure()
         << "the copy has " << copy.size() << " bytes, " << expected.size()
         << " expected; first difference at " << differ;
}

TEST_F(MountHoles, NegativeOffsetIsEnxio) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, std::string(8192, 'x')));
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (int whence : {SEEK_DATA, SEEK_HOLE}) {
    errno = 0;
    EXPECT_EQ(lseek(fd, -1, whence), -1) << "whence " << whence;
    EXPECT_EQ(errno, ENXIO) << "whence " << whence << ": " << std::strerror(errno);
  }
  close(fd);
  unmount_and_check();
}

// With cache=kernel a write may sit in the kernel's page cache; SEEK_DATA
// must still find it, or a sparse copy would drop it.
TEST_F(MountHoles, SeekDataSeesWritesInTheKernelCache) {
  ASSERT_TRUE(fs_.start(64 * kMiB, "cache=kernel"));
  const std::string f = fs_.path("f");
  const std::string data = pattern(3, 0, kDataBytes);
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), kDataAt), ssize_t(data.size()));
  off_t at = lseek(fd, 0, SEEK_DATA);
  EXPECT_GE(at, 0) << std::strerror(errno);
  EXPECT_LE(at, kDataAt);
  EXPECT_EQ(lseek(fd, kDataAt, SEEK_HOLE), off_t(kDataAt + kDataBytes));
  std::string expected = std::string(size_t(kDataAt), '\0') + data;
  EXPECT_TRUE(sparse_copy_holds(f, fs_.path("copy"), expected));
  close(fd);
  unmount_and_check();
}

// The same for stores through a shared map in cache=private, not yet msync'ed.
TEST_F(MountHoles, SeekDataSeesStoresInASharedMap) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string f = fs_.path("f");
  const std::string data = pattern(4, 0, kDataBytes);
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const size_t size = size_t(kDataAt) + kDataBytes;
  ASSERT_EQ(ftruncate(fd, off_t(size)), 0);
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int map_error = errno;
  close(fd);
  if (map == MAP_FAILED && map_error == ENODEV) {
    unmount_and_check();
    GTEST_SKIP() << "the kernel offers no FUSE_DIRECT_IO_ALLOW_MMAP";
  }
  ASSERT_NE(map, MAP_FAILED) << std::strerror(map_error);
  // Opened before the stores: an open writes back the dirty pages.
  fd = open(f.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  std::memcpy(static_cast<char*>(map) + kDataAt, data.data(), data.size());
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), kDataAt) << std::strerror(errno);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 0) << "the hole before the data is still reported";
  close(fd);
  std::string expected = std::string(size_t(kDataAt), '\0') + data;
  EXPECT_TRUE(sparse_copy_holds(f, fs_.path("copy"), expected));
  EXPECT_EQ(munmap(map, size), 0);
  unmount_and_check();
}

TEST_F(MountHoles, FallocateOfAllTheFreeSpaceStatfsReports) {
  ASSERT_TRUE(fs_.start(256 * kMiB));
  const std::string f = fs_.path("f");
  const uint64_t free = free_bytes(fs_.mountpoint());
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fallocate(fd, 0, 0, off_t(free)), 0)
      << std::strerror(errno) << ", " << free << " bytes free";
  EXPECT_LT(free_bytes(fs_.mountpoint()), 1 * kMiB);
  close(fd);
  ASSERT_EQ(unlink(f.c_str()), 0);
  unmount_and_check();
}

// Free space broken into single pages makes each new extent one page long:
// a fallocate of most of it runs out of room for the extent records midway.
// It must fail with nothing changed.
TEST_F(MountHoles, FailedFallocateLeavesTheFreeSpaceAsItWas) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string comb = fs_.path("comb");
  int fd = open(comb.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const off_t comb_bytes = off_t(free_bytes(fs_.mountpoint()) - 2 * kMiB);
  ASSERT_EQ(fallocate(fd, 0, 0, comb_bytes), 0) << std::strerror(errno);
  for (off_t at = 0; at < comb_bytes; at += 2 * 4096) {
    ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, 4096), 0)
        << std::strerror(errno);
  }
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  const uint64_t before = free_bytes(fs_.mountpoint());
  const std::string f = fs_.path("f");
  fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  int result = fallocate(fd, 0, 0, off_t(before - 4 * 4096));
  int error = errno;
  close(fd);
  struct statx st {};  // from pagefs, not from the kernel's attribute cache
  EXPECT_EQ(statx(AT_FDCWD, f.c_str(), AT_STATX_FORCE_SYNC, STATX_SIZE | STATX_BLOCKS, &st), 0);
  if (result == 0) {
    ADD_FAILURE() << "the fallocate did not run out of space; the test needs a "
                     "smaller one";
  } else {
    EXPECT_EQ(error, ENOSPC) << std::strerror(error);
    EXPECT_EQ(st.stx_blocks, 0u);
    EXPECT_EQ(st.stx_size, 0u);
    EXPECT_EQ(free_bytes(fs_.mountpoint()), before);
  }
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
