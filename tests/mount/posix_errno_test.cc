// POSIX conformance through a real mount: the errno of each failing
// namespace call, rename semantics, open flags and truncate.
#include "tests/mount/posix_helpers.h"

namespace pagefs::test {
namespace {

TEST_F(PosixErrno, UnlinkRmdirMkdirErrors) {
  ASSERT_TRUE(make_file(p("file")));
  ASSERT_EQ(mkdir(p("dir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("full").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("full/x")));
  ASSERT_EQ(symlink("dir", p("dirlink").c_str()), 0);
  ASSERT_EQ(symlink("nowhere", p("dangling").c_str()), 0);

  EXPECT_EQ(E(unlink(p("nope").c_str())), "ENOENT");
  EXPECT_EQ(E(unlink(p("nodir/x").c_str())), "ENOENT");
  EXPECT_EQ(E(unlink(p("file/x").c_str())), "ENOTDIR");
  EXPECT_EQ(E(unlink(p("dir").c_str())), "EISDIR");
  EXPECT_EQ(E(unlink(p(std::string(256, 'u')).c_str())), "ENAMETOOLONG");

  EXPECT_EQ(E(rmdir(p("nope").c_str())), "ENOENT");
  EXPECT_EQ(E(rmdir(p("file").c_str())), "ENOTDIR");
  EXPECT_EQ(E(rmdir(p("file/x").c_str())), "ENOTDIR");
  EXPECT_EQ(E(rmdir(p("dirlink").c_str())), "ENOTDIR");
  EXPECT_EQ(E(rmdir(p("full").c_str())), "ENOTEMPTY");
  EXPECT_EQ(E(rmdir(p("dir/.").c_str())), "EINVAL");
  EXPECT_EQ(E(rmdir(p("full/..").c_str())), "ENOTEMPTY");
  EXPECT_EQ(E(rmdir(p(std::string(256, 'r')).c_str())), "ENAMETOOLONG");

  EXPECT_EQ(E(mkdir(p("dir").c_str(), 0755)), "EEXIST");
  EXPECT_EQ(E(mkdir(p("file").c_str(), 0755)), "EEXIST");
  EXPECT_EQ(E(mkdir(p("dangling").c_str(), 0755)), "EEXIST");
  EXPECT_EQ(E(mkdir(p("nodir/x").c_str(), 0755)), "ENOENT");
  EXPECT_EQ(E(mkdir(p("file/x").c_str(), 0755)), "ENOTDIR");
  EXPECT_EQ(E(mkdir(p(std::string(256, 'm')).c_str(), 0755)), "ENAMETOOLONG");
  EXPECT_EQ(E(mkdir(p(std::string(255, 'm')).c_str(), 0755)), "OK");
  EXPECT_EQ(E(mkfifo(p("file").c_str(), 0644)), "EEXIST");
  EXPECT_EQ(E(symlink("x", p("file").c_str())), "EEXIST");
  EXPECT_EQ(E(symlink("x", p(std::string(256, 's')).c_str())), "ENAMETOOLONG");
  EXPECT_EQ(E(symlink(std::string(4096, 't').c_str(), p("longtarget").c_str())), "ENAMETOOLONG");
  // A long (but valid) symlink target round-trips.
  const std::string target(4095, 'T');
  EXPECT_EQ(E(symlink(target.c_str(), p("maxtarget").c_str())), "OK");
  char buf[5000];
  EXPECT_EQ(readlink(p("maxtarget").c_str(), buf, sizeof buf), ssize_t(target.size()));
  EXPECT_EQ(lst(p("maxtarget")).st_size, off_t(target.size()));
  struct stat st;
  EXPECT_EQ(E(stat(p(std::string(256, 'x')).c_str(), &st)), "ENAMETOOLONG");
  std::string long_path = p("");
  while (long_path.size() < 4200) long_path += "/aaaaaaaaaa";
  EXPECT_EQ(E(stat(long_path.c_str(), &st)), "ENAMETOOLONG");

  // Unlink of an open file: data stays readable through the descriptor.
  ASSERT_TRUE(make_file(p("open"), "still here"));
  int fd = open(p("open").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(p("open").c_str()), 0);
  struct stat fst;
  ASSERT_EQ(fstat(fd, &fst), 0);
  EXPECT_EQ(fst.st_nlink, 0u);
  char rb[32] = {};
  EXPECT_EQ(pread(fd, rb, sizeof rb, 0), 10);
  EXPECT_EQ(std::string(rb, 10), "still here");
  EXPECT_EQ(pwrite(fd, "X", 1, 0), 1);
  EXPECT_EQ(close(fd), 0);
  EXPECT_EQ(E(access(p("open").c_str(), F_OK)), "ENOENT");
  unmount_and_check();
}

TEST_F(PosixErrno, RenameErrorsAndSemantics) {
  ASSERT_TRUE(make_file(p("file")));
  ASSERT_TRUE(make_file(p("file2")));
  ASSERT_EQ(mkdir(p("dir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("dir/sub").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("empty").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("full").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("full/x")));

  EXPECT_EQ(E(rename(p("nope").c_str(), p("x").c_str())), "ENOENT");
  EXPECT_EQ(E(rename(p("file").c_str(), p("nodir/x").c_str())), "ENOENT");
  EXPECT_EQ(E(rename(p("file").c_str(), p("file2/x").c_str())), "ENOTDIR");
  EXPECT_EQ(E(rename(p("file2/x").c_str(), p("y").c_str())), "ENOTDIR");
  EXPECT_EQ(E(rename(p("file").c_str(), p("dir").c_str())), "EISDIR");
  EXPECT_EQ(E(rename(p("dir").c_str(), p("file").c_str())), "ENOTDIR");
  std::string e = E(rename(p("dir").c_str(), p("full").c_str()));
  EXPECT_TRUE(e == "ENOTEMPTY" || e == "EEXIST") << e;
  EXPECT_EQ(E(rename(p("dir").c_str(), p("dir/sub/x").c_str())), "EINVAL");
  EXPECT_EQ(E(rename(p("dir").c_str(), p("dir/x").c_str())), "EINVAL");
  EXPECT_EQ(E(rename(p("file").c_str(), p(std::string(256, 'n')).c_str())), "ENAMETOOLONG");
  EXPECT_EQ(E(rename(p("file").c_str(), p("file/").c_str())), "ENOTDIR");

  // Renaming onto itself, or onto another link of the same inode: no-op.
  EXPECT_EQ(E(rename(p("file").c_str(), p("file").c_str())), "OK");
  ASSERT_EQ(link(p("file").c_str(), p("file_link").c_str()), 0);
  EXPECT_EQ(E(rename(p("file").c_str(), p("file_link").c_str())), "OK");
  EXPECT_EQ(lst(p("file")).st_nlink, 2u);
  EXPECT_EQ(lst(p("file_link")).st_nlink, 2u);

  // Rename keeps the inode; over an existing file it replaces it and the old
  // inode stays readable through an open descriptor.
  const ino_t ino = lst(p("file2")).st_ino;
  ASSERT_TRUE(make_file(p("target"), "old target"));
  int fd = open(p("target").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(rename(p("file2").c_str(), p("target").c_str()), 0);
  EXPECT_EQ(lst(p("target")).st_ino, ino);
  EXPECT_EQ(E(access(p("file2").c_str(), F_OK)), "ENOENT");
  struct stat fst;
  ASSERT_EQ(fstat(fd, &fst), 0);
  EXPECT_EQ(fst.st_nlink, 0u);
  char buf[32] = {};
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 10);
  EXPECT_EQ(std::string(buf, 10), "old target");
  close(fd);
  // A directory over an empty directory, across parents.
  const ino_t dino = lst(p("dir/sub")).st_ino;
  ASSERT_EQ(rename(p("dir/sub").c_str(), p("empty").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(lst(p("empty")).st_ino, dino);
  EXPECT_EQ(lst(p("empty/..")).st_ino, lst(p("")).st_ino);
  // A symlink is renamed, not followed.
  ASSERT_EQ(symlink("dir", p("sl").c_str()), 0);
  ASSERT_EQ(rename(p("sl").c_str(), p("sl2").c_str()), 0);
  EXPECT_TRUE(S_ISLNK(lst(p("sl2")).st_mode));
  EXPECT_TRUE(S_ISDIR(lst(p("dir")).st_mode));
  unmount_and_check();
}

TEST_F(PosixErrno, LinkSymlinkLoopsAndOpenFlags) {
  ASSERT_TRUE(make_file(p("file"), "0123456789"));
  ASSERT_EQ(mkdir(p("dir").c_str(), 0755), 0);
  // link
  EXPECT_EQ(E(link(p("dir").c_str(), p("dirlink").c_str())), "EPERM");
  EXPECT_EQ(E(link(p("nope").c_str(), p("x").c_str())), "ENOENT");
  EXPECT_EQ(E(link(p("file").c_str(), p("dir").c_str())), "EEXIST");
  EXPECT_EQ(E(link(p("file").c_str(), p("file/x").c_str())), "ENOTDIR");
  EXPECT_EQ(E(link(p("file").c_str(), p(std::string(256, 'l')).c_str())), "ENAMETOOLONG");
  ASSERT_EQ(E(link(p("file").c_str(), p("dir/hard").c_str())), "OK");
  EXPECT_EQ(lst(p("file")).st_ino, lst(p("dir/hard")).st_ino);
  EXPECT_EQ(lst(p("file")).st_nlink, 2u);
  // A hard link to a symlink links the symlink itself.
  ASSERT_EQ(symlink("file", p("sl").c_str()), 0);
  ASSERT_EQ(linkat(AT_FDCWD, p("sl").c_str(), AT_FDCWD, p("sl_hard").c_str(), 0), 0)
      << std::strerror(errno);
  EXPECT_TRUE(S_ISLNK(lst(p("sl_hard")).st_mode));
  EXPECT_EQ(lst(p("sl")).st_nlink, 2u);
  EXPECT_EQ(lst(p("sl")).st_ino, lst(p("sl_hard")).st_ino);

  // Symlink loops.
  ASSERT_EQ(symlink("loop_b", p("loop_a").c_str()), 0);
  ASSERT_EQ(symlink("loop_a", p("loop_b").c_str()), 0);
  ASSERT_EQ(symlink("self", p("self").c_str()), 0);
  EXPECT_EQ(open_err(p("loop_a"), O_RDONLY), "ELOOP");
  EXPECT_EQ(open_err(p("self"), O_RDONLY), "ELOOP");
  EXPECT_EQ(open_err(p("loop_a"), O_CREAT | O_WRONLY), "ELOOP");
  struct stat st;
  EXPECT_EQ(E(stat(p("loop_a").c_str(), &st)), "ELOOP");
  EXPECT_EQ(E(stat(p("self/x").c_str(), &st)), "ELOOP");
  EXPECT_EQ(open_err(p("sl"), O_RDONLY | O_NOFOLLOW), "ELOOP");
  // A chain of 41 links is too deep; 40 is fine.
  for (int i = 0; i < 41; ++i) {
    std::string to = i == 0 ? "file" : "chain" + std::to_string(i - 1);
    ASSERT_EQ(symlink(to.c_str(), p("chain" + std::to_string(i)).c_str()), 0);
  }
  EXPECT_EQ(open_err(p("chain39"), O_RDONLY), "OK");
  EXPECT_EQ(open_err(p("chain40"), O_RDONLY), "ELOOP");

  // open flags.
  EXPECT_EQ(open_err(p("file"), O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  EXPECT_EQ(open_err(p("dir"), O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  ASSERT_EQ(symlink("created_through_link", p("dangling").c_str()), 0);
  EXPECT_EQ(open_err(p("dangling"), O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  EXPECT_EQ(open_err(p("dangling"), O_CREAT | O_WRONLY), "OK");  // creates the target
  EXPECT_TRUE(S_ISREG(lst(p("created_through_link")).st_mode));
  EXPECT_EQ(open_err(p("dir"), O_WRONLY), "EISDIR");
  EXPECT_EQ(open_err(p("dir"), O_RDWR), "EISDIR");
  EXPECT_EQ(open_err(p("dir"), O_CREAT | O_WRONLY), "EISDIR");
  EXPECT_EQ(open_err(p("dir"), O_RDONLY), "OK");
  EXPECT_EQ(open_err(p("file"), O_RDONLY | O_DIRECTORY), "ENOTDIR");
  EXPECT_EQ(open_err(p("file/"), O_RDONLY), "ENOTDIR");
  EXPECT_EQ(open_err(p("file/x"), O_RDONLY), "ENOTDIR");
  EXPECT_EQ(open_err(p("newfile/"), O_CREAT | O_WRONLY), "EISDIR");
  EXPECT_EQ(open_err(p("nope"), O_RDONLY), "ENOENT");
  EXPECT_EQ(open_err(p("nodir/x"), O_CREAT | O_WRONLY), "ENOENT");
  EXPECT_EQ(open_err(p(std::string(256, 'o')), O_CREAT | O_WRONLY), "ENAMETOOLONG");
  EXPECT_EQ(open_err(p(std::string(256, 'o')), O_RDONLY), "ENAMETOOLONG");

  // O_TRUNC truncates; opening O_RDONLY|O_CREAT of an existing file does not.
  ASSERT_EQ(open_err(p("file"), O_RDONLY | O_CREAT), "OK");
  EXPECT_EQ(lst(p("file")).st_size, 10);
  ASSERT_EQ(open_err(p("file"), O_WRONLY | O_TRUNC), "OK");
  EXPECT_EQ(lst(p("file")).st_size, 0);
  EXPECT_EQ(read_file(p("file")), "");

  // O_APPEND: two descriptors, two threads; every record lands whole at the end.
  const std::string app = p("append");
  ASSERT_TRUE(make_file(app, "HEAD"));
  constexpr int kRecords = 400;
  constexpr size_t kRecLen = 100;
  auto writer = [&](char tag) {
    int fd = open(app.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return;
    for (int i = 0; i < kRecords; ++i) {
      std::string rec(kRecLen, tag);
      snprintf(rec.data(), 8, "%c%05d", tag, i);
      rec[7] = tag;
      if (write(fd, rec.data(), rec.size()) != ssize_t(rec.size())) break;
    }
    close(fd);
  };
  std::thread t1(writer, 'A'), t2(writer, 'B');
  t1.join();
  t2.join();
  std::string all = read_file(app);
  ASSERT_EQ(all.size(), 4 + 2 * kRecords * kRecLen);
  EXPECT_EQ(all.substr(0, 4), "HEAD");
  std::map<char, int> next{{'A', 0}, {'B', 0}};
  for (size_t off = 4; off < all.size(); off += kRecLen) {
    const char tag = all[off];
    ASSERT_TRUE(tag == 'A' || tag == 'B') << "garbage at " << off;
    char expect[8];
    snprintf(expect, sizeof expect, "%c%05d", tag, next[tag]++);
    ASSERT_EQ(all.substr(off, 6), std::string(expect, 6)) << "at " << off;
    ASSERT_EQ(all.substr(off + 7, kRecLen - 7), std::string(kRecLen - 7, tag)) << "at " << off;
  }
  EXPECT_EQ(next['A'], kRecords);
  EXPECT_EQ(next['B'], kRecords);
  // O_APPEND ignores the offset of pwrite? (Linux: appends.)
  int fd = open(app.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "END", 3, 0), 3);
  close(fd);
  EXPECT_EQ(lst(app).st_size, off_t(all.size() + 3));
  EXPECT_EQ(read_file(app).substr(0, 4), "HEAD");
  unmount_and_check();
}

TEST_F(PosixErrno, TruncateGrowsWithZerosAndRejectsBadTargets) {
  const std::string f = p("f");
  const std::string data = pattern(7, 0, 20'000);
  ASSERT_TRUE(write_file(f, data));
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  // Grow: zeros after the old end.
  ASSERT_EQ(ftruncate(fd, 50'000), 0);
  EXPECT_EQ(read_file(f), data + std::string(30'000, '\0'));
  // Shrink inside a page, then grow: the cut part reads as zeros.
  ASSERT_EQ(ftruncate(fd, 5'001), 0);
  ASSERT_EQ(ftruncate(fd, 12'000), 0);
  EXPECT_EQ(read_file(f), data.substr(0, 5'001) + std::string(12'000 - 5'001, '\0'));
  // Shrink, write past the end: the gap reads as zeros.
  ASSERT_EQ(ftruncate(fd, 100), 0);
  ASSERT_EQ(pwrite(fd, "Z", 1, 9'000), 1);
  EXPECT_EQ(read_file(f), data.substr(0, 100) + std::string(8'900, '\0') + "Z");
  // A huge sparse size.
  ASSERT_EQ(ftruncate(fd, off_t(64) * kGiB), 0) << std::strerror(errno);
  EXPECT_EQ(lst(f).st_size, off_t(64) * kGiB);
  char tail[4] = {1, 1, 1, 1};
  EXPECT_EQ(pread(fd, tail, 4, off_t(64) * kGiB - 4), 4);
  EXPECT_EQ(std::string(tail, 4), std::string(4, '\0'));
  ASSERT_EQ(ftruncate(fd, 0), 0);
  EXPECT_EQ(lst(f).st_size, 0);
  EXPECT_EQ(E(ftruncate(fd, -1)), "EINVAL");
  close(fd);

  EXPECT_EQ(E(truncate(f.c_str(), -1)), "EINVAL");
  ASSERT_EQ(mkdir(p("dir").c_str(), 0755), 0);
  EXPECT_EQ(E(truncate(p("dir").c_str(), 0)), "EISDIR");
  EXPECT_EQ(E(truncate(p("nope").c_str(), 0)), "ENOENT");
  EXPECT_EQ(E(truncate(p("f/x").c_str(), 0)), "ENOTDIR");
  fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(E(ftruncate(fd, 10)), "EINVAL");
  close(fd);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(lst(f).st_size, 0);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
