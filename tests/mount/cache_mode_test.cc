// The two cache modes: cache=private (the default; file data only in pagefs's
// own pool, the kernel page cache stays out except for the pages of files
// mapped shared) and cache=kernel (the kernel caches file data).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class MountCache : public MountTest {};

// Maps the first page of `path` shared and writable and stores `text` in it;
// returns 0 or the errno of the failing call.
int write_through_shared_map(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_RDWR);
  if (fd < 0) return errno;
  void* map = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int error = map == MAP_FAILED ? errno : 0;
  if (error == 0) {
    std::memcpy(map, text.data(), text.size());
    if (msync(map, 4096, MS_SYNC) != 0) error = errno;
    munmap(map, 4096);
  }
  if (error == 0 && fsync(fd) != 0) error = errno;
  close(fd);
  return error;
}

// A kernel without FUSE_DIRECT_IO_ALLOW_MMAP (Linux < 6.6) allows no shared
// map of a direct-I/O file; the daemon then says so in its log.
TEST_F(MountCache, PrivateModeAllowsSharedWritableMapsAndKeepsDataOutOfThePageCache) {
  ASSERT_TRUE(fs_.start(256 * kMiB, "cache=private"));
  const std::string f = fs_.path("f");
  std::string data = pattern(3, 0, 8 * kMiB);
  ASSERT_TRUE(write_file(f, data));
  EXPECT_EQ(read_file(f), data);
  bool refused = fs_.log_tail().find("FUSE_DIRECT_IO_ALLOW_MMAP") != std::string::npos;
  EXPECT_EQ(write_through_shared_map(f, "mapped"), refused ? ENODEV : 0);
  if (!refused) data.replace(0, 6, "mapped");
  EXPECT_EQ(read_file(f), data);
  // Neither the file nor the image has pages in the kernel page cache: the
  // mapped page left it when the file was next opened.
  CommandResult r =
      run_command({"fincore", "--bytes", "--noheadings", "--output", "RES", f, fs_.image()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  uint64_t cached = 0;
  for (size_t at = 0; at < r.out.size();) {
    cached += std::strtoull(r.out.c_str() + at, nullptr, 10);
    at = r.out.find('\n', at);
    if (at == std::string::npos) break;
    at++;
  }
  EXPECT_LT(cached, 1 * kMiB) << r.out;
  unmount_and_check();
}

TEST_F(MountCache, KernelModeSupportsSharedWritableMapsThatPersist) {
  ASSERT_TRUE(fs_.start(256 * kMiB, "cache=kernel"));
  const std::string f = fs_.path("f");
  std::string data = pattern(4, 0, 64 * 1024);
  ASSERT_TRUE(write_file(f, data));
  ASSERT_EQ(write_through_shared_map(f, "written through a shared map"), 0);
  data.replace(0, 28, "written through a shared map");
  EXPECT_EQ(read_file(f), data);
  ASSERT_TRUE(fs_.remount("cache=kernel"));
  EXPECT_EQ(read_file(f), data);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
