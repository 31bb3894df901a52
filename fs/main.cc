// pagefs: mounts a pagefs device through FUSE (command line in
// fs/mount_options.h); `pagefs scrub` verifies a mounted one
// (fs/scrub_command.h).
//
// Start-up, in this order, so that every error reaches the terminal as one
// line and exit code 1 before the program detaches:
//   1. parse the command line; check the mount point is a directory
//   2. fork (fs/daemon.h); the child carries on, the parent waits
//   3. open the device with an exclusive lock (EBUSY: already mounted)
//   4. mount the engine (journal replay, orphan purge)
//   5. create the FUSE session, mount it on the mount point and route its
//      /dev/fuse traffic through fs/kernel_flags.h (INIT flags libfuse 3.14
//      cannot ask for)
//   6. detach: the parent exits 0, logging goes to syslog
// Then requests are served until the filesystem is unmounted (fusermount3 -u,
// umount, or SIGINT/SIGTERM/SIGHUP). Shutting down writes everything home,
// marks the device clean and closes it, which drops the lock: a script can wait
// for the daemon with `flock DEVICE true`.
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/file_device.h"
#include "engine/filesystem.h"
#include "engine/log.h"
#include "engine/readahead.h"
#include "fs/daemon.h"
#include "fs/fuse_ops.h"
#include "fs/log.h"
#include "fs/mount_helpers.h"
#include "fs/mount_options.h"
#include "fs/resize_command.h"
#include "fs/scrub_command.h"
#include "fs/stats_command.h"
#include "version.h"

