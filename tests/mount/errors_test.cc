// Failure handling through a real mount: a full filesystem, a corrupted data
// page, bad devices, double mounts, bad options, and mkfs's refusals.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

size_t count_lines(const std::string& s) {
  size_t lines = size_t(std::count(s.begin(), s.end(), '\n'));
  if (!s.empty() && s.back() != '\n') ++lines;
  return lines;
}

bool is_mounted_at(const std::string& dir) {
  struct stat st, parent;
  std::string up = dir + "/..";
  if (stat(dir.c_str(), &st) != 0 || stat(up.c_str(), &parent) != 0) return errno == ENOTCONN;
  return st.st_dev != parent.st_dev;
}

// Runs pagefs without -f (it must fail before detaching). If it wrongly
// succeeds, unmounts what it mounted and waits for it to let go of the image.
CommandResult mount_expecting_failure(const std::string& image, const std::string& mnt,
                                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {PAGEFS_BIN, image, mnt};
  argv.insert(argv.end(), extra.begin(), extra.end());
  CommandResult r = run_command(argv);
  if (is_mounted_at(mnt)) {
    run_command({"fusermount3", "-u", mnt});
    run_command({"flock", "-w", "30", image, "true"});
  }
  return r;
}

class MountErrors : public MountTest {};

TEST_F(MountErrors, FullFilesystemGivesEnospcAndStaysUsable) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  constexpr size_t kChunk = 64 * kKiB;
  constexpr uint64_t kFileBytes = 4 * kMiB;
  std::vector<uint64_t> sizes;  // bytes write() accepted, per file
  bool full = false;
  std::string buf(kChunk, '\0');
  for (int f = 0; !full; ++f) {
    ASSERT_LT(f, 64) << "wrote far more than the device holds without ENOSPC";
    int fd = open(fs_.path("fill-" + std::to_string(f)).c_str(), O_CREAT | O_WRONLY, 0644);
    if (fd < 0) {
      ASSERT_EQ(errno, ENOSPC) << "open: " << std::strerror(errno);
      break;
    }
    sizes.push_back(0);
    while (sizes.back() < kFileBytes) {
      fill_pattern(f, sizes.back(), buf.data(), kChunk);
      ssize_t n = write(fd, buf.data(), kChunk);
      if (n < 0) {
        ASSERT_EQ(errno, ENOSPC) << "write: " << std::strerror(errno);
        full = true;
        break;
      }
      sizes.back() += uint64_t(n);  // after a short write, the next one says why
    }
    int rc = close(fd);
    EXPECT_EQ(rc, 0) << "close after " << sizes.back() << " bytes: " << std::strerror(errno);
  }
  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;
  printf("[ info ] ENOSPC after %.1f MiB in %zu files\n", double(total) / kMiB, sizes.size());
  EXPECT_GT(total, 32 * kMiB) << "a 64 MiB filesystem filled up early";

  for (size_t f = 0; f < sizes.size(); ++f) {
    std::string got = read_file(fs_.path("fill-" + std::to_string(f)));
    ASSERT_EQ(got.size(), sizes[f]) << "file " << f;
    EXPECT_TRUE(got == pattern(f, 0, sizes[f])) << "file " << f << " lost data";
  }

  ASSERT_EQ(unlink(fs_.path("fill-0").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(unlink(fs_.path("fill-1").c_str()), 0) << std::strerror(errno);
  const std::string after = pattern(999, 0, 2 * kMiB);
  ASSERT_TRUE(write_file(fs_.path("after"), after));
  ASSERT_EQ(mkdir(fs_.path("newdir").c_str(), 0755), 0) << std::strerror(errno);
  EXPECT_TRUE(read_file(fs_.path("after")) == after);

  ASSERT_TRUE(fs_.remount());
  EXPECT_TRUE(read_file(fs_.path("after")) == after) << "after remount";
  const size_t last = sizes.size() - 1;
  EXPECT_TRUE(read_file(fs_.path("fill-" + std::to_string(last))) == pattern(last, 0, sizes[last]));
  unmount_and_check();
}

// Finds the device offset of the page holding `page`, scanning page-aligned.
int64_t find_in_image(const std::string& image, const std::string& page) {
  int fd = open(image.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  std::string buf(4 * kMiB, '\0');
  int64_t found = -1;
  for (off_t off = 0; found < 0; off += off_t(buf.size())) {
    ssize_t n = pread(fd, buf.data(), buf.size(), off);
    if (n <= 0) break;
    for (size_t i = 0; i + page.size() <= size_t(n); i += page.size()) {
      if (memcmp(buf.data() + i, page.data(), page.size()) == 0) {
        found = int64_t(off) + int64_t(i);
        break;
      }
    }
  }
  close(fd);
  return found;
}

TEST_F(MountErrors, FlippedBitInDataPageGivesEioAndFsckReportsIt) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string file = fs_.path("victim");
  const std::string data = pattern(0xB17F11B, 0, kMiB);
  ASSERT_TRUE(write_file(file, data));
  ASSERT_EQ(fs_.unmount(), 0) << fs_.last_error();

  constexpr uint64_t kVictimOffset = 256 * kKiB;
  const int64_t at = find_in_image(fs_.image(), data.substr(kVictimOffset, 4 * kKiB));
  ASSERT_GE(at, 0) << "the file's page at offset 256 KiB is not in the image";
  int fd = open(fs_.image().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char byte;
  ASSERT_EQ(pread(fd, &byte, 1, at + 100), 1);
  byte ^= 0x10;
  ASSERT_EQ(pwrite(fd, &byte, 1, at + 100), 1);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  close(fd);

  ASSERT_TRUE(fs_.mount());
  fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string page(4 * kKiB, '\0');
  ASSERT_EQ(pread(fd, page.data(), page.size(), 0), ssize_t(page.size())) << std::strerror(errno);
  EXPECT_TRUE(page == data.substr(0, page.size())) << "an intact page reads back";
  errno = 0;
  EXPECT_EQ(pread(fd, page.data(), page.size(), kVictimOffset), -1) << "corrupt data returned";
  EXPECT_EQ(errno, EIO) << std::strerror(errno);
  // A whole-file read must fail too, not return the bad bytes.
  std::string all(kMiB, '\0');
  ssize_t total = 0, n = 0;
  while ((n = read(fd, all.data() + total, all.size() - size_t(total))) > 0) total += n;
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_LE(total, ssize_t(kVictimOffset));
  close(fd);

  EXPECT_EQ(fs_.unmount(), 0) << fs_.last_error() << fs_.log_tail();
  EXPECT_EQ(fs_.fsck(), 4) << fs_.last_fsck().out << fs_.last_fsck().err;
}

TEST_F(MountErrors, NotPagefsIsRefusedWithOneLine) {
  ASSERT_TRUE(write_file(fs_.image(), std::string(16 * kMiB, 'z')));
  CommandResult r = mount_expecting_failure(fs_.image(), fs_.mountpoint());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.err), 1u) << "stderr:\n" << r.err;
  EXPECT_FALSE(is_mounted_at(fs_.mountpoint()));

  CommandResult fsck = run_command({FSCK_BIN, "-n", fs_.image()});
  EXPECT_EQ(fsck.exit_code, 8) << fsck.out << fsck.err;
}

