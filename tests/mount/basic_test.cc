// Namespace operations through a real mount: files, directories, links,
// renames, special files, attributes, xattrs, names and readdir.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int rename2(const std::string& from, const std::string& to, unsigned flags) {
  return int(syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class MountBasic : public MountTest {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.start(256 * kMiB)); }
};

TEST_F(MountBasic, WrittenFileReadsBackAfterRemount) {
  const std::string file = fs_.path("hello.txt");
  const std::string data = pattern(1, 0, 100'000) + "tail";
  int fd = open(file.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << std::strerror(errno);
  std::string back(data.size(), '\0');
  ASSERT_EQ(pread(fd, back.data(), back.size(), 0), ssize_t(back.size())) << std::strerror(errno);
  EXPECT_EQ(back, data);
  struct stat fst {};
  ASSERT_EQ(fstat(fd, &fst), 0);
  ASSERT_EQ(close(fd), 0) << std::strerror(errno);

  struct stat st = stat_of(file);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_size, off_t(data.size()));
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_gid, getegid());
  EXPECT_EQ(st.st_ino, fst.st_ino);
  EXPECT_GE(st.st_blocks * 512, off_t(data.size()));

  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(file), data);
  struct stat again = stat_of(file);
  EXPECT_EQ(again.st_ino, st.st_ino);
  EXPECT_EQ(again.st_size, st.st_size);
  EXPECT_EQ(again.st_mode, st.st_mode);
  EXPECT_EQ(again.st_mtim.tv_sec, st.st_mtim.tv_sec);
  EXPECT_EQ(again.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
  unmount_and_check();
}

