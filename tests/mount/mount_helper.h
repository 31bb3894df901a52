// Helpers for the mount tests: a real pagefs image mounted through FUSE.
//
// MountedFs owns a private directory under $TMPDIR (default /tmp) holding the
// image, the mountpoint and the daemon's log. It formats the image with the
// built mkfs.pagefs, runs the built pagefs in the foreground (-f) as a child
// process, and always unmounts and removes the directory when destroyed: a
// failed test never leaves a mount or a daemon behind. It only ever signals its
// own child.
//
// Methods that can fail return ::testing::AssertionResult with the reason and
// the tail of the daemon's log, so tests write ASSERT_TRUE(fs.mount()).
//
// Thread-safety: a MountedFs is used from the test's main thread only; the
// files under it may be used from any thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pagefs::test {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

struct CommandResult {
  int exit_code = -1;  // exit status; 128 + signal if killed; -1 if it could not run
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with the given arguments, waits for it and
// captures its output. `env_overrides` are "NAME=value" entries that replace or
// add to the environment of the command.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env_overrides = {});

class MountedFs {
 public:
  // Creates the private directory (image not yet formatted, nothing mounted).
  MountedFs();
  // Unmounts if mounted (SIGTERM to our daemon if it has not exited 10 s after
  // fusermount3 -u), then removes the directory.
  ~MountedFs();
  MountedFs(const MountedFs&) = delete;
  MountedFs& operator=(const MountedFs&) = delete;

  // mkfs.pagefs -s image_bytes [extra_args...] IMAGE
  ::testing::AssertionResult format(uint64_t image_bytes,
                                    const std::vector<std::string>& extra_args = {});
  // pagefs IMAGE MNT -f [-o options]; returns once the mountpoint is a new
  // filesystem, or fails if the daemon exits or 10 s pass.
  ::testing::AssertionResult mount(const std::string& options = "");
  // format() then mount().
  ::testing::AssertionResult start(uint64_t image_bytes, const std::string& options = "",
                                   const std::vector<std::string>& mkfs_args = {});
  // fusermount3 -u, then waits for the daemon to exit. Returns its exit status
  // (0 on a clean unmount), 128 + signal if it died, -1 on a failed unmount or
  // a timeout (details in last_error()).
  int unmount();
  // unmount() (which must return 0), then mount(options).
  ::testing::AssertionResult remount(const std::string& options = "");
  // fsck.pagefs [args...] IMAGE; returns its exit code. Needs the fs unmounted.
  int fsck(const std::vector<std::string>& args = {"-n"});
  // The output of the last fsck() run, for failure messages.
  const CommandResult& last_fsck() const { return last_fsck_; }

  std::string path(std::string_view rel = "") const;  // inside the mountpoint
  const std::string& image() const { return image_; }
  const std::string& mountpoint() const { return mnt_; }
  const std::string& dir() const { return dir_; }
  pid_t daemon_pid() const { return pid_; }
  bool mounted() const { return pid_ > 0; }
  const std::string& last_error() const { return last_error_; }
  // The last lines of the daemon's stderr/stdout.
  std::string log_tail(size_t max_bytes = 4000) const;

 private:
  bool is_mountpoint() const;
  // Waits up to timeout_ms for our daemon to exit; returns its status or -1.
  int wait_daemon(int timeout_ms);
  void force_cleanup();

  std::string dir_, image_, mnt_, log_;
  pid_t pid_ = -1;
  std::string last_error_;
  CommandResult last_fsck_;
};

// Base fixture: a MountedFs and the usual ending of a test.
class MountTest : public ::testing::Test {
 protected:
  // Unmounts (the daemon must exit 0) and, if `check`, runs fsck -n (must
  // exit 0).
  void unmount_and_check(bool check = true);

  MountedFs fs_;
};

// Whole-file I/O through POSIX calls; failures are reported as test failures.
::testing::AssertionResult write_file(const std::string& path, std::string_view bytes);
// Returns the contents; on failure adds a test failure and returns "".
std::string read_file(const std::string& path);

// CRC32C over bytes, for comparing large contents cheaply.
uint32_t checksum(std::string_view bytes);

// Deterministic pseudo-random bytes: the byte at file offset `offset` depends
// only on (seed, offset), so any chunk can be regenerated for verification.
void fill_pattern(uint64_t seed, uint64_t offset, char* out, size_t len);
std::string pattern(uint64_t seed, uint64_t offset, size_t len);

// Names in a directory, without "." and "..".
std::vector<std::string> list_dir(const std::string& path);

// Reads a "Key:   value kB" line of /proc/PID/status; returns bytes, or 0.
uint64_t proc_status_bytes(pid_t pid, const std::string& key);

// True when the test runs as root (device nodes, chown).
bool is_root();

}  // namespace pagefs::test
