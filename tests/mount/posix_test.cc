// POSIX conformance through a real mount, in the spirit of pjdfstest: the
// permission model (the mount uses default_permissions) checked as
// unprivileged users, sticky and setgid directories, ownership of new files,
// clearing of setuid/setgid, timestamps, the errno of each failing namespace
// call, open flags, truncate, special files, readdir, link counts, statfs and
// extended attributes.
//
// Unprivileged checks run in a forked child that enters the mountpoint as
// root (the fixture's private directory is 0700), drops to the given ids and
// reports failed checks back through a pipe. They need root and a mount with
// allow_other.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/mount/as_user.h"
#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

// ---- small helpers -------------------------------------------------------

// The shared helpers of as_user.h, under this file's short names.
std::string err_name(int e) {
  return errno_name(e);
}
// "OK" when a call returning -1 on failure succeeded, else the errno's name.
std::string E(long r) {
  return call_result(r);
}
// Like E() for open(): closes the descriptor when the open succeeded.
std::string open_err(const std::string& path, int flags, mode_t mode = 0644) {
  return open_result(path, flags, mode);
}

std::string ts(const timespec& t) {
  char buf[64];
  snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}
bool ts_eq(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
bool ts_gt(const timespec& a, const timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

struct stat lst(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

bool make_file(const std::string& path, std::string_view bytes = "data", mode_t mode = 0644) {
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, mode);
  if (fd < 0) return false;
  bool ok = write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size());
  ok = close(fd) == 0 && ok;
  return ok && chmod(path.c_str(), mode) == 0;
}

// Failed checks inside a forked child, reported as text.
#define CK(c, expr, expected) (c).eq((expr), (expected), #expr, __LINE__)
#define CK_TRUE(c, cond, msg) (c).truth((cond), std::string(#cond) + " " + (msg), __LINE__)
// Runs a child (an `as(...)` call) and expects every check in it to pass.
#define EXPECT_CHILD_OK(call)                            \
  do {                                                   \
    const std::string child_report_ = (call);            \
    EXPECT_TRUE(child_report_.empty()) << child_report_; \
  } while (0)

std::string mode_str(mode_t m) {
  char buf[16];
  snprintf(buf, sizeof buf, "0%o", unsigned(m & 07777));
  return buf;
}

// The mode as statx(STATX_MODE) reports it: the kernel answers from its
// attribute cache unless that mode was invalidated, as stat(1) -c %a does.
std::string statx_mode(const std::string& path) {
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MODE, &stx) != 0) {
    return err_name(errno);
  }
  return mode_str(stx.stx_mode);
}

void tick() {
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
}

// ---- fixtures ------------------------------------------------------------

class PosixBase : public MountTest {
 protected:
  void SetUp() override {
    old_umask_ = umask(0);
    ASSERT_TRUE(fs_.start(128 * kMiB, options()));
  }
  void TearDown() override { umask(old_umask_); }
  virtual std::string options() const { return ""; }
  std::string p(std::string_view rel) const { return fs_.path(rel); }

  mode_t old_umask_ = 022;
};

// Checks as unprivileged users: needs root and allow_other.
class PosixPerm : public PosixBase {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root (setuid to other users)";
    PosixBase::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(chmod(fs_.mountpoint().c_str(), 0755), 0) << std::strerror(errno);
  }
  std::string options() const override { return "allow_other"; }
  std::string as(uid_t uid, gid_t gid, const std::function<void(Checks&)>& body,
                 const std::vector<gid_t>& groups = {}) {
    return run_as(fs_.mountpoint(), uid, gid, groups, body);
  }
};

class PosixTimes : public PosixBase {};
class PosixErrno : public PosixBase {};
class PosixObjects : public PosixBase {};

// ---- permissions ---------------------------------------------------------

