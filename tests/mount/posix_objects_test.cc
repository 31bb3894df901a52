// POSIX conformance through a real mount: special files, readdir, link
// counts, statfs and extended attributes.
#include "tests/mount/posix_helpers.h"

namespace pagefs::test {
namespace {

TEST_F(PosixObjects, FifoSocketAndDeviceNodes) {
  const std::string fifo = p("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_TRUE(S_ISFIFO(lst(fifo).st_mode));
  EXPECT_EQ(lst(fifo).st_mode & 07777, 0644u);
  EXPECT_EQ(open_err(fifo, O_WRONLY | O_NONBLOCK), "ENXIO");  // no reader
  int rfd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(rfd, 0) << std::strerror(errno);
  int wfd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(wfd, 0) << std::strerror(errno);
  ASSERT_EQ(write(wfd, "through", 7), 7);
  char buf[16] = {};
  EXPECT_EQ(read(rfd, buf, sizeof buf), 7);
  EXPECT_EQ(std::string(buf, 7), "through");
  close(wfd);
  close(rfd);
  EXPECT_EQ(lst(fifo).st_size, 0);

  // A UNIX socket bound into the filesystem.
  const std::string sock = p("sock");
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  EXPECT_EQ(E(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr)), "OK");
  EXPECT_EQ(E(listen(s, 1)), "OK");
  int cl = socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT_EQ(E(connect(cl, reinterpret_cast<sockaddr*>(&addr), sizeof addr)), "OK");
  close(cl);
  close(s);
  EXPECT_TRUE(S_ISSOCK(lst(sock).st_mode));
  ASSERT_EQ(mknod(p("sock2").c_str(), S_IFSOCK | 0600, 0), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISSOCK(lst(p("sock2")).st_mode));
  ASSERT_EQ(mknod(p("reg").c_str(), S_IFREG | 0600, 0), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISREG(lst(p("reg")).st_mode));
  EXPECT_EQ(E(mknod(p("fifo").c_str(), S_IFIFO | 0600, 0)), "EEXIST");

  struct Dev {
    const char* name;
    mode_t type;
    unsigned maj, min;
  };
  const std::vector<Dev> devs = {{"null", S_IFCHR, 1, 3},
                                 {"sdb1", S_IFBLK, 8, 17},
                                 {"bigchr", S_IFCHR, 4095, 1048575},
                                 {"bigblk", S_IFBLK, 259, 65536 + 5}};
  if (is_root()) {
    for (const Dev& d : devs) {
      ASSERT_EQ(mknod(p(d.name).c_str(), d.type | 0640, makedev(d.maj, d.min)), 0)
          << d.name << ": " << std::strerror(errno);
    }
  }
  ASSERT_TRUE(fs_.remount());
  EXPECT_TRUE(S_ISFIFO(lst(fifo).st_mode));
  EXPECT_TRUE(S_ISSOCK(lst(sock).st_mode));
  if (is_root()) {
    for (const Dev& d : devs) {
      struct stat st = lst(p(d.name));
      EXPECT_EQ(st.st_mode & S_IFMT, d.type) << d.name;
      EXPECT_EQ(st.st_mode & 07777, 0640u) << d.name;
      EXPECT_EQ(major(st.st_rdev), d.maj) << d.name;
      EXPECT_EQ(minor(st.st_rdev), d.min) << d.name;
      EXPECT_EQ(st.st_size, 0) << d.name;
    }
  }
  unmount_and_check();
}

TEST_F(PosixObjects, ReaddirInodesAndDirectoryLinkCounts) {
  // Many creates, unlinks and renames, then readdir must match exactly.
  ASSERT_EQ(mkdir(p("r").c_str(), 0755), 0);
  std::map<std::string, ino_t> expect;
  char name[32];
  for (int i = 0; i < 1500; ++i) {
    snprintf(name, sizeof name, "f%04d", i);
    ASSERT_TRUE(make_file(p(std::string("r/") + name), ""));
  }
  for (int i = 0; i < 1500; ++i) {
    snprintf(name, sizeof name, "f%04d", i);
    const std::string from = p(std::string("r/") + name);
    if (i % 3 == 0) {
      ASSERT_EQ(unlink(from.c_str()), 0);
    } else if (i % 3 == 1) {
      const ino_t ino = lst(from).st_ino;
      char to[32];
      snprintf(to, sizeof to, "g%04d", i);
      ASSERT_EQ(rename(from.c_str(), p(std::string("r/") + to).c_str()), 0);
      EXPECT_EQ(lst(p(std::string("r/") + to)).st_ino, ino) << "rename kept the inode";
      expect[to] = ino;
    } else {
      expect[name] = lst(from).st_ino;
    }
  }
  for (int i = 0; i < 20; ++i) {
    snprintf(name, sizeof name, "d%02d", i);
    ASSERT_EQ(mkdir(p(std::string("r/") + name).c_str(), 0755), 0);
    expect[name] = lst(p(std::string("r/") + name)).st_ino;
  }
  auto check_listing = [&](const char* when) {
    DIR* d = opendir(p("r").c_str());
    ASSERT_NE(d, nullptr);
    std::map<std::string, ino_t> seen;
    bool dot = false, dotdot = false;
    int dups = 0, bad_type = 0;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == ".") {
        dot = true;
        continue;
      }
      if (n == "..") {
        dotdot = true;
        continue;
      }
      if (seen.count(n)) ++dups;
      seen[n] = e->d_ino;
      const bool is_dir = n[0] == 'd';
      if (e->d_type != DT_UNKNOWN && e->d_type != (is_dir ? DT_DIR : DT_REG)) ++bad_type;
    }
    closedir(d);
    EXPECT_TRUE(dot) << when;
    EXPECT_TRUE(dotdot) << when;
    EXPECT_EQ(dups, 0) << when;
    EXPECT_EQ(bad_type, 0) << when;
    EXPECT_EQ(seen.size(), expect.size()) << when;
    EXPECT_TRUE(seen == expect) << when << ": readdir names/d_ino differ from stat";
  };
  check_listing("before remount");
  EXPECT_EQ(lst(p("r")).st_nlink, 2u + 20u);

