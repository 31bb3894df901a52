// File handles: name_to_handle_at(2) and open_by_handle_at(2) work on a pagefs
// mount, a handle still opens its file after a remount (when the kernel has
// nothing cached and must ask pagefs for the inode by number), a handle of a
// deleted file is stale, and a directory reached by handle finds its parent.
// This is what an NFS server re-exporting the mount relies on.
//
// open_by_handle_at needs CAP_DAC_READ_SEARCH: these tests run as root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

// The kernel's encoding of a FUSE handle (fs/fuse/inode.c, fuse_encode_fh):
// FILEID_INO64_GEN, the node id in two 32-bit words (high first), then the
// generation.
constexpr int kFileIdIno64Gen = 0x81;
constexpr unsigned kFuseHandleBytes = 12;

class Handle {
 public:
  Handle() : storage_(sizeof(file_handle) + MAX_HANDLE_SZ) { get()->handle_bytes = MAX_HANDLE_SZ; }
  file_handle* get() { return reinterpret_cast<file_handle*>(storage_.data()); }
  uint32_t word(int i) {
    uint32_t w;
    std::memcpy(&w, get()->f_handle + 4 * i, sizeof w);
    return w;
  }
  void set_word(int i, uint32_t w) { std::memcpy(get()->f_handle + 4 * i, &w, sizeof w); }

 private:
  std::vector<char> storage_;
};

::testing::AssertionResult handle_of(const std::string& path, Handle* h) {
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), h->get(), &mount_id, 0) != 0) {
    return ::testing::AssertionFailure()
           << "name_to_handle_at " << path << ": " << std::strerror(errno);
  }
  return ::testing::AssertionSuccess();
}

class MountHandles : public MountTest {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "open_by_handle_at needs CAP_DAC_READ_SEARCH (root)";
  }
  void TearDown() override {
    if (mount_fd_ >= 0) close(mount_fd_);
  }

  // Opens `h` relative to the mount (the descriptor is reopened after a
  // remount). -1 with errno on failure.
  int open_handle(Handle& h, int flags) {
    if (mount_fd_ < 0) mount_fd_ = open(fs_.mountpoint().c_str(), O_RDONLY | O_DIRECTORY);
    EXPECT_GE(mount_fd_, 0) << std::strerror(errno);
    return open_by_handle_at(mount_fd_, h.get(), flags);
  }
  ::testing::AssertionResult remount() {
    if (mount_fd_ >= 0) close(mount_fd_);
    mount_fd_ = -1;
    return fs_.remount();
  }
  void unmount_and_check() {
    if (mount_fd_ >= 0) close(mount_fd_);
    mount_fd_ = -1;
    MountTest::unmount_and_check();
  }

  int mount_fd_ = -1;
};

uint64_t ino_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_ino;
}

std::string read_fd(int fd) {
  std::string out(4096, '\0');
  ssize_t n = pread(fd, out.data(), out.size(), 0);
  EXPECT_GE(n, 0) << std::strerror(errno);
  out.resize(n > 0 ? size_t(n) : 0);
  return out;
}

TEST_F(MountHandles, HandleOpensTheSameFileAfterARemount) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(fs_.path("d/f"), "contents of f"));
  ASSERT_TRUE(write_file(fs_.path("g"), "contents of g"));
  uint64_t f_ino = ino_of(fs_.path("d/f"));
  Handle f, g;
  ASSERT_TRUE(handle_of(fs_.path("d/f"), &f));
  ASSERT_TRUE(handle_of(fs_.path("g"), &g));
  if (f.get()->handle_type != kFileIdIno64Gen || f.get()->handle_bytes != kFuseHandleBytes) {
    GTEST_SKIP() << "this kernel encodes FUSE handles differently (type " << f.get()->handle_type
                 << ")";
  }
  // The handle carries the inode number and a generation pagefs gave it.
  EXPECT_EQ((uint64_t(f.word(0)) << 32) | f.word(1), f_ino);
  EXPECT_NE(f.word(2), 0u) << "pagefs gave the inode no generation";

  ASSERT_TRUE(remount());
  int fd = open_handle(f, O_RDONLY);
  ASSERT_GE(fd, 0) << "open_by_handle_at after a remount: " << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "contents of f");
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_ino, f_ino);
  close(fd);
  fd = open_handle(g, O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(pwrite(fd, "G", 1, 0), 1);
  close(fd);
  EXPECT_EQ(read_file(fs_.path("g")), "Gontents of g");

  // A file made in a later mount has a later generation.
  ASSERT_TRUE(write_file(fs_.path("h"), "h"));
  Handle h;
  ASSERT_TRUE(handle_of(fs_.path("h"), &h));
  EXPECT_GT(h.word(2), f.word(2));
  unmount_and_check();
}

TEST_F(MountHandles, HandleOfADeletedFileIsStale) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_TRUE(write_file(fs_.path("f"), "doomed"));
  ASSERT_TRUE(write_file(fs_.path("keep"), "kept"));
  Handle f, keep;
  ASSERT_TRUE(handle_of(fs_.path("f"), &f));
  ASSERT_TRUE(handle_of(fs_.path("keep"), &keep));
  ASSERT_EQ(unlink(fs_.path("f").c_str()), 0);
  EXPECT_EQ(open_handle(f, O_RDONLY), -1);
  EXPECT_EQ(errno, ESTALE);
  ASSERT_TRUE(remount());
  EXPECT_EQ(open_handle(f, O_RDONLY), -1);
  EXPECT_EQ(errno, ESTALE);
  // The live file's number with another generation is another (dead) file:
  // stale, never the live one.
  Handle forged = keep;
  forged.set_word(2, keep.word(2) + 1);
  EXPECT_EQ(open_handle(forged, O_RDONLY), -1);
  EXPECT_EQ(errno, ESTALE);
  int fd = open_handle(keep, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "kept");
  close(fd);
  unmount_and_check();
}

TEST_F(MountHandles, DirectoryReachedByHandleFindsItsParent) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_EQ(mkdir(fs_.path("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("a/b").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("a/b/c").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(fs_.path("a/b/c/file"), "deep"));
  uint64_t b_ino = ino_of(fs_.path("a/b"));
  char* real = realpath(fs_.path("a/b/c").c_str(), nullptr);
  ASSERT_NE(real, nullptr);
  const std::string c_path = real;
  free(real);
  Handle c;
  ASSERT_TRUE(handle_of(fs_.path("a/b/c"), &c));

  // With nothing cached, the kernel reconnects the directory to the tree by
  // asking for ".." up to the root, then finds each name by listing.
  ASSERT_TRUE(remount());
  int fd = open_handle(c, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0) << "open_by_handle_at of a directory: " << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstatat(fd, "..", &st, 0), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_ino, b_ino);
  char link[4096] = {};
  ASSERT_GT(readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof link - 1), 0);
  EXPECT_EQ(std::string(link), c_path);
  int file = openat(fd, "file", O_RDONLY);
  ASSERT_GE(file, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(file), "deep");
  close(file);
  close(fd);

  // The parent of a removed directory is gone with it.
  ASSERT_EQ(unlink(fs_.path("a/b/c/file").c_str()), 0);
  ASSERT_EQ(rmdir(fs_.path("a/b/c").c_str()), 0);
  ASSERT_TRUE(remount());
  EXPECT_EQ(open_handle(c, O_RDONLY | O_DIRECTORY), -1);
  EXPECT_EQ(errno, ESTALE);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
