#include "fs/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "engine/log.h"
#include "fs/log.h"

namespace pagefs {
namespace {

// The parent's side: exits 0 once the child is ready, or with the child's
// exit status if it ends before that.
[[noreturn]] void wait_for_child(pid_t child, int read_fd) {
  char byte = 0;
  ssize_t n;
  do {
    n = read(read_fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 1) _exit(0);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  _exit(WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
}

}  // namespace

bool Daemon::start(bool foreground) {
  if (foreground) return true;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  pid_t child = fork();
  if (child < 0) return false;
  if (child > 0) {
    close(fds[1]);
    wait_for_child(child, fds[0]);
  }
  close(fds[0]);
  setsid();
  ready_fd_ = fds[1];
  return true;
}

void Daemon::ready() {
  if (ready_fd_ < 0) return;
  log_to_syslog();
  // Nothing depends on the working directory; "/" only avoids pinning one.
  if (chdir("/") != 0) PAGEFS_LOG_WARN("cannot change directory to /");
  int null_fd = open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (null_fd > STDERR_FILENO) close(null_fd);
  }
  char byte = 0;
  while (write(ready_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  close(ready_fd_);
  ready_fd_ = -1;
}

}  // namespace pagefs