TEST_F(PosixPerm, UnprivilegedUserIsHeldToModeBits) {
  ASSERT_EQ(mkdir(p("d755").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("d755/x")));
  ASSERT_EQ(mkdir(p("d755/sub").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("secret"), "secret", 0600));
  ASSERT_TRUE(make_file(p("rootfile"), "root", 0644));
  ASSERT_EQ(setxattr(p("rootfile").c_str(), "user.u", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(setxattr(p("rootfile").c_str(), "trusted.t", "1", 1, 0), 0) << std::strerror(errno);
  // Readable but not searchable by others; searchable by nobody (owner 0600).
  ASSERT_EQ(mkdir(p("noexec").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("noexec/f")));
  ASSERT_EQ(chmod(p("noexec").c_str(), 0644), 0);
  ASSERT_EQ(mkdir(p("noexec2").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("noexec2/f")));
  ASSERT_EQ(chown(p("noexec2").c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(p("noexec2").c_str(), 0600), 0);
  ASSERT_EQ(mkdir(p("userdir").c_str(), 0755), 0);
  ASSERT_EQ(chown(p("userdir").c_str(), 65534, 65534), 0);
  ASSERT_TRUE(make_file(p("userdir/grpfile")));
  ASSERT_EQ(chown(p("userdir/grpfile").c_str(), 65534, 0), 0);

  EXPECT_CHILD_OK(as(65534, 65534, [](Checks& c) {
    // No write permission on a root 0755 directory.
    CK(c, open_err("d755/new", O_CREAT | O_WRONLY), "EACCES");
    CK(c, E(mkdir("d755/newdir", 0755)), "EACCES");
    CK(c, E(symlink("x", "d755/sl")), "EACCES");
    CK(c, E(mkfifo("d755/fifo", 0644)), "EACCES");
    CK(c, E(unlink("d755/x")), "EACCES");
    CK(c, E(rmdir("d755/sub")), "EACCES");
    CK(c, E(rename("d755/x", "d755/y")), "EACCES");
    // Files of root.
    CK(c, open_err("secret", O_RDONLY), "EACCES");
    CK(c, open_err("rootfile", O_WRONLY), "EACCES");
    CK(c, open_err("rootfile", O_RDONLY), "OK");
    CK(c, E(access("rootfile", W_OK)), "EACCES");
    CK(c, E(access("rootfile", R_OK)), "OK");
    CK(c, E(truncate("rootfile", 0)), "EACCES");
    CK(c, E(chmod("rootfile", 0666)), "EPERM");
    CK(c, E(chown("rootfile", 65534, 65534)), "EPERM");
    CK(c, E(chown("rootfile", uid_t(-1), 65534)), "EPERM");
    const timespec explicit_times[2] = {{1000, 0}, {2000, 0}};
    CK(c, E(utimensat(AT_FDCWD, "rootfile", explicit_times, 0)), "EPERM");
    CK(c, E(utimensat(AT_FDCWD, "rootfile", nullptr, 0)), "EACCES");
    CK(c, E(setxattr("rootfile", "user.v", "1", 1, 0)), "EACCES");
    CK(c, E(setxattr("rootfile", "trusted.v", "1", 1, 0)), "EPERM");
    char buf[256];
    CK(c, E(getxattr("rootfile", "user.u", buf, sizeof buf)), "OK");
    // ext4 hides trusted.* from callers without CAP_SYS_ADMIN.
    ssize_t n = listxattr("rootfile", buf, sizeof buf);
    std::string names = n > 0 ? std::string(buf, size_t(n)) : "";
    CK_TRUE(c, names.find("user.u") != std::string::npos, "listxattr shows user.u");
    CK_TRUE(c, names.find("trusted.t") == std::string::npos,
            "listxattr as non-root hides trusted.t (ext4 does)");
    // Search permission.
    struct stat st;
    CK(c, E(stat("noexec/f", &st)), "EACCES");
    CK(c, E(stat("noexec2/f", &st)), "EACCES");
    CK(c, open_err("noexec/f", O_RDONLY), "EACCES");
    CK(c, E(chdir("noexec")), "EACCES");
    CK(c, E(chdir("noexec2")), "EACCES");
    // Read permission without search: the names can be listed.
    CK(c, open_err("noexec", O_RDONLY | O_DIRECTORY), "OK");
    CK(c, open_err("noexec2", O_RDONLY | O_DIRECTORY), "OK");
    // Own files.
    CK(c, open_err("userdir/own", O_CREAT | O_EXCL | O_WRONLY, 0644), "OK");
    CK(c, E(stat("userdir/own", &st)), "OK");
    CK(c, std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid), "65534:65534");
    CK(c, E(chmod("userdir/own", 0600)), "OK");
    stat("userdir/own", &st);
    CK(c, mode_str(st.st_mode), "0600");
    CK(c, E(chown("userdir/own", 0, uid_t(-1))), "EPERM");
    CK(c, E(chown("userdir/own", uid_t(-1), 0)), "EPERM");
    CK(c, E(chown("userdir/own", 65534, 65534)), "OK");
    CK(c, E(utimensat(AT_FDCWD, "userdir/own", explicit_times, 0)), "OK");
    stat("userdir/own", &st);
    CK(c, std::to_string(st.st_mtim.tv_sec), "2000");
    CK(c, E(chmod("userdir/own", 0400)), "OK");
    CK(c, open_err("userdir/own", O_WRONLY), "EACCES");
    CK(c, open_err("userdir/own", O_RDONLY), "OK");
    // chmod g+s on an own file whose group is not ours: S_ISGID silently dropped.
    CK(c, E(chmod("userdir/grpfile", 02755)), "OK");
    stat("userdir/grpfile", &st);
    CK(c, mode_str(st.st_mode), "0755");
    // Unlink in own directory.
    CK(c, E(unlink("userdir/own")), "OK");
  }));

  struct stat st = lst(p("rootfile"));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, 0u);
  std::vector<std::string> names = list_dir(p("d755"));
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"sub", "x"}));
  unmount_and_check();
}