  // Hard links: same inode, nlink counts.
  ASSERT_EQ(link(p("r/f0002").c_str(), p("hl").c_str()), 0);
  EXPECT_EQ(lst(p("hl")).st_ino, expect["f0002"]);
  EXPECT_EQ(lst(p("hl")).st_nlink, 2u);

  // Directory link counts across mkdir, rmdir and rename between parents.
  const std::string root = p("");
  const nlink_t root0 = lst(root).st_nlink;
  ASSERT_EQ(mkdir(p("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("b").c_str(), 0755), 0);
  EXPECT_EQ(lst(root).st_nlink, root0 + 2);
  EXPECT_EQ(lst(p("a")).st_nlink, 2u);
  ASSERT_EQ(mkdir(p("a/s1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("a/s2").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("a/s3").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("a/file")));
  EXPECT_EQ(lst(p("a")).st_nlink, 5u);
  ASSERT_EQ(rename(p("a/s1").c_str(), p("b/s1").c_str()), 0);
  EXPECT_EQ(lst(p("a")).st_nlink, 4u);
  EXPECT_EQ(lst(p("b")).st_nlink, 3u);
  EXPECT_EQ(lst(p("b/s1/..")).st_ino, lst(p("b")).st_ino) << ".. follows the move";
  ASSERT_EQ(mkdir(p("b/empty").c_str(), 0755), 0);
  EXPECT_EQ(lst(p("b")).st_nlink, 4u);
  ASSERT_EQ(rename(p("a/s2").c_str(), p("b/empty").c_str()), 0);  // over an empty dir
  EXPECT_EQ(lst(p("a")).st_nlink, 3u);
  EXPECT_EQ(lst(p("b")).st_nlink, 4u);
  ASSERT_EQ(rename(p("a/s3").c_str(), p("a/s3renamed").c_str()), 0);  // same parent
  EXPECT_EQ(lst(p("a")).st_nlink, 3u);
  ASSERT_EQ(rename(p("a/file").c_str(), p("b/file").c_str()), 0);  // files do not count
  EXPECT_EQ(lst(p("a")).st_nlink, 3u);
  EXPECT_EQ(lst(p("b")).st_nlink, 4u);
  ASSERT_EQ(rmdir(p("b/s1").c_str()), 0);
  EXPECT_EQ(lst(p("b")).st_nlink, 3u);
  ASSERT_EQ(rename(p("a").c_str(), p("b/a").c_str()), 0);  // a directory with children
  EXPECT_EQ(lst(root).st_nlink, root0 + 1);
  EXPECT_EQ(lst(p("b")).st_nlink, 4u);
  EXPECT_EQ(lst(p("b/a")).st_nlink, 3u);

  ASSERT_TRUE(fs_.remount());
  check_listing("after remount");
  EXPECT_EQ(lst(root).st_nlink, root0 + 1);
  EXPECT_EQ(lst(p("b")).st_nlink, 4u);
  EXPECT_EQ(lst(p("b/a")).st_nlink, 3u);
  EXPECT_EQ(lst(p("b/a/s3renamed")).st_nlink, 2u);
  EXPECT_EQ(lst(p("hl")).st_nlink, 2u);
  unmount_and_check();
}

TEST_F(PosixObjects, StatfsTracksSpace) {
  struct statvfs s0 {};
  ASSERT_EQ(statvfs(p("").c_str(), &s0), 0) << std::strerror(errno);
  EXPECT_GT(s0.f_bsize, 0u);
  EXPECT_GT(s0.f_frsize, 0u);
  EXPECT_GT(s0.f_blocks, 0u);
  EXPECT_LE(s0.f_bfree, s0.f_blocks);
  EXPECT_LE(s0.f_bavail, s0.f_bfree);
  EXPECT_EQ(s0.f_namemax, 255u);
  EXPECT_LE(uint64_t(s0.f_blocks) * s0.f_frsize, 128 * kMiB);
  EXPECT_GT(uint64_t(s0.f_blocks) * s0.f_frsize, 64 * kMiB);

  const std::string f = p("big");
  const std::string chunk = pattern(3, 0, kMiB);
  int fd = open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(write(fd, chunk.data(), chunk.size()), ssize_t(kMiB));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  struct statvfs s1 {};
  ASSERT_EQ(statvfs(p("").c_str(), &s1), 0);
  const uint64_t used = (uint64_t(s0.f_bfree) - s1.f_bfree) * s0.f_frsize;
  EXPECT_GE(used, 10 * kMiB) << "f_bfree " << s0.f_bfree << " -> " << s1.f_bfree;
  EXPECT_LT(used, 12 * kMiB) << "f_bfree " << s0.f_bfree << " -> " << s1.f_bfree;
  EXPECT_GE(uint64_t(lst(f).st_blocks) * 512, 10 * kMiB);

  ASSERT_EQ(unlink(f.c_str()), 0);
  fd = open(p("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(syncfs(fd), 0);
  close(fd);
  struct statvfs s2 {};
  auto start = std::chrono::steady_clock::now();
  do {
    ASSERT_EQ(statvfs(p("").c_str(), &s2), 0);
    if ((uint64_t(s2.f_bfree) - s1.f_bfree) * s0.f_frsize >= 10 * kMiB) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() - start < std::chrono::seconds(7));
  EXPECT_GE((uint64_t(s2.f_bfree) - s1.f_bfree) * s0.f_frsize, 10 * kMiB)
      << "f_bfree after unlink+syncfs: " << s1.f_bfree << " -> " << s2.f_bfree;
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  EXPECT_LT(waited.count(), 200) << "space came back only after " << waited.count() << " ms";
  unmount_and_check();
}

TEST_F(PosixObjects, XattrNamesSizesAndObjectTypes) {
  const std::string f = p("f");
  ASSERT_TRUE(make_file(f));
  const std::string name255 = "user." + std::string(250, 'n');
  const std::string name256 = "user." + std::string(251, 'n');
  EXPECT_EQ(E(setxattr(f.c_str(), name255.c_str(), "v", 1, 0)), "OK");
  char buf[70'000];
  EXPECT_EQ(getxattr(f.c_str(), name255.c_str(), buf, sizeof buf), 1);
  EXPECT_EQ(E(setxattr(f.c_str(), name256.c_str(), "v", 1, 0)), "ERANGE");
  EXPECT_EQ(E(getxattr(f.c_str(), name256.c_str(), buf, sizeof buf)), "ERANGE");
  // ext4 refuses an empty name after the prefix and unknown namespaces.
  ASSERT_TRUE(make_file(p("other")));
  EXPECT_EQ(E(setxattr(p("other").c_str(), "user.", "v", 1, 0)), "EINVAL") << "empty suffix";
  EXPECT_EQ(E(setxattr(p("other").c_str(), "nosuchns.x", "v", 1, 0)), "EOPNOTSUPP");
  EXPECT_EQ(E(setxattr(p("other").c_str(), "", "v", 1, 0)), "ERANGE");
  const std::string val(200, 'q');
  ASSERT_EQ(setxattr(f.c_str(), "user.second", val.data(), val.size(), 0), 0)
      << std::strerror(errno);
  // Size queries return what is needed.
  const ssize_t need = listxattr(f.c_str(), nullptr, 0);
  EXPECT_EQ(need, ssize_t(name255.size() + 1 + std::string("user.second").size() + 1));
  EXPECT_EQ(listxattr(f.c_str(), buf, size_t(need)), need);
  EXPECT_EQ(E(listxattr(f.c_str(), buf, size_t(need - 1))), "ERANGE");
  EXPECT_EQ(getxattr(f.c_str(), "user.second", nullptr, 0), ssize_t(val.size()));
  // Values up to the kernel's 64 KiB limit are stored (the large ones in data
  // pages) and read back whole.
  for (size_t len : {size_t(3000), size_t(4096), size_t(65536)}) {
    const std::string v(len, char('a' + len % 26));
    EXPECT_EQ(E(setxattr(f.c_str(), "user.large", v.data(), v.size(), 0)), "OK") << len;
    EXPECT_EQ(getxattr(f.c_str(), "user.large", buf, sizeof buf), ssize_t(len));
    EXPECT_EQ(std::string(buf, len), v) << len;
  }
  removexattr(f.c_str(), "user.large");
  const std::string too_big(65537, 'h');
  EXPECT_EQ(E(setxattr(f.c_str(), "user.toobig", too_big.data(), too_big.size(), 0)), "E2BIG");

  // user.* on a symlink or a fifo: the kernel says EPERM (set) and ENODATA (get).
  ASSERT_EQ(symlink("f", p("sl").c_str()), 0);
  EXPECT_EQ(E(lsetxattr(p("sl").c_str(), "user.x", "1", 1, 0)), "EPERM");
  EXPECT_EQ(E(lgetxattr(p("sl").c_str(), "user.x", buf, sizeof buf)), "ENODATA");
  EXPECT_GE(llistxattr(p("sl").c_str(), buf, sizeof buf), 0) << std::strerror(errno);
  // Following the link reaches the file.
  EXPECT_EQ(E(setxattr(p("sl").c_str(), "user.via_link", "1", 1, 0)), "OK");
  EXPECT_EQ(getxattr(f.c_str(), "user.via_link", buf, sizeof buf), 1);
  ASSERT_EQ(mkfifo(p("fifo").c_str(), 0644), 0);
  EXPECT_EQ(E(setxattr(p("fifo").c_str(), "user.x", "1", 1, 0)), "EPERM");
  if (is_root()) {
    // trusted.* on a symlink is allowed by the kernel (ext4 stores it).
    EXPECT_EQ(E(lsetxattr(p("sl").c_str(), "trusted.x", "1", 1, 0)), "OK");
    EXPECT_EQ(lgetxattr(p("sl").c_str(), "trusted.x", buf, sizeof buf), 1);
    EXPECT_EQ(E(setxattr(p("fifo").c_str(), "trusted.x", "1", 1, 0)), "OK");
  }
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(getxattr(f.c_str(), name255.c_str(), buf, sizeof buf), 1);
  EXPECT_EQ(getxattr(f.c_str(), "user.second", buf, sizeof buf), ssize_t(val.size()));
  if (is_root()) {
    EXPECT_EQ(lgetxattr(p("sl").c_str(), "trusted.x", buf, sizeof buf), 1);
  }
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
