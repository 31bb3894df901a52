// Helpers and fixtures of the POSIX conformance tests through a real mount
// (posix_*_test.cc), in the spirit of pjdfstest.
//
// Unprivileged checks run in a forked child that enters the mountpoint as
// root (the fixture's private directory is 0700), drops to the given ids and
// reports failed checks back through a pipe. They need root and a mount with
// allow_other.
#pragma once

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

// ---- small helpers -------------------------------------------------------

// The shared helpers of as_user.h, under this file's short names.
inline std::string err_name(int e) {
  return errno_name(e);
}
// "OK" when a call returning -1 on failure succeeded, else the errno's name.
inline std::string E(long r) {
  return call_result(r);
}
// Like E() for open(): closes the descriptor when the open succeeded.
inline std::string open_err(const std::string& path, int flags, mode_t mode = 0644) {
  return open_result(path, flags, mode);
}

inline std::string ts(const timespec& t) {
  char buf[64];
  snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}
inline bool ts_eq(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
inline bool ts_gt(const timespec& a, const timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

inline struct stat lst(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

inline bool make_file(const std::string& path, std::string_view bytes = "data",
                      mode_t mode = 0644) {
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

inline std::string mode_str(mode_t m) {
  char buf[16];
  snprintf(buf, sizeof buf, "0%o", unsigned(m & 07777));
  return buf;
}

// The mode as statx(STATX_MODE) reports it: the kernel answers from its
// attribute cache unless that mode was invalidated, as stat(1) -c %a does.
inline std::string statx_mode(const std::string& path) {
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MODE, &stx) != 0) {
    return err_name(errno);
  }
  return mode_str(stx.stx_mode);
}

inline void tick() {
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

}  // namespace pagefs::test