namespace pagefs {
namespace {

void print_error(const std::string& line) {
  std::fprintf(stderr, "pagefs: %s\n", line.c_str());
}

std::string errno_text(int error) {
  return std::strerror(error);
}

// `path` made absolute, or "" (with errno) if it cannot be resolved.
std::string absolute_path(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : std::string();
}

// Checks that the mount point is a directory and makes it absolute: the
// daemon leaves its working directory, and unmounting needs the path.
bool resolve_mountpoint(MountConfig& config) {
  const std::string& path = config.mountpoint;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    print_error("cannot access mount point " + path + ": " + errno_text(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    print_error("mount point " + path + " is not a directory");
    return false;
  }
  std::string absolute = absolute_path(path);
  if (absolute.empty()) {
    print_error("cannot resolve mount point " + path + ": " + errno_text(errno));
    return false;
  }
  config.mountpoint = absolute;
  return true;
}

void report_open_error(const MountConfig& config, int error, const std::string& message) {
  if (error == EBUSY) {
    print_error(config.device + " is already mounted or in use by another process");
  } else {
    print_error(message.empty() ? "cannot open " + config.device + ": " + errno_text(error)
                                : message);
  }
}

// Session threads: libfuse starts them as load needs them, up to this many,
// and with the idle count equal to it never ends one (it would otherwise end
// threads beyond the idle count after a burst and start new ones, each with
// its own request buffer, at the next). A read that misses
// the cache holds its thread for one device read, so the count bounds the
// reads in flight: measured with fio (4 KiB random reads, queue depth 16,
// file 16x the cache), 16 threads gave 1.3-1.5x the IOPS of 4, and creating
// and stat'ing files was unchanged within noise. Each thread may hold a
// request buffer of up to 1 MiB (max_write), so the count is also part of
// the daemon's fixed memory overhead.
constexpr unsigned kSessionThreads = 16;

// Opens the device with an exclusive lock. A write-protected device is
// mounted read-only, with a warning, as mount(8) does.
std::unique_ptr<FileDevice> open_device(MountConfig& config) {
  FileDeviceOptions options;
  options.read_only = config.engine.read_only;
  options.exclusive_lock = true;
  options.queue_depth = config.queue_depth;
  // One ring for every thread that may wait on a read: session threads,
  // read-ahead workers, and the write-back and commit threads.
  options.rings = kSessionThreads + Readahead::kWorkers + 2;
  std::string message;
  auto device = FileDevice::open(config.device, options, &message);
  if (!device.ok() && !options.read_only && (device.error() == EROFS || device.error() == EACCES)) {
    options.read_only = true;
    auto read_only = FileDevice::open(config.device, options);
    if (read_only.ok()) {
      print_error(config.device + " is write-protected, mounting read-only");
      config.engine.read_only = true;
      device = std::move(read_only);
    }
  }
  if (!device.ok()) {
    report_open_error(config, device.error(), message);
    return nullptr;
  }
  std::string absolute = absolute_path(config.device);
  if (!absolute.empty()) config.device = absolute;
  return std::move(device).value();
}

std::unique_ptr<FileSystem> mount_engine(std::unique_ptr<FileDevice> device,
                                         const MountConfig& config) {
  std::string message;
  auto fs = FileSystem::mount(std::move(device), config.engine, &message);
  if (!fs.ok()) {
    print_error(message.empty() ? "cannot mount " + config.device + ": " + errno_text(fs.error())
                                : message);
    return nullptr;
  }
  return std::move(fs).value();
}

// Escapes ',' and '\' for a libfuse option list.
std::string escape_option(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == ',' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

std::string fuse_mount_options(const MountConfig& config, bool read_only) {
  const std::string& fsname = config.fsname.empty() ? config.device : config.fsname;
  std::string options = "default_permissions,subtype=pagefs,fsname=" + escape_option(fsname);
  if (config.allow_other) options += ",allow_other";
  if (read_only) options += ",ro";
  // Shown in the mount table; pagefs itself stores no atime on reads.
  if (config.engine.atime_updates == AtimeUpdates::kNever) options += ",noatime";
  for (const std::string& flag : config.kernel_flags) options += "," + flag;
  return options;
}

fuse_session* new_session(const MountConfig& config, bool read_only, FuseAdapter* adapter) {
  std::string options = fuse_mount_options(config, read_only);
  std::vector<const char*> argv = {"pagefs"};
  if (config.debug) argv.push_back("-d");
  argv.push_back("-o");
  argv.push_back(options.c_str());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  fuse_session* session =
      fuse_session_new(&args, &fuse_operations(), sizeof(fuse_lowlevel_ops), adapter);
  fuse_opt_free_args(&args);
  return session;
}

// Serves requests until the filesystem is unmounted. Returns libfuse's result.
int run_loop(fuse_session* session, bool single_thread) {
  if (single_thread) return fuse_session_loop(session);
  fuse_loop_config* loop_config = fuse_loop_cfg_create();
  if (loop_config == nullptr) return -ENOMEM;
  fuse_loop_cfg_set_clone_fd(loop_config, 0);
  fuse_loop_cfg_set_max_threads(loop_config, kSessionThreads);
  fuse_loop_cfg_set_idle_threads(loop_config, kSessionThreads);
  int result = fuse_session_loop_mt(session, loop_config);
  fuse_loop_cfg_destroy(loop_config);
  return result;
}

// The signals that end the session. They stay blocked from start-up until
// libfuse's handlers are installed, so that the engine's threads (which
// inherit the mask) never take one: a handler run there would not wake the
// session loop.
sigset_t session_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&signals, signal);
  return signals;
}

// A FUSE session mounted on the mount point; close() tears it down in order.
class Session {
 public:
  // Creates and mounts the session; false (with a message printed) on failure.
  bool open(const MountConfig& config, bool read_only, FuseAdapter* adapter) {
    session_ = new_session(config, read_only, adapter);
    if (session_ == nullptr) return fail("cannot create the FUSE session");
    if (fuse_set_signal_handlers(session_) != 0) return fail("cannot install signal handlers");
    handlers_ = true;
    if (fuse_session_mount(session_, config.mountpoint.c_str()) != 0) {
      return fail("cannot mount on " + config.mountpoint);
    }
    mounted_ = true;
    if (int error = adapter->attach(session_); error != 0) {
      return fail("cannot attach to the FUSE device: " + errno_text(-error));
    }
    return true;
  }
  fuse_session* get() const { return session_; }
  // Unmounts (if still mounted) and destroys the session; the destroy handler
  // then shuts the engine down.
  void close() {
    if (mounted_) fuse_session_unmount(session_);
    if (handlers_) fuse_remove_signal_handlers(session_);
    if (session_ != nullptr) fuse_session_destroy(session_);
    session_ = nullptr;
    mounted_ = handlers_ = false;
  }

