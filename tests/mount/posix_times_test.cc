// POSIX conformance through a real mount: which calls update which
// timestamps, and utimensat.
#include "tests/mount/posix_helpers.h"

namespace pagefs::test {
namespace {

#define EXPECT_ADVANCED(after, before, what) \
  EXPECT_TRUE(ts_gt(after, before)) << what << ": " << ts(before) << " -> " << ts(after)
#define EXPECT_SAME(after, before, what) \
  EXPECT_TRUE(ts_eq(after, before)) << what << ": " << ts(before) << " -> " << ts(after)

TEST_F(PosixTimes, CallsUpdateTheRightTimestamps) {
  ASSERT_EQ(mkdir(p("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(p("e").c_str(), 0755), 0);
  struct stat d0 = lst(p("d"));
  tick();

  // creat: parent mtime/ctime; new file's three times equal and recent.
  int fd = open(p("d/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(close(fd), 0);
  struct stat d1 = lst(p("d"));
  struct stat f1 = lst(p("d/f"));
  EXPECT_ADVANCED(d1.st_mtim, d0.st_mtim, "creat: parent mtime");
  EXPECT_ADVANCED(d1.st_ctim, d0.st_ctim, "creat: parent ctime");
  EXPECT_SAME(f1.st_mtim, f1.st_ctim, "creat: new file mtime vs ctime");
  EXPECT_SAME(f1.st_atim, f1.st_ctim, "creat: new file atime vs ctime");
  EXPECT_FALSE(ts_gt(d0.st_mtim, f1.st_mtim)) << "new file older than its parent's old mtime";
  tick();

  // mkdir / symlink / mkfifo: parent mtime/ctime.
  ASSERT_EQ(mkdir(p("d/sub").c_str(), 0755), 0);
  struct stat d2 = lst(p("d"));
  EXPECT_ADVANCED(d2.st_mtim, d1.st_mtim, "mkdir: parent mtime");
  EXPECT_ADVANCED(d2.st_ctim, d1.st_ctim, "mkdir: parent ctime");
  tick();
  ASSERT_EQ(symlink("f", p("d/sl").c_str()), 0);
  struct stat d3 = lst(p("d"));
  EXPECT_ADVANCED(d3.st_mtim, d2.st_mtim, "symlink: parent mtime");
  tick();
  ASSERT_EQ(mkfifo(p("d/fifo").c_str(), 0644), 0);
  struct stat d4 = lst(p("d"));
  EXPECT_ADVANCED(d4.st_mtim, d3.st_mtim, "mkfifo: parent mtime");
  tick();

  // write: mtime/ctime, not atime.
  fd = open(p("d/f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  ASSERT_EQ(close(fd), 0);
  struct stat f2 = lst(p("d/f"));
  EXPECT_ADVANCED(f2.st_mtim, f1.st_mtim, "write: mtime");
  EXPECT_ADVANCED(f2.st_ctim, f1.st_ctim, "write: ctime");
  EXPECT_SAME(f2.st_atim, f1.st_atim, "write: atime");
  EXPECT_SAME(lst(p("d")).st_mtim, d4.st_mtim, "write: parent mtime");
  tick();

  // read: atime (ext4 with relatime updates it when atime <= mtime). Report only.
  {
    char b[8];
    fd = open(p("d/f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(read(fd, b, sizeof b), 5);
    ASSERT_EQ(close(fd), 0);
    struct stat fr = lst(p("d/f"));
    std::printf("[ info ] read after write: atime %s (relatime on ext4 would update it)\n",
                ts_gt(fr.st_atim, f2.st_atim) ? "updated" : "not updated");
    EXPECT_SAME(fr.st_mtim, f2.st_mtim, "read: mtime");
    EXPECT_SAME(fr.st_ctim, f2.st_ctim, "read: ctime");
    f2 = fr;
  }
  tick();

  // chmod: ctime only.
  ASSERT_EQ(chmod(p("d/f").c_str(), 0600), 0);
  struct stat f3 = lst(p("d/f"));
  EXPECT_ADVANCED(f3.st_ctim, f2.st_ctim, "chmod: ctime");
  EXPECT_SAME(f3.st_mtim, f2.st_mtim, "chmod: mtime");
  EXPECT_SAME(f3.st_atim, f2.st_atim, "chmod: atime");
  tick();

  // chown: ctime only.
  ASSERT_EQ(chown(p("d/f").c_str(), 1, 1), 0);
  struct stat f4 = lst(p("d/f"));
  EXPECT_ADVANCED(f4.st_ctim, f3.st_ctim, "chown: ctime");
  EXPECT_SAME(f4.st_mtim, f3.st_mtim, "chown: mtime");
  tick();

  // link: target ctime, directory mtime/ctime.
  struct stat e0 = lst(p("e"));
  ASSERT_EQ(link(p("d/f").c_str(), p("e/hard").c_str()), 0);
  struct stat f5 = lst(p("d/f"));
  struct stat e1 = lst(p("e"));
  EXPECT_ADVANCED(f5.st_ctim, f4.st_ctim, "link: target ctime");
  EXPECT_SAME(f5.st_mtim, f4.st_mtim, "link: target mtime");
  EXPECT_ADVANCED(e1.st_mtim, e0.st_mtim, "link: dir mtime");
  EXPECT_ADVANCED(e1.st_ctim, e0.st_ctim, "link: dir ctime");
  tick();

  // unlink of one link: target ctime, directory mtime/ctime.
  ASSERT_EQ(unlink(p("e/hard").c_str()), 0);
  struct stat f6 = lst(p("d/f"));
  struct stat e2 = lst(p("e"));
  EXPECT_ADVANCED(f6.st_ctim, f5.st_ctim, "unlink: remaining link's ctime");
  EXPECT_ADVANCED(e2.st_mtim, e1.st_mtim, "unlink: dir mtime");
  EXPECT_ADVANCED(e2.st_ctim, e1.st_ctim, "unlink: dir ctime");
  tick();

  // rename across directories: moved file ctime (not mtime), both dirs.
  struct stat d5 = lst(p("d"));
  ASSERT_EQ(rename(p("d/f").c_str(), p("e/g").c_str()), 0);
  struct stat g1 = lst(p("e/g"));
  struct stat d6 = lst(p("d"));
  struct stat e3 = lst(p("e"));
  EXPECT_EQ(g1.st_ino, f6.st_ino);
  EXPECT_ADVANCED(g1.st_ctim, f6.st_ctim, "rename: moved file ctime");
  EXPECT_SAME(g1.st_mtim, f6.st_mtim, "rename: moved file mtime");
  EXPECT_ADVANCED(d6.st_mtim, d5.st_mtim, "rename: source dir mtime");
  EXPECT_ADVANCED(d6.st_ctim, d5.st_ctim, "rename: source dir ctime");
  EXPECT_ADVANCED(e3.st_mtim, e2.st_mtim, "rename: target dir mtime");
  EXPECT_ADVANCED(e3.st_ctim, e2.st_ctim, "rename: target dir ctime");
  tick();

  // rename within a directory: moved file ctime, dir mtime.
  ASSERT_EQ(rename(p("e/g").c_str(), p("e/g2").c_str()), 0);
  struct stat g2 = lst(p("e/g2"));
  struct stat e4 = lst(p("e"));
  EXPECT_ADVANCED(g2.st_ctim, g1.st_ctim, "rename in dir: moved file ctime");
  EXPECT_ADVANCED(e4.st_mtim, e3.st_mtim, "rename in dir: dir mtime");
  tick();

  // rename over a file that has another link: the replaced inode's ctime.
  ASSERT_TRUE(make_file(p("e/victim"), "v"));
  ASSERT_EQ(link(p("e/victim").c_str(), p("d/victim_link").c_str()), 0);
  struct stat v0 = lst(p("d/victim_link"));
  tick();
  ASSERT_EQ(rename(p("e/g2").c_str(), p("e/victim").c_str()), 0);
  struct stat v1 = lst(p("d/victim_link"));
  EXPECT_EQ(v1.st_nlink, 1u);
  EXPECT_ADVANCED(v1.st_ctim, v0.st_ctim, "rename over: replaced inode's ctime");
  tick();

  // rename of a directory across parents: its ctime.
  struct stat s0 = lst(p("d/sub"));
  ASSERT_EQ(rename(p("d/sub").c_str(), p("e/sub").c_str()), 0);
  struct stat s1 = lst(p("e/sub"));
  EXPECT_ADVANCED(s1.st_ctim, s0.st_ctim, "rename dir: moved dir ctime");
  tick();

  // rmdir: parent mtime/ctime.
  struct stat e5 = lst(p("e"));
  ASSERT_EQ(rmdir(p("e/sub").c_str()), 0);
  struct stat e6 = lst(p("e"));
  EXPECT_ADVANCED(e6.st_mtim, e5.st_mtim, "rmdir: parent mtime");
  EXPECT_ADVANCED(e6.st_ctim, e5.st_ctim, "rmdir: parent ctime");
  tick();

  // truncate (size change): mtime/ctime; ftruncate too.
  const std::string t = p("e/victim");
  struct stat t0 = lst(t);
  ASSERT_EQ(truncate(t.c_str(), 100), 0);
  struct stat t1 = lst(t);
  EXPECT_ADVANCED(t1.st_mtim, t0.st_mtim, "truncate: mtime");
  EXPECT_ADVANCED(t1.st_ctim, t0.st_ctim, "truncate: ctime");
  tick();
  fd = open(t.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 10), 0);
  ASSERT_EQ(close(fd), 0);
  struct stat t2 = lst(t);
  EXPECT_ADVANCED(t2.st_mtim, t1.st_mtim, "ftruncate: mtime");
  EXPECT_ADVANCED(t2.st_ctim, t1.st_ctim, "ftruncate: ctime");
  tick();
  // O_TRUNC of a non-empty file.
  fd = open(t.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(close(fd), 0);
  struct stat t3 = lst(t);
  EXPECT_EQ(t3.st_size, 0);
  EXPECT_ADVANCED(t3.st_mtim, t2.st_mtim, "O_TRUNC: mtime");
  EXPECT_ADVANCED(t3.st_ctim, t2.st_ctim, "O_TRUNC: ctime");
  tick();

  // setxattr / removexattr: ctime.
  ASSERT_EQ(setxattr(t.c_str(), "user.a", "1", 1, 0), 0);
  struct stat x1 = lst(t);
  EXPECT_ADVANCED(x1.st_ctim, t3.st_ctim, "setxattr: ctime");
  EXPECT_SAME(x1.st_mtim, t3.st_mtim, "setxattr: mtime");
  tick();
  ASSERT_EQ(removexattr(t.c_str(), "user.a"), 0);
  struct stat x2 = lst(t);
  EXPECT_ADVANCED(x2.st_ctim, x1.st_ctim, "removexattr: ctime");
  unmount_and_check();
}

TEST_F(PosixTimes, UtimensatOmitNowAndNanosecondsPersist) {
  const std::string f = p("f");
  ASSERT_TRUE(make_file(f));
  const timespec set[2] = {{1'234'567'890, 111'222'333}, {1'300'000'000, 999'999'999}};
  struct stat s0 = lst(f);
  tick();
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), set, 0), 0) << std::strerror(errno);
  struct stat s1 = lst(f);
  EXPECT_SAME(s1.st_atim, set[0], "explicit atime");
  EXPECT_SAME(s1.st_mtim, set[1], "explicit mtime");
  EXPECT_ADVANCED(s1.st_ctim, s0.st_ctim, "utimensat: ctime");
  tick();

  // Both UTIME_OMIT: nothing changes.
  const timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), omit, 0), 0);
  struct stat s2 = lst(f);
  EXPECT_SAME(s2.st_atim, s1.st_atim, "OMIT/OMIT atime");
  EXPECT_SAME(s2.st_mtim, s1.st_mtim, "OMIT/OMIT mtime");

  // UTIME_NOW for atime, OMIT mtime.
  timespec before;
  clock_gettime(CLOCK_REALTIME, &before);
  const timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), now_omit, 0), 0);
  struct stat s3 = lst(f);
  EXPECT_SAME(s3.st_mtim, set[1], "NOW/OMIT mtime");
  EXPECT_FALSE(ts_gt(before, s3.st_atim))
      << "UTIME_NOW atime " << ts(s3.st_atim) << " < " << ts(before);
  EXPECT_LE(s3.st_atim.tv_sec, time(nullptr) + 1);
  EXPECT_ADVANCED(s3.st_ctim, s1.st_ctim, "NOW/OMIT ctime");
  tick();

  // utimes(NULL) sets both to now.
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), nullptr, 0), 0);
  struct stat s4 = lst(f);
  EXPECT_ADVANCED(s4.st_mtim, s3.st_mtim, "NULL times: mtime");
  EXPECT_ADVANCED(s4.st_atim, s3.st_atim, "NULL times: atime");

  // Explicit times on a directory and on a symlink (AT_SYMLINK_NOFOLLOW).
  ASSERT_EQ(mkdir(p("dir").c_str(), 0755), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, p("dir").c_str(), set, 0), 0);
  ASSERT_EQ(symlink("f", p("sl").c_str()), 0);
  const timespec sl_set[2] = {{1'000'000'001, 1}, {1'000'000'002, 2}};
  ASSERT_EQ(utimensat(AT_FDCWD, p("sl").c_str(), sl_set, AT_SYMLINK_NOFOLLOW), 0)
      << std::strerror(errno);
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), set, 0), 0);
  // Times before 1970.
  ASSERT_TRUE(make_file(p("old")));
  const timespec old_set[2] = {{-100, 5}, {-1'000'000, 7}};
  EXPECT_EQ(utimensat(AT_FDCWD, p("old").c_str(), old_set, 0), 0) << std::strerror(errno);
  struct stat before_remount = lst(f);
  struct stat old_before = lst(p("old"));

  ASSERT_TRUE(fs_.remount());
  struct stat r = lst(f);
  EXPECT_SAME(r.st_atim, set[0], "atime after remount");
  EXPECT_SAME(r.st_mtim, set[1], "mtime after remount");
  EXPECT_SAME(r.st_ctim, before_remount.st_ctim, "ctime after remount");
  struct stat rd = lst(p("dir"));
  EXPECT_SAME(rd.st_mtim, set[1], "dir mtime after remount");
  struct stat rs = lst(p("sl"));
  EXPECT_SAME(rs.st_atim, sl_set[0], "symlink atime after remount");
  EXPECT_SAME(rs.st_mtim, sl_set[1], "symlink mtime after remount");
  struct stat ro = lst(p("old"));
  EXPECT_SAME(ro.st_mtim, old_before.st_mtim, "pre-1970 mtime after remount");
  EXPECT_SAME(ro.st_atim, old_before.st_atim, "pre-1970 atime after remount");
  EXPECT_SAME(ro.st_mtim, old_set[1], "pre-1970 mtime");
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
