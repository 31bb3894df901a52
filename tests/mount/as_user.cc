#include "tests/mount/as_user.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pagefs::test {

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : "errno " + std::to_string(e);
}

std::string call_result(long r) {
  return r == -1 ? errno_name(errno) : "OK";
}

std::string open_result(const std::string& path, int flags, mode_t mode) {
  int fd = open(path.c_str(), flags, mode);
  if (fd < 0) return errno_name(errno);
  close(fd);
  return "OK";
}

void Checks::eq(const std::string& actual, const std::string& expected, const char* expr,
                int line) {
  if (actual != expected) {
    report += "line " + std::to_string(line) + ": " + expr + ": expected " + expected + ", got " +
              actual + "\n";
  }
}

void Checks::truth(bool ok, const std::string& what, int line) {
  if (!ok) report += "line " + std::to_string(line) + ": " + what + "\n";
}

std::string run_as(const std::string& cwd, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                   const std::function<void(Checks&)>& body) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe: " + errno_name(errno);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    Checks c;
    if (chdir(cwd.c_str()) != 0) {
      c.report = "chdir " + cwd + ": " + errno_name(errno);
    } else if (setgroups(groups.size(), groups.data()) != 0 || setgid(gid) != 0 ||
               setuid(uid) != 0) {
      c.report = "dropping privileges: " + errno_name(errno);
    } else {
      umask(0);
      body(c);
    }
    const char* d = c.report.data();
    size_t left = c.report.size();
    while (left > 0) {
      ssize_t n = write(p[1], d, left);
      if (n <= 0) break;
      d += n;
      left -= size_t(n);
    }
    _exit(0);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return "fork: " + errno_name(errno);
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    out += "child (uid " + std::to_string(uid) + ") died, status " + std::to_string(status) + "\n";
  }
  return out;
}

}  // namespace pagefs::test
