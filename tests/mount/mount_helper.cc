#include "tests/mount/mount_helper.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/crc32c.h"

extern char** environ;

namespace pagefs::test {
namespace {

constexpr int kMountTimeoutMs = 10'000;
constexpr int kUnmountTimeoutMs = 120'000;  // the daemon writes every dirty page home first
constexpr int kDestructorTimeoutMs = 10'000;

int decode_status(int status) {
  if (status == -1) return -1;  // never a real wait status: waitpid failed
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Builds envp: the current environment with `overrides` replacing same-named entries.
std::vector<std::string> make_env(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& o : overrides) overridden |= o.substr(0, o.find('=')) == name;
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Reads both pipes until both reach EOF and returns the child's status. A
// daemonizing child may leave a grandchild holding the pipes: once the child
// has exited, reading stops after kLingerMs even without EOF.
int drain_and_wait(pid_t pid, int out_fd, int err_fd, std::string* out, std::string* err) {
  constexpr int kLingerMs = 2000;
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {out, err};
  int open_fds = 2;
  int status = -1;
  bool exited = false;
  auto linger_end = std::chrono::steady_clock::time_point::max();
  char buf[65536];
  while (open_fds > 0 && std::chrono::steady_clock::now() < linger_end) {
    int ready = poll(fds, 2, 100);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; ready > 0 && i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      linger_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLingerMs);
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (!exited) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return decode_status(status);
}

int remove_entry(const char* path, const struct stat*, int type, FTW*) {
  if (type == FTW_DP) {
    rmdir(path);
  } else {
    unlink(path);
  }
  return 0;  // best effort: keep going
}

void remove_tree(const std::string& dir) {
  // FTW_MOUNT: never descend into a filesystem still mounted below `dir`.
  nftw(dir.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env_overrides) {
  CommandResult result;
  std::vector<std::string> args = argv;
  std::vector<std::string> env = make_env(env_overrides);
  std::vector<char*> c_args = c_strings(args);
  std::vector<char*> c_env = c_strings(env);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execvpe(c_args[0], c_args.data(), c_env.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", c_args[0], std::strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  result.exit_code = drain_and_wait(pid, out_pipe[0], err_pipe[0], &result.out, &result.err);
  return result;
}

MountedFs::MountedFs() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pagefs-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << errno_text("mkdtemp " + tmpl);
    return;
  }
  dir_ = tmpl;
  image_ = dir_ + "/image";
  mnt_ = dir_ + "/mnt";
  log_ = dir_ + "/pagefs.log";
  if (::mkdir(mnt_.c_str(), 0755) != 0) ADD_FAILURE() << errno_text("mkdir " + mnt_);
}

MountedFs::~MountedFs() {
  if (mounted()) {
    force_cleanup();
  } else if (!dir_.empty() && is_mountpoint()) {
    // Mounted by a test some other way (mount -t fuse.pagefs): not our child.
    if (run_command({"fusermount3", "-u", mnt_}).exit_code != 0) {
      run_command({"fusermount3", "-u", "-z", mnt_});
    }
  }
  if (!dir_.empty()) remove_tree(dir_);
}

void MountedFs::force_cleanup() {
  run_command({"fusermount3", "-u", mnt_});
  if (wait_daemon(kDestructorTimeoutMs) < 0 && pid_ > 0) {
    kill(pid_, SIGTERM);
    if (wait_daemon(5'000) < 0 && pid_ > 0) {
      kill(pid_, SIGKILL);
      wait_daemon(5'000);
    }
  }
  // A killed daemon leaves a dead mount ("transport endpoint is not connected").
  if (is_mountpoint()) run_command({"fusermount3", "-u", "-z", mnt_});
}

::testing::AssertionResult MountedFs::format(uint64_t image_bytes,
                                             const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {MKFS_BIN, "-s", std::to_string(image_bytes)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(image_);
  CommandResult r = run_command(argv);
  if (r.exit_code != 0) {
    return ::testing::AssertionFailure() << "mkfs.pagefs exited " << r.exit_code
                                         << "\nstdout: " << r.out << "\nstderr: " << r.err;
  }
  return ::testing::AssertionSuccess();
}

bool MountedFs::is_mountpoint() const {
  struct stat mnt_st, parent_st;
  if (stat(dir_.c_str(), &parent_st) != 0) return false;
  // A dead FUSE mount fails stat with ENOTCONN: still a mountpoint.
  if (stat(mnt_.c_str(), &mnt_st) != 0) return errno == ENOTCONN;
  return mnt_st.st_dev != parent_st.st_dev;
}

::testing::AssertionResult MountedFs::mount(const std::string& options) {
  if (mounted()) return ::testing::AssertionFailure() << "already mounted";
  std::vector<std::string> args = {PAGEFS_BIN, image_, mnt_, "-f"};
  if (!options.empty()) {
    args.push_back("-o");
    args.push_back(options);
  }
  std::vector<char*> c_args = c_strings(args);
  int log_fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ::testing::AssertionFailure() << errno_text("open " + log_);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(c_args[0], c_args.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", c_args[0], std::strerror(errno));
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) return ::testing::AssertionFailure() << errno_text("fork");
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kMountTimeoutMs);
  while (!is_mountpoint()) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "pagefs exited with status " << decode_status(status) << " before mounting; log:\n"
             << log_tail();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      force_cleanup();
      return ::testing::AssertionFailure() << "mount did not appear within 10 s; log:\n"
                                           << log_tail();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MountedFs::start(uint64_t image_bytes, const std::string& options,
                                            const std::vector<std::string>& mkfs_args) {
  ::testing::AssertionResult formatted = format(image_bytes, mkfs_args);
  if (!formatted) return formatted;
  return mount(options);
}

int MountedFs::wait_daemon(int timeout_ms) {
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return decode_status(status);
    }
    if (r < 0 && errno != EINTR) {
      pid_ = -1;
      return -1;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int MountedFs::unmount() {
  last_error_.clear();
  if (!mounted()) {
    last_error_ = "not mounted";
    return -1;
  }
  // A file closed just before may still be busy for a moment (release is asynchronous).
  CommandResult r;
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = run_command({"fusermount3", "-u", mnt_});
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (r.exit_code != 0) {
    last_error_ = "fusermount3 -u failed: " + r.err;
    return -1;
  }
  int status = wait_daemon(kUnmountTimeoutMs);
  if (status < 0 && pid_ > 0) {
    last_error_ = "daemon still running 120 s after fusermount3 -u";
    force_cleanup();
    return -1;
  }
  if (status != 0) last_error_ = "daemon exited with status " + std::to_string(status);
  // The daemon's flock on the image goes with the last reference to the open
  // file, which the kernel may drop a moment after the process is reaped
  // (io_uring tears its rings down asynchronously, more so after a kill -9
  // with I/O in flight). The README tells scripts to wait with
  // `flock DEVICE true`; so do the tests, before anything opens the image.
  run_command({"flock", "-w", "30", image_, "true"});
  return status;
}

::testing::AssertionResult MountedFs::remount(const std::string& options) {
  int status = unmount();
  if (status != 0) {
    return ::testing::AssertionFailure()
           << "unmount returned " << status << " (" << last_error_ << "); log:\n"
           << log_tail();
  }
  return mount(options);
}

int MountedFs::fsck(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {FSCK_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(image_);
  last_fsck_ = run_command(argv);
  return last_fsck_.exit_code;
}

std::string MountedFs::path(std::string_view rel) const {
  if (rel.empty()) return mnt_;
  return mnt_ + "/" + std::string(rel);
}

std::string MountedFs::log_tail(size_t max_bytes) const {
  std::ifstream in(log_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

void MountTest::unmount_and_check(bool check) {
  int status = fs_.unmount();
  EXPECT_EQ(status, 0) << fs_.last_error() << "; log:\n" << fs_.log_tail();
  if (status != 0 || !check) return;
  int fsck_status = fs_.fsck();
  EXPECT_EQ(fsck_status, 0) << "fsck.pagefs -n:\n" << fs_.last_fsck().out << fs_.last_fsck().err;
}

::testing::AssertionResult write_file(const std::string& path, std::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ::testing::AssertionFailure() << errno_text("open " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string msg = errno_text("write " + path + " at " + std::to_string(done));
      close(fd);
      return ::testing::AssertionFailure() << msg;
    }
    done += size_t(n);
  }
  if (close(fd) != 0) return ::testing::AssertionFailure() << errno_text("close " + path);
  return ::testing::AssertionSuccess();
}

std::string read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << errno_text("open " + path);
    return "";
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ADD_FAILURE() << errno_text("read " + path + " at " + std::to_string(out.size()));
      break;
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

uint32_t checksum(std::string_view bytes) {
  return pagefs::crc32c(bytes.data(), bytes.size());
}

void fill_pattern(uint64_t seed, uint64_t offset, char* out, size_t len) {
  // splitmix64 of each 8-byte word's index: cheap and well mixed.
  for (size_t i = 0; i < len;) {
    uint64_t pos = offset + i;
    uint64_t z = (pos / 8) * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    size_t in_word = pos % 8;
    size_t n = std::min<size_t>(8 - in_word, len - i);
    std::memcpy(out + i, reinterpret_cast<const char*>(&z) + in_word, n);
    i += n;
  }
}

std::string pattern(uint64_t seed, uint64_t offset, size_t len) {
  std::string s(len, '\0');
  fill_pattern(seed, offset, s.data(), len);
  return s;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << errno_text("opendir " + path);
    return names;
  }
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
    errno = 0;
  }
  if (errno != 0) ADD_FAILURE() << errno_text("readdir " + path);
  closedir(d);
  return names;
}

uint64_t proc_status_bytes(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10) * 1024;
    }
  }
  return 0;
}

bool is_root() {
  return geteuid() == 0;
}

}  // namespace pagefs::test