TEST_F(PosixPerm, StickyDirectoryProtectsOthersEntries) {
  ASSERT_EQ(mkdir(p("sticky").c_str(), 0777), 0);
  ASSERT_EQ(chmod(p("sticky").c_str(), 01777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("sticky/a", O_CREAT | O_WRONLY, 0644), "OK");
    CK(c, E(mkdir("sticky/adir", 0755)), "OK");
  }));
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    CK(c, open_err("sticky/b", O_CREAT | O_WRONLY, 0666), "OK");
    CK(c, open_err("sticky/b3", O_CREAT | O_WRONLY, 0666), "OK");
    CK(c, E(mkdir("sticky/bdir", 0777)), "OK");
  }));
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(unlink("sticky/b")), "EPERM");
    CK(c, E(rename("sticky/b", "sticky/b2")), "EPERM");
    CK(c, E(rename("sticky/a", "sticky/b")), "EPERM");
    CK(c, E(rmdir("sticky/bdir")), "EPERM");
    CK(c, E(rename("sticky/bdir", "sticky/bdir2")), "EPERM");
    CK(c, E(rename("sticky/a", "sticky/a2")), "OK");
    CK(c, E(unlink("sticky/a2")), "OK");
    CK(c, E(rmdir("sticky/adir")), "OK");
  }));
  EXPECT_EQ(lst(p("sticky/b")).st_uid, 1001u);
  EXPECT_EQ(lst(p("sticky/bdir")).st_uid, 1001u);
  // The directory's owner may remove anything in it.
  ASSERT_EQ(chown(p("sticky").c_str(), 1002, 1002), 0);
  EXPECT_EQ(lst(p("sticky")).st_mode & 07777, 01777u);
  EXPECT_CHILD_OK(as(1002, 1002, [](Checks& c) { CK(c, E(unlink("sticky/b")), "OK"); }));
  // Root may remove anything.
  EXPECT_EQ(unlink(p("sticky/b3").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(rmdir(p("sticky/bdir").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(list_dir(p("sticky")), std::vector<std::string>{});
  unmount_and_check();
}

TEST_F(PosixPerm, SetgidDirectoryGivesItsGroup) {
  ASSERT_EQ(mkdir(p("sg").c_str(), 0777), 0);
  ASSERT_EQ(chown(p("sg").c_str(), 1000, 2000), 0);
  ASSERT_EQ(chmod(p("sg").c_str(), 02777), 0);
  ASSERT_EQ(lst(p("sg")).st_mode & 07777, 02777u);

  ASSERT_TRUE(make_file(p("sg/rootfile")));
  struct stat st = lst(p("sg/rootfile"));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 2000u);
  ASSERT_EQ(mkdir(p("sg/sub").c_str(), 0755), 0);
  st = lst(p("sg/sub"));
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  ASSERT_EQ(mkdir(p("sg/sub/deeper").c_str(), 0700), 0);
  st = lst(p("sg/sub/deeper"));
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 02700u);
  ASSERT_EQ(symlink("rootfile", p("sg/link").c_str()), 0);
  EXPECT_EQ(lst(p("sg/link")).st_gid, 2000u);
  ASSERT_EQ(mkfifo(p("sg/fifo").c_str(), 0644), 0);
  EXPECT_EQ(lst(p("sg/fifo")).st_gid, 2000u);

  // Not a member of 2000.
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    struct stat s;
    CK(c, open_err("sg/u1", O_CREAT | O_WRONLY, 0644), "OK");
    stat("sg/u1", &s);
    CK(c, std::to_string(s.st_uid) + ":" + std::to_string(s.st_gid), "1001:2000");
    // S_ISGID requested by a non-member of the group is stripped (VFS).
    CK(c, open_err("sg/u2", O_CREAT | O_WRONLY, 02755), "OK");
    stat("sg/u2", &s);
    CK(c, mode_str(s.st_mode), "0755");
    CK(c, E(mkdir("sg/udir", 0755)), "OK");
    stat("sg/udir", &s);
    CK(c, mode_str(s.st_mode) + " gid " + std::to_string(s.st_gid), "02755 gid 2000");
  }));
  // A member keeps S_ISGID it asks for.
  EXPECT_CHILD_OK(as(1000, 1000,
                     [](Checks& c) {
                       struct stat s;
                       CK(c, open_err("sg/m", O_CREAT | O_WRONLY, 02755), "OK");
                       stat("sg/m", &s);
                       CK(c, mode_str(s.st_mode) + " gid " + std::to_string(s.st_gid),
                          "02755 gid 2000");
                     },
                     {2000}));

  ASSERT_TRUE(fs_.remount());
  st = lst(p("sg/udir"));
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(lst(p("sg/u1")).st_gid, 2000u);
  unmount_and_check();
}

