// Detaching the mount program from the terminal.
//
// libfuse's fuse_daemonize() forks after the filesystem is mounted, but by then
// the engine runs threads (writeback, commit) and io_uring rings, and fork()
// copies only the calling thread. So pagefs forks first, while it is still a
// single thread, and lets the parent wait: the child opens the device, mounts
// the engine and the FUSE session with the terminal still on stderr, so every
// start-up error reaches the user; then it reports ready() and the parent
// exits 0, or it exits with an error and the parent exits with its status.
//
//   parent                         child
//   start_daemon() ─ fork ───────► setsid, open device, mount, fuse mount
//   wait on the pipe               ready(): chdir /, stdio to /dev/null,
//   exit 0 ◄────────── 1 byte ───  syslog from now on
//   (EOF: exit with child status)  serve requests until unmounted
//
// Not thread-safe: call from main only.
#pragma once

namespace pagefs {

class Daemon {
 public:
  // In the foreground does nothing. Otherwise forks; only the child returns.
  // Returns false (with errno) if the fork could not be made.
  bool start(bool foreground);
  // Start-up succeeded: detach from the terminal and release the parent.
  void ready();

 private:
  int ready_fd_ = -1;  // child's end of the pipe, until ready()
};

}  // namespace pagefs