TEST_F(MountBasic, DirectoriesAndLinkCounts) {
  const std::string a = fs_.path("a");
  const nlink_t root_links = stat_of(fs_.path()).st_nlink;
  EXPECT_EQ(root_links, 2u);  // a fresh root: "." and its entry in itself
  ASSERT_EQ(mkdir(a.c_str(), 0755), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(a).st_nlink, 2u);
  EXPECT_EQ(stat_of(fs_.path()).st_nlink, root_links + 1);
  EXPECT_EQ(mkdir(a.c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);

  for (const char* sub : {"a/s1", "a/s2", "a/s3"}) {
    ASSERT_EQ(mkdir(fs_.path(sub).c_str(), 0700), 0) << sub << ": " << std::strerror(errno);
  }
  EXPECT_EQ(stat_of(a).st_nlink, 5u);  // 2 + three subdirectories
  EXPECT_EQ(stat_of(fs_.path()).st_nlink, root_links + 1);

  ASSERT_TRUE(write_file(fs_.path("a/file"), "x"));
  EXPECT_EQ(stat_of(a).st_nlink, 5u);  // files do not count
  EXPECT_EQ(stat_of(fs_.path("a/file")).st_nlink, 1u);

  EXPECT_EQ(rmdir(a.c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(mkdir(fs_.path("a/file/sub").c_str(), 0755), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(open(fs_.path("a/file/x").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(rmdir(fs_.path("a/file").c_str()), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(unlink(fs_.path("a/s1").c_str()), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(rmdir(fs_.path("a/missing").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);

  ASSERT_EQ(unlink(fs_.path("a/file").c_str()), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(fs_.path("a/file")));
  ASSERT_EQ(rmdir(fs_.path("a/s2").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(a).st_nlink, 4u);
  ASSERT_EQ(rmdir(fs_.path("a/s1").c_str()), 0);
  ASSERT_EQ(rmdir(fs_.path("a/s3").c_str()), 0);
  EXPECT_EQ(stat_of(a).st_nlink, 2u);
  ASSERT_EQ(rmdir(a.c_str()), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(a));
  EXPECT_EQ(stat_of(fs_.path()).st_nlink, root_links);

  ASSERT_EQ(mkdir(fs_.path("kept").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("kept/child").c_str(), 0755), 0);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(stat_of(fs_.path("kept")).st_nlink, 3u);
  EXPECT_TRUE(S_ISDIR(stat_of(fs_.path("kept/child")).st_mode));
  EXPECT_FALSE(exists(a));
  unmount_and_check();
}

TEST_F(MountBasic, HardLinksShareDataAndCount) {
  const std::string one = fs_.path("one"), two = fs_.path("two");
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  const std::string three = fs_.path("d/three");
  ASSERT_TRUE(write_file(one, "first version"));
  ASSERT_EQ(link(one.c_str(), two.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(link(one.c_str(), three.c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(one).st_nlink, 3u);
  EXPECT_EQ(stat_of(two).st_ino, stat_of(one).st_ino);
  EXPECT_EQ(link(one.c_str(), two.c_str()), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(link(fs_.path("d").c_str(), fs_.path("dlink").c_str()), -1);
  EXPECT_EQ(errno, EPERM);

  int fd = open(two.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, ", appended", 10), 10);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(read_file(one), "first version, appended");
  EXPECT_EQ(read_file(three), "first version, appended");

  ASSERT_EQ(unlink(one.c_str()), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(one));
  EXPECT_EQ(stat_of(two).st_nlink, 2u);
  EXPECT_EQ(read_file(two), "first version, appended");

  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(stat_of(three).st_nlink, 2u);
  EXPECT_EQ(read_file(three), "first version, appended");
  ASSERT_EQ(unlink(two.c_str()), 0);
  EXPECT_EQ(stat_of(three).st_nlink, 1u);
  EXPECT_EQ(read_file(three), "first version, appended");
  unmount_and_check();
}

TEST_F(MountBasic, RenameReplacesNoReplaceExchangeAndMovesDirectories) {
  const std::string a = fs_.path("a"), b = fs_.path("b");
  ASSERT_TRUE(write_file(a, "contents of a"));
  ASSERT_TRUE(write_file(b, "contents of b"));
  const ino_t a_ino = stat_of(a).st_ino;

  // Over an existing file: b now is a's inode, a is gone, b's old inode freed.
  int held_b = open(b.c_str(), O_RDONLY);  // the replaced file stays readable while open
  ASSERT_GE(held_b, 0);
  ASSERT_EQ(rename(a.c_str(), b.c_str()), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(a));
  EXPECT_EQ(stat_of(b).st_ino, a_ino);
  EXPECT_EQ(read_file(b), "contents of a");
  char buf[32] = {};
  EXPECT_EQ(pread(held_b, buf, sizeof buf, 0), 13);
  EXPECT_STREQ(buf, "contents of b");
  ASSERT_EQ(close(held_b), 0);

  ASSERT_TRUE(write_file(a, "new a"));
  EXPECT_EQ(rename2(a, b, RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(read_file(a), "new a");
  EXPECT_EQ(read_file(b), "contents of a");
  ASSERT_EQ(rename2(a, fs_.path("c"), RENAME_NOREPLACE), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(a));

  ASSERT_EQ(rename2(b, fs_.path("c"), RENAME_EXCHANGE), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(b), "new a");
  EXPECT_EQ(read_file(fs_.path("c")), "contents of a");
  EXPECT_EQ(rename2(b, fs_.path("missing"), RENAME_EXCHANGE), -1);
  EXPECT_EQ(errno, ENOENT);

  // A directory moved into another directory: ".." follows, link counts move.
  ASSERT_EQ(mkdir(fs_.path("p1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("p2").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("p1/d").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(fs_.path("p1/d/f"), "inside"));
  ASSERT_EQ(rename(fs_.path("p1/d").c_str(), fs_.path("p2/d").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(fs_.path("p2/d/..")).st_ino, stat_of(fs_.path("p2")).st_ino);
  EXPECT_EQ(stat_of(fs_.path("p1")).st_nlink, 2u);
  EXPECT_EQ(stat_of(fs_.path("p2")).st_nlink, 3u);
  EXPECT_EQ(read_file(fs_.path("p2/d/f")), "inside");

  // A directory over an empty directory; not over a non-empty one; not into itself.
  ASSERT_EQ(mkdir(fs_.path("empty").c_str(), 0755), 0);
  EXPECT_EQ(rename(fs_.path("p1").c_str(), fs_.path("p2").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(rename(fs_.path("p2").c_str(), fs_.path("p2/d/x").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(rename(fs_.path("c").c_str(), fs_.path("empty").c_str()), -1);
  EXPECT_EQ(errno, EISDIR);
  ASSERT_EQ(rename(fs_.path("p1").c_str(), fs_.path("empty").c_str()), 0) << std::strerror(errno);
  EXPECT_FALSE(exists(fs_.path("p1")));

  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(stat_of(fs_.path("p2/d/..")).st_ino, stat_of(fs_.path("p2")).st_ino);
  EXPECT_EQ(read_file(fs_.path("p2/d/f")), "inside");
  EXPECT_EQ(read_file(b), "new a");
  EXPECT_EQ(read_file(fs_.path("c")), "contents of a");
  unmount_and_check();
}

TEST_F(MountBasic, SymlinksAndSpecialFiles) {
  const std::string link_path = fs_.path("link");
  ASSERT_EQ(symlink("target/file", link_path.c_str()), 0) << std::strerror(errno);
  char buf[8192];
  ssize_t n = readlink(link_path.c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 11) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, size_t(n)), "target/file");
  struct stat st = stat_of(link_path);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 11);

  std::string long_target;
  while (long_target.size() < 4000)
    long_target += "component_" + std::to_string(long_target.size()) + "/";
  long_target.resize(4000);
  ASSERT_EQ(symlink(long_target.c_str(), fs_.path("long").c_str()), 0) << std::strerror(errno);
  n = readlink(fs_.path("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 4000) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, size_t(n)), long_target);

  ASSERT_TRUE(write_file(fs_.path("real"), "through the link"));
  ASSERT_EQ(symlink("real", fs_.path("rel").c_str()), 0);
  EXPECT_EQ(read_file(fs_.path("rel")), "through the link");

  ASSERT_EQ(mkfifo(fs_.path("fifo").c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISFIFO(stat_of(fs_.path("fifo")).st_mode));
  ASSERT_EQ(mknod(fs_.path("sock").c_str(), S_IFSOCK | 0600, 0), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISSOCK(stat_of(fs_.path("sock")).st_mode));
  const dev_t dev = makedev(1, 3);
  if (is_root()) {
    ASSERT_EQ(mknod(fs_.path("null").c_str(), S_IFCHR | 0666, dev), 0) << std::strerror(errno);
    struct stat cst = stat_of(fs_.path("null"));
    EXPECT_TRUE(S_ISCHR(cst.st_mode));
    EXPECT_EQ(cst.st_rdev, dev);
  }

  ASSERT_TRUE(fs_.remount());
  n = readlink(fs_.path("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 4000) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, size_t(n)), long_target);
  EXPECT_TRUE(S_ISFIFO(stat_of(fs_.path("fifo")).st_mode));
  EXPECT_TRUE(S_ISSOCK(stat_of(fs_.path("sock")).st_mode));
  if (is_root()) {
    EXPECT_EQ(stat_of(fs_.path("null")).st_rdev, dev);
  }
  unmount_and_check();
}

TEST_F(MountBasic, ChmodChownTruncateAndTimes) {
  const std::string file = fs_.path("f");
  ASSERT_TRUE(write_file(file, std::string(10'000, 'a')));
  ASSERT_EQ(chmod(file.c_str(), 04751), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(file).st_mode & 07777, 04751u);
  ASSERT_EQ(chmod(file.c_str(), 0600), 0);
  EXPECT_EQ(stat_of(file).st_mode & 07777, 0600u);
  if (is_root()) {
    ASSERT_EQ(chown(file.c_str(), 1234, 5678), 0) << std::strerror(errno);
    EXPECT_EQ(stat_of(file).st_uid, 1234u);
    EXPECT_EQ(stat_of(file).st_gid, 5678u);
    ASSERT_EQ(chown(file.c_str(), uid_t(-1), 42), 0);
    EXPECT_EQ(stat_of(file).st_uid, 1234u);
    EXPECT_EQ(stat_of(file).st_gid, 42u);
  }

  // Down to a size inside a page, then up: the bytes past the cut read as zero.
  ASSERT_EQ(truncate(file.c_str(), 5000), 0) << std::strerror(errno);
  EXPECT_EQ(stat_of(file).st_size, 5000);
  EXPECT_EQ(read_file(file), std::string(5000, 'a'));
  ASSERT_EQ(truncate(file.c_str(), 20'000), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(file), std::string(5000, 'a') + std::string(15'000, '\0'));
  int fd = open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 3 * kMiB), 0) << std::strerror(errno);
  char tail[16];
  ASSERT_EQ(pread(fd, tail, sizeof tail, 3 * kMiB - 16), 16);
  EXPECT_EQ(std::string(tail, 16), std::string(16, '\0'));
  ASSERT_EQ(ftruncate(fd, 0), 0);
  EXPECT_EQ(stat_of(file).st_size, 0);
  ASSERT_EQ(close(fd), 0);

  const timespec set[2] = {{1'000'000'000, 123'456'789}, {1'100'000'000, 987'654'321}};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), set, 0), 0) << std::strerror(errno);
  struct stat st = stat_of(file);
  EXPECT_EQ(st.st_atim.tv_sec, set[0].tv_sec);
  EXPECT_EQ(st.st_atim.tv_nsec, set[0].tv_nsec);
  EXPECT_EQ(st.st_mtim.tv_sec, set[1].tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, set[1].tv_nsec);

  const timespec now_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  const time_t before = time(nullptr);
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), now_omit, 0), 0) << std::strerror(errno);
  st = stat_of(file);
  EXPECT_EQ(st.st_atim.tv_sec, set[0].tv_sec);
  EXPECT_EQ(st.st_atim.tv_nsec, set[0].tv_nsec);
  EXPECT_GE(st.st_mtim.tv_sec, before - 1);
  EXPECT_LE(st.st_mtim.tv_sec, time(nullptr) + 1);
  EXPECT_GE(st.st_ctim.tv_sec, before - 1);

  const timespec omit_now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  const timespec mtime_before = st.st_mtim;
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), omit_now, 0), 0) << std::strerror(errno);
  st = stat_of(file);
  EXPECT_GE(st.st_atim.tv_sec, before - 1);
  EXPECT_EQ(st.st_mtim.tv_sec, mtime_before.tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, mtime_before.tv_nsec);

  ASSERT_TRUE(fs_.remount());
  struct stat after = stat_of(file);
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  EXPECT_EQ(after.st_mtim.tv_sec, st.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
  EXPECT_EQ(after.st_size, 0);
  if (is_root()) {
    EXPECT_EQ(after.st_uid, 1234u);
  }
  unmount_and_check();
}

TEST_F(MountBasic, ExtendedAttributes) {
  const std::string file = fs_.path("x");
  ASSERT_TRUE(write_file(file, "data"));
  ASSERT_EQ(setxattr(file.c_str(), "user.color", "blue", 4, 0), 0) << std::strerror(errno);
  ASSERT_EQ(setxattr(file.c_str(), "user.empty", "", 0, 0), 0) << std::strerror(errno);
  const std::string big(900, 'v');
  ASSERT_EQ(setxattr(file.c_str(), "user.big", big.data(), big.size(), 0), 0)
      << std::strerror(errno);

  char buf[4096];
  ASSERT_EQ(getxattr(file.c_str(), "user.color", buf, sizeof buf), 4) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, 4), "blue");
  EXPECT_EQ(getxattr(file.c_str(), "user.color", nullptr, 0), 4);
  EXPECT_EQ(getxattr(file.c_str(), "user.empty", buf, sizeof buf), 0);
  ASSERT_EQ(getxattr(file.c_str(), "user.big", buf, sizeof buf), ssize_t(big.size()));
  EXPECT_EQ(std::string(buf, big.size()), big);
  EXPECT_EQ(getxattr(file.c_str(), "user.color", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(getxattr(file.c_str(), "user.none", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);

  EXPECT_EQ(setxattr(file.c_str(), "user.color", "red", 3, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(setxattr(file.c_str(), "user.none", "red", 3, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(setxattr(file.c_str(), "user.color", "red", 3, XATTR_REPLACE), 0);
  ASSERT_EQ(getxattr(file.c_str(), "user.color", buf, sizeof buf), 3);
  EXPECT_EQ(std::string(buf, 3), "red");

  ssize_t list_len = listxattr(file.c_str(), nullptr, 0);
  ASSERT_GT(list_len, 0) << std::strerror(errno);
  ASSERT_EQ(listxattr(file.c_str(), buf, sizeof buf), list_len);
  std::set<std::string> names;
  for (ssize_t i = 0; i < list_len; i += ssize_t(strlen(buf + i)) + 1) names.insert(buf + i);
  EXPECT_EQ(names, (std::set<std::string>{"user.big", "user.color", "user.empty"}));
  EXPECT_EQ(listxattr(file.c_str(), buf, 3), -1);
  EXPECT_EQ(errno, ERANGE);

  ASSERT_EQ(removexattr(file.c_str(), "user.big"), 0) << std::strerror(errno);
  EXPECT_EQ(getxattr(file.c_str(), "user.big", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(removexattr(file.c_str(), "user.big"), -1);
  EXPECT_EQ(errno, ENODATA);

  ASSERT_EQ(mkdir(fs_.path("dir").c_str(), 0755), 0);
  ASSERT_EQ(setxattr(fs_.path("dir").c_str(), "user.on_dir", "1", 1, 0), 0) << std::strerror(errno);

  ASSERT_TRUE(fs_.remount());
  ASSERT_EQ(getxattr(file.c_str(), "user.color", buf, sizeof buf), 3);
  EXPECT_EQ(std::string(buf, 3), "red");
  EXPECT_EQ(getxattr(file.c_str(), "user.big", buf, sizeof buf), -1);
  EXPECT_EQ(getxattr(fs_.path("dir").c_str(), "user.on_dir", buf, sizeof buf), 1);
  unmount_and_check();
}

TEST_F(MountBasic, NameLengthLimit) {
  const std::string name255(255, 'n');
  const std::string name256(256, 'n');
  ASSERT_TRUE(write_file(fs_.path(name255), "long name"));
  EXPECT_EQ(read_file(fs_.path(name255)), "long name");
  std::vector<std::string> names = list_dir(fs_.path());
  EXPECT_NE(std::find(names.begin(), names.end(), name255), names.end());
  ASSERT_EQ(mkdir(fs_.path(std::string(255, 'd')).c_str(), 0755), 0) << std::strerror(errno);

  EXPECT_EQ(open(fs_.path(name256).c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(mkdir(fs_.path(name256).c_str(), 0755), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(rename(fs_.path(name255).c_str(), fs_.path(name256).c_str()), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(symlink("x", fs_.path(name256).c_str()), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);

  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(fs_.path(name255)), "long name");
  unmount_and_check();
}

TEST_F(MountBasic, ReaddirListsExactlyTheEntries) {
  constexpr int kFiles = 1000;
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  std::set<std::string> expected;
  for (int i = 0; i < kFiles; ++i) {
    std::string name = "entry-" + std::to_string(i * 7919);
    int fd = open(fs_.path("d/" + name).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << name << ": " << std::strerror(errno);
    close(fd);
    expected.insert(name);
  }
  ASSERT_EQ(mkdir(fs_.path("d/subdir").c_str(), 0755), 0);
  expected.insert("subdir");

  DIR* d = opendir(fs_.path("d").c_str());
  ASSERT_NE(d, nullptr);
  std::multiset<std::string> seen;
  bool dot = false, dotdot = false;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == ".") {
      dot = true;
    } else if (name == "..") {
      dotdot = true;
    } else {
      seen.insert(name);
      EXPECT_EQ(e->d_type, name == "subdir" ? DT_DIR : DT_REG) << name;
    }
  }
  closedir(d);
  EXPECT_TRUE(dot);
  EXPECT_TRUE(dotdot);
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), expected);
  unmount_and_check();
}

TEST_F(MountBasic, SeekdirPositionsSurviveRemovals) {
  constexpr int kFiles = 1000;
  const std::string dir = fs_.path("d");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::set<std::string> all;
  for (int i = 0; i < kFiles; ++i) {
    std::string name = "f" + std::to_string(i);
    int fd = open((dir + "/" + name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    close(fd);
    all.insert(name);
  }

  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  std::set<std::string> seen;
  std::vector<std::string> order;
  long pos_at_100 = -1, pos_at_300 = -1;
  while (order.size() < 300) {
    dirent* e = readdir(d);
    ASSERT_NE(e, nullptr) << "directory ended after " << order.size() << " entries";
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate " << name;
    order.push_back(name);
    if (order.size() == 100) pos_at_100 = telldir(d);
    if (order.size() == 300) pos_at_300 = telldir(d);
  }
  // Remove every entry returned so far, then continue from the saved position.
  for (const auto& name : order) ASSERT_EQ(unlink((dir + "/" + name).c_str()), 0);
  seekdir(d, pos_at_300);
  std::vector<std::string> rest;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    EXPECT_TRUE(seen.insert(name).second) << "entry returned twice: " << name;
    rest.push_back(name);
  }
  EXPECT_EQ(seen, all) << "entries skipped: " << all.size() - seen.size();
  EXPECT_EQ(rest.size(), size_t(kFiles - 300));

  // A position taken before the removals still leads to the first remaining entry.
  ASSERT_FALSE(rest.empty());
  seekdir(d, pos_at_100);
  dirent* e = readdir(d);
  while (e != nullptr && (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)) {
    e = readdir(d);
  }
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(std::string(e->d_name), rest.front());
  rewinddir(d);
  size_t count = 0;
  while ((e = readdir(d)) != nullptr) count += e->d_name[0] != '.';
  EXPECT_EQ(count, size_t(kFiles - 300));
  closedir(d);
  unmount_and_check();
}

// The nice value of the daemon's thread named `name` (-100 if there is none).
int thread_nice(pid_t pid, const std::string& name) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return -100;
  int nice = -100;
  while (dirent* e = readdir(tasks)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = dir + "/" + e->d_name;
    std::string comm = read_file(task + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm != name) continue;
    // Field 19 of stat; the command name (field 2) is in parentheses.
    const std::string stat = read_file(task + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && rest >> field; i++) {
      if (i == 19) nice = std::stoi(field);
    }
  }
  closedir(tasks);
  return nice;
}

// commit_nice= sets the commit thread's nice value, and only that thread's.
TEST_F(MountBasic, CommitNiceSetsTheCommitThreadsPriority) {
  if (!is_root()) GTEST_SKIP() << "a negative nice value needs root";
  EXPECT_EQ(thread_nice(fs_.daemon_pid(), "pagefs-commit"), 0) << "the default";
  ASSERT_TRUE(fs_.remount("commit_nice=-7"));
  EXPECT_EQ(thread_nice(fs_.daemon_pid(), "pagefs-commit"), -7);
  EXPECT_EQ(thread_nice(fs_.daemon_pid(), "pagefs-ckpt"), 0);
  ASSERT_TRUE(write_file(fs_.path("f"), "synced"));
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