 private:
  bool fail(const std::string& line) {
    print_error(line);
    close();
    return false;
  }

  fuse_session* session_ = nullptr;
  bool handlers_ = false;
  bool mounted_ = false;
};

// Mounts and serves `fs` until unmounted; returns the exit code (0 if the
// engine unmounted cleanly).
int serve(const MountConfig& config, FileSystem& fs, Daemon& daemon) {
  FuseAdapter adapter(
      &fs, AdapterOptions{config.kernel_cache, config.single_thread ? 1 : kSessionThreads,
                          config.device, config.engine.posix_acl});
  Session session;
  if (!session.open(config, fs.read_only(), &adapter)) {
    (void)adapter.shutdown();
    return 1;
  }
  register_mount(config.device, config.mountpoint);  // so that umount(8) waits for us
  sigset_t signals = session_signals();
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  daemon.ready();
  int result = run_loop(session.get(), config.single_thread);
  if (result < 0) PAGEFS_LOG_ERROR("FUSE session failed: %s", std::strerror(-result));
  session.close();
  unregister_mount(config.mountpoint);
  return adapter.shutdown().ok() ? 0 : 1;
}

int run_mount(MountConfig config) {
  if (!resolve_mountpoint(config)) return 1;
  Daemon daemon;
  if (!daemon.start(config.foreground)) {
    print_error("cannot start the daemon: " + errno_text(errno));
    return 1;
  }
  log_debug_lines(config.debug);
  sigset_t signals = session_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::unique_ptr<FileDevice> device = open_device(config);
  if (device == nullptr) return 1;
  std::unique_ptr<FileSystem> fs = mount_engine(std::move(device), config);
  if (fs == nullptr) return 1;
  int exit_code = serve(config, *fs, daemon);
  fs.reset();  // closes the device and drops its lock before the process ends
  return exit_code;
}

}  // namespace
}  // namespace pagefs

int main(int argc, char** argv) {
  if (pagefs::is_umount_helper(argv[0])) return pagefs::umount_helper(argc, argv);
  // As mount.pagefs, mount(8)'s arguments become a pagefs command line.
  std::vector<std::string> helper_args;
  std::vector<char*> helper_argv;
  if (pagefs::is_mount_helper(argv[0])) {
    int exit_code = 0;
    helper_args = pagefs::mount_helper_args(argc, argv, &exit_code);
    if (helper_args.empty()) return exit_code;
    for (std::string& arg : helper_args) helper_argv.push_back(arg.data());
    argc = static_cast<int>(helper_argv.size());
    helper_argv.push_back(nullptr);
    argv = helper_argv.data();
  }
  // Subcommands come first; a device named like one is written ./NAME.
  const std::string_view command = argc >= 2 ? argv[1] : "";
  if (command == "resize") return pagefs::resize_command(argc - 1, argv + 1);
  if (command == "stats") return pagefs::stats_command(argc - 1, argv + 1);
  if (command == "scrub") return pagefs::run_scrub_command(argc - 1, argv + 1);
  std::string error;
  auto invocation = pagefs::parse_command_line(argc, argv, &error);
  if (!invocation.ok()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  switch (invocation->command) {
    case pagefs::Command::kHelp:
      std::fputs(pagefs::usage_text(), stdout);
      std::fputs(pagefs::scrub_usage_text(), stdout);
      return 0;
    case pagefs::Command::kVersion:
      std::printf("pagefs %s\n", PAGEFS_VERSION);
      return 0;
    case pagefs::Command::kStats: {
      char stats[] = "stats";
      char* args[] = {stats, invocation->stats_path.data(), nullptr};
      return pagefs::stats_command(2, args);
    }
    case pagefs::Command::kMount:
      break;
  }
  return pagefs::run_mount(std::move(invocation->config));
}
