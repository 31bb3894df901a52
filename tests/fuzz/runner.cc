#include "tests/fuzz/runner.h"

#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace pagefs::fuzz {
namespace {

constexpr int kGraceSeconds = 10;

// Sanitizer builds have their own reports; elsewhere a dying child prints
// where it died.
#if defined(__SANITIZE_ADDRESS__)
void install_crash_handlers() {}
#else
void on_fatal_signal(int sig) {
  static const char kHead[] = "\nfuzz child: fatal signal, backtrace:\n";
  (void)!write(STDERR_FILENO, kHead, sizeof kHead - 1);
  constexpr int kFrames = 48;
  void* frames[kFrames];
  int n = backtrace(frames, kFrames);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

// On an alternate stack, so that a stack overflow (a cycle in the tree that a
// recursive walk follows) still gets its backtrace.
void install_crash_handlers() {
  static char alt_stack[1 << 16];
  stack_t ss{alt_stack, 0, sizeof alt_stack};
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
}
#endif

int output_file() {
  static const int fd = memfd_create("fuzz-child-output", MFD_CLOEXEC);
  return fd;
}

[[noreturn]] void child_main(const std::function<void(Channel&)>& body, int pipe_fd, int out_fd,
                             int timeout_s) {
  dup2(out_fd, STDOUT_FILENO);
  dup2(out_fd, STDERR_FILENO);
  install_crash_handlers();
  alarm(unsigned(timeout_s));
  Channel channel(pipe_fd);
  body(channel);
  channel.done();
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(0);  // no destructors, no leak check: the parent owns the run
}

// Reads the pipe until the child closes it or the deadline passes.
std::string read_channel(int fd, pid_t child, int timeout_s, bool* killed) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s + kGraceSeconds);
  std::string text;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, int(left.count())) == 0) {
      kill(child, SIGKILL);
      *killed = true;
      return text;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return text;
    text.append(buf, size_t(n));
  }
}

std::string read_output(int fd) {
  std::string out;
  char buf[65536];
  for (off_t at = 0;;) {
    ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n <= 0) return out;
    out.append(buf, size_t(n));
    at += n;
  }
}

}  // namespace

ChildResult run_in_child(const std::function<void(Channel&)>& body, int timeout_s) {
  ChildResult r;
  const int out_fd = output_file();
  int fds[2];
  if (out_fd < 0 || pipe2(fds, O_CLOEXEC) != 0) {
    r.output = "fuzz: cannot set up the child's pipe or output file";
    return r;
  }
  (void)!ftruncate(out_fd, 0);
  lseek(out_fd, 0, SEEK_SET);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child_main(body, fds[1], out_fd, timeout_s);
  }
  close(fds[1]);
  bool killed = false;
  std::string text = pid > 0 ? read_channel(fds[0], pid, timeout_s, &killed) : "";
  close(fds[0]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  r.log = parse_channel(text);
  r.output = read_output(out_fd);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.timed_out = killed || r.signal == SIGALRM;
  r.finished = pid > 0 && r.log.done && WIFEXITED(status) && r.exit_code == 0;
  return r;
}

}  // namespace pagefs::fuzz