TEST_F(PosixPerm, NewObjectsBelongToTheCaller) {
  ASSERT_EQ(mkdir(p("open").c_str(), 0777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("open/f", O_CREAT | O_EXCL | O_WRONLY, 0640), "OK");
    CK(c, E(mkdir("open/d", 0750)), "OK");
    CK(c, E(symlink("f", "open/l")), "OK");
    CK(c, E(mkfifo("open/p", 0600)), "OK");
    CK(c, E(mknod("open/r", S_IFREG | 0600, 0)), "OK");
    CK(c, E(link("open/f", "open/f2")), "OK");
    CK(c, E(mknod("open/chr", S_IFCHR | 0600, makedev(1, 3))), "EPERM");
    // The umask applies.
    umask(027);
    CK(c, open_err("open/masked", O_CREAT | O_EXCL | O_WRONLY, 0666), "OK");
    CK(c, E(mkdir("open/maskeddir", 0777)), "OK");
    struct stat s;
    stat("open/masked", &s);
    CK(c, mode_str(s.st_mode), "0640");
    stat("open/maskeddir", &s);
    CK(c, mode_str(s.st_mode), "0750");
    umask(0);
    // Moving a directory to another parent needs write permission on it (its "..").
    CK(c, E(mkdir("open/ro", 0555)), "OK");
    CK(c, E(rename("open/ro", "open/d/ro")), "EACCES");
    CK(c, E(rename("open/ro", "open/ro2")), "OK");  // same parent: allowed
    // lchown/lchmod on one's own symlink.
    CK(c, E(lchown("open/l", 1000, 1000)), "OK");
  }));
  // Root changes the owner of the symlink itself, not of its target.
  ASSERT_EQ(lchown(p("open/l").c_str(), 123, 456), 0) << std::strerror(errno);
  EXPECT_EQ(lst(p("open/l")).st_uid, 123u);
  EXPECT_EQ(lst(p("open/l")).st_gid, 456u);
  EXPECT_EQ(lst(p("open/f")).st_uid, 1000u);
  ASSERT_EQ(lchown(p("open/l").c_str(), 1000, 1000), 0);
  for (const char* name : {"open/f", "open/d", "open/l", "open/p", "open/r"}) {
    struct stat st = lst(p(name));
    EXPECT_EQ(st.st_uid, 1000u) << name;
    EXPECT_EQ(st.st_gid, 1000u) << name;
  }
  EXPECT_EQ(lst(p("open/f")).st_mode & 07777, 0640u);
  EXPECT_EQ(lst(p("open/d")).st_mode & 07777, 0750u);
  EXPECT_EQ(lst(p("open/f")).st_nlink, 2u);
  ASSERT_TRUE(fs_.remount());
  for (const char* name : {"open/f", "open/d", "open/l", "open/p", "open/r"}) {
    struct stat st = lst(p(name));
    EXPECT_EQ(st.st_uid, 1000u) << name << " after remount";
    EXPECT_EQ(st.st_gid, 1000u) << name << " after remount";
  }
  unmount_and_check();
}