TEST_F(MountErrors, SecondMountOfSameImageIsRefused) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string mnt2 = fs_.dir() + "/mnt2";
  ASSERT_EQ(mkdir(mnt2.c_str(), 0755), 0);
  CommandResult r = mount_expecting_failure(fs_.image(), mnt2);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.err.find("already mounted") != std::string::npos ||
              r.err.find("in use") != std::string::npos)
      << "stderr: " << r.err;
  // The first mount is unharmed.
  ASSERT_TRUE(write_file(fs_.path("still-works"), "yes"));
  EXPECT_EQ(read_file(fs_.path("still-works")), "yes");
  unmount_and_check();
}

TEST_F(MountErrors, MkfsRefusesExistingPagefsWithoutForce) {
  ASSERT_TRUE(fs_.format(64 * kMiB));
  CommandResult r = run_command({MKFS_BIN, fs_.image()});
  EXPECT_NE(r.exit_code, 0) << "mkfs overwrote a pagefs without -f";
  EXPECT_FALSE(r.err.empty());
  r = run_command({MKFS_BIN, "-f", fs_.image()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs_.fsck(), 0) << fs_.last_fsck().out << fs_.last_fsck().err;
}

TEST_F(MountErrors, MkfsRefusesExt4WithoutForce) {
  CommandResult ext4 = run_command({"mkfs.ext4", "-F", "-q", fs_.image(), "64M"});
  if (ext4.exit_code != 0) GTEST_SKIP() << "mkfs.ext4 unavailable: " << ext4.err;
  CommandResult r = run_command({MKFS_BIN, fs_.image()});
  EXPECT_NE(r.exit_code, 0) << "mkfs overwrote an ext4 image without -f";
  EXPECT_FALSE(r.err.empty());
  r = run_command({MKFS_BIN, "-f", fs_.image()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs_.mount());
  ASSERT_TRUE(write_file(fs_.path("f"), "on the former ext4"));
  unmount_and_check();
}

TEST_F(MountErrors, BadMountOptionIsRefused) {
  ASSERT_TRUE(fs_.format(64 * kMiB));
  CommandResult r =
      mount_expecting_failure(fs_.image(), fs_.mountpoint(), {"-o", "cache_size=abc"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.err.empty()) << "no message for a bad option";
  EXPECT_NE(r.err.find("cache_size"), std::string::npos) << "stderr: " << r.err;
  EXPECT_FALSE(is_mounted_at(fs_.mountpoint()));
  EXPECT_EQ(fs_.fsck(), 0) << fs_.last_fsck().out << fs_.last_fsck().err;
}

TEST_F(MountErrors, BadTuningOptionsAreRefused) {
  ASSERT_TRUE(fs_.format(64 * kMiB));
  for (const char* option :
       {"queue_depth=0", "queue_depth=x", "max_write_iops=-1", "max_write_mbps=fast",
        "commit_nice=20", "commit_nice=-21", "commit_nice=x"}) {
    CommandResult r = mount_expecting_failure(fs_.image(), fs_.mountpoint(), {"-o", option});
    EXPECT_NE(r.exit_code, 0) << option;
    std::string name(option, std::string_view(option).find('='));
    EXPECT_NE(r.err.find(name), std::string::npos) << option << ": " << r.err;
    EXPECT_FALSE(is_mounted_at(fs_.mountpoint())) << option;
  }
  EXPECT_EQ(fs_.fsck(), 0) << fs_.last_fsck().out << fs_.last_fsck().err;
}

// Limits on the background write-back slow it down but lose nothing.
TEST_F(MountErrors, WritebackLimitsStillWriteEverything) {
  ASSERT_TRUE(fs_.start(128 * kMiB,
                        "cache_size=8M,queue_depth=4,max_write_iops=2000,"
                        "max_write_mbps=200"));
  const std::string data = pattern(21, 0, 24 * kMiB);  // three times the cache
  ASSERT_TRUE(write_file(fs_.path("f"), data));
  ASSERT_TRUE(fs_.remount("cache_size=8M"));
  EXPECT_EQ(checksum(read_file(fs_.path("f"))), checksum(data));
  unmount_and_check();
}

// The pagefs that mount.fuse3 would run for -t fuse.pagefs. util-linux mount
// drops PATH from the helper's environment, so mount.fuse3's shell searches
// its default PATH, not ours.
std::string pagefs_found_by_mount_helper() {
  CommandResult r = run_command({"env", "-u", "PATH", "/bin/sh", "-c", "command -v pagefs"});
  if (r.exit_code != 0) return "";
  std::string found = r.out.substr(0, r.out.find('\n'));
  char* real = realpath(found.c_str(), nullptr);
  std::string out = real != nullptr ? real : "";
  free(real);
  return out;
}

TEST_F(MountErrors, MountTypeFusePagefsWorks) {
  if (access("/sbin/mount.fuse3", X_OK) != 0) GTEST_SKIP() << "no /sbin/mount.fuse3";
  if (!is_root()) GTEST_SKIP() << "mount(8) needs root";
  ASSERT_TRUE(fs_.format(64 * kMiB));
  char* built = realpath(PAGEFS_BIN, nullptr);
  ASSERT_NE(built, nullptr);
  const bool installed = pagefs_found_by_mount_helper() == built;
  free(built);
  // Without the built pagefs installed, mount.fuse3's "PROGRAM#DEVICE" form
  // runs it by absolute path with the same arguments -t fuse.pagefs would pass.
  std::vector<std::string> argv =
      installed ? std::vector<std::string>{"mount", "-t", "fuse.pagefs", fs_.image()}
                : std::vector<std::string>{"mount", "-t", "fuse",
                                           std::string(PAGEFS_BIN) + "#" + fs_.image()};
  printf("[ info ] %s\n", installed ? "mount -t fuse.pagefs" : "mount -t fuse PAGEFS_BIN#IMAGE");
  argv.insert(argv.end(), {fs_.mountpoint(), "-o", "cache_size=64M"});
  CommandResult r = run_command(argv);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(is_mounted_at(fs_.mountpoint()));
  ASSERT_TRUE(write_file(fs_.path("via-mount"), "mounted by mount(8)"));
  EXPECT_EQ(read_file(fs_.path("via-mount")), "mounted by mount(8)");

  r = run_command({"fusermount3", "-u", fs_.mountpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_command({"flock", "-w", "60", fs_.image(), "true"});
  ASSERT_EQ(r.exit_code, 0) << "the daemon did not release the image: " << r.err;
  EXPECT_EQ(fs_.fsck(), 0) << fs_.last_fsck().out << fs_.last_fsck().err;
  ASSERT_TRUE(fs_.mount());
  EXPECT_EQ(read_file(fs_.path("via-mount")), "mounted by mount(8)");
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
