// Holes through a real mount: SEEK_DATA and SEEK_HOLE, including data the
// kernel still holds in its page cache (cache=kernel, or a shared map in
// cache=private), and sparse copies.
#include <fcntl.h>
#include <sys/mman.h>
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

}  // namespace
}  // namespace pagefs::test