TEST_F(PosixPerm, SetidBitsClearedOnWriteTruncateAndChown) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), "data"));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  ASSERT_EQ(lst(p("w/f")).st_mode & 07777, 06777u);

  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    int fd = open("w/f", O_WRONLY);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "x", 1)), "OK");
    close(fd);
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");  // write by a non-root owner
  }));                                   // write by the owner

  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(truncate("w/f", 1)), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // truncate by the owner

  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("w/f", O_WRONLY | O_TRUNC), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // open(O_TRUNC) by the owner

  // Another user with write permission (not the owner) writing.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    int fd = open("w/f", O_WRONLY | O_APPEND);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "y", 1)), "OK");
    close(fd);
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // write by another user

  // Root (CAP_FSETID) writing keeps the bits.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  {
    int fd = open(p("w/f").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "z", 1), 1);
    close(fd);
    EXPECT_EQ(lst(p("w/f")).st_mode & 07777, 06777u) << "root's write must keep the bits";
  }

  // chown by root clears S_ISUID, and S_ISGID when group-executable.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06755), 0);
  ASSERT_EQ(chown(p("w/f").c_str(), 1001, uid_t(-1)), 0);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "0755") << "after root chown of a 06755 file";
  ASSERT_EQ(chmod(p("w/f").c_str(), 06745), 0);
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "02745") << "after root chown of a 06745 file";
  // chown by the owner to its own group clears both.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06755), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(chown("w/f", uid_t(-1), 1000)), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0755");
  }));  // chown by the owner
  // Directories keep S_ISGID on chown.
  ASSERT_EQ(mkdir(p("w/sgdir").c_str(), 0775), 0);
  ASSERT_EQ(chmod(p("w/sgdir").c_str(), 02775), 0);
  ASSERT_EQ(chown(p("w/sgdir").c_str(), 1000, 1000), 0);
  EXPECT_EQ(mode_str(lst(p("w/sgdir")).st_mode), "02775");
  unmount_and_check();
}

// A write that clears setuid/setgid changes the mode the kernel has cached.
TEST_F(PosixPerm, CachedModeLosesTheSetidBitsAWriteClears) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), "data"));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, statx_mode("w/f"), "06777");
    int fd = open("w/f", O_WRONLY);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "x", 1)), "OK");
    close(fd);
    CK(c, statx_mode("w/f"), "0777");
  }));
  EXPECT_EQ(statx_mode(p("w/f")), "0777");
  unmount_and_check();
}

// fallocate, punch-hole and zero-range clear setuid, and setgid when the file
// is group-executable or the caller is not in its group (Linux's rule since
// 6.2: setattr_should_drop_sgid), unless the caller is root.
TEST_F(PosixPerm, FallocateClearsSetgidForCallersOutsideTheGroup) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), std::string(8192, 'd')));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  struct Case {
    mode_t mode;
    int falloc_mode;
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
    const char* expected;
  };
  const Case cases[] = {
      {02666, 0, 1001, 1001, {}, "0666"},  // not in the group
      {06666, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1001, 1001, {}, "0666"},
      {02666, FALLOC_FL_ZERO_RANGE, 1001, 1001, {}, "0666"},
      {02666, 0, 1001, 1001, {1000}, "02666"},  // a member keeps it
      {02676, 0, 1001, 1001, {1000}, "0676"},   // unless group-executable
      {06666, 0, 1000, 1000, {}, "02666"},      // the owner, in the group
  };
  for (const Case& k : cases) {
    ASSERT_EQ(chmod(p("w/f").c_str(), k.mode), 0);
    std::string report = as(
        k.uid, k.gid,
        [&k](Checks& c) {
          CK(c, statx_mode("w/f"), mode_str(k.mode));
          int fd = open("w/f", O_RDWR);
          CK_TRUE(c, fd >= 0, "open w/f");
          CK(c, E(fallocate(fd, k.falloc_mode, 0, 4096)), "OK");
          close(fd);
          CK(c, statx_mode("w/f"), k.expected);
          struct stat st {};
          stat("w/f", &st);
          CK(c, mode_str(st.st_mode), k.expected);
        },
        k.groups);
    EXPECT_TRUE(report.empty()) << "mode " << mode_str(k.mode) << ", fallocate mode "
                                << k.falloc_mode << ", uid " << k.uid << ":\n"
                                << report;
  }
  // Root keeps both.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  int fd = open(p("w/f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fallocate(fd, 0, 0, 4096), 0) << std::strerror(errno);
  close(fd);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "06777");
  unmount_and_check();
}

// ---- timestamps ----------------------------------------------------------

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

// ---- errno of namespace calls --------------------------------------------

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

// ---- special files, readdir, link counts, statfs, xattrs -----------------

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
