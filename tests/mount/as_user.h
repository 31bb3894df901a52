// Running checks as another user, for the mount tests of permissions.
//
// run_as() forks a child that enters a directory as root (the fixture's
// private directory is 0700), drops to the given uid, gid and supplementary
// groups with umask 0, and runs `body`, which records failed checks in a
// Checks; the child writes them back through a pipe. It needs root, and the
// mount needs allow_other for the child to reach it.
//
// Thread-safety: call from the test's main thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace pagefs::test {

// "EACCES" for EACCES, "errno N" for one without a name.
std::string errno_name(int e);
// "OK" when a call returning -1 on failure succeeded, else the errno's name.
std::string call_result(long r);
// call_result() of open(): closes the descriptor when the open succeeded.
std::string open_result(const std::string& path, int flags, mode_t mode = 0644);

// Failed checks inside a forked child, reported as text.
struct Checks {
  std::string report;
  void eq(const std::string& actual, const std::string& expected, const char* expr, int line);
  void truth(bool ok, const std::string& what, int line);
};
#define CHECK_AS(c, expr, expected) (c).eq((expr), (expected), #expr, __LINE__)

// Returns "" when every check of `body` passed as uid/gid, else the failures
// (or why the child could not run).
std::string run_as(const std::string& cwd, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                   const std::function<void(Checks&)>& body);

}  // namespace pagefs::test
