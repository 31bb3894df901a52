#include "fs/mount_helpers.h"

#include <libmount/libmount.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "fs/stats_text.h"
#include "fs/stats_xattr.h"

namespace pagefs {
namespace {

constexpr int kUmountFailed = 32;  // umount(8)'s "umount failure"
constexpr int kUsage = 1;
// How long umount waits for the daemon before saying so once.
constexpr int kQuietWaitMs = 3000;

std::string_view base_name(const char* path) {
  std::string_view p = path;
  size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// The pid of the daemon serving `mountpoint`, from its statistics; 0 if it
// does not answer (it died, or this is not a pagefs root).
pid_t daemon_pid(const std::string& mountpoint) {
  std::string text(64 * 1024, '\0');
  ssize_t len =
      getxattr(mountpoint.c_str(), std::string(kStatsXattrName).c_str(), text.data(), text.size());
  StatsSample sample;
  if (len <= 0 || !parse_stats(std::string_view(text.data(), size_t(len)), &sample)) return 0;
  return pid_t(sample.value("pid"));
}

// Runs fusermount3 -u [-z] DIR, for a user who may not call umount2.
int fusermount_unmount(const std::string& mountpoint, bool lazy) {
  pid_t child = fork();
  if (child == 0) {
    if (lazy) {
      execlp("fusermount3", "fusermount3", "-u", "-z", "--", mountpoint.c_str(), nullptr);
    } else {
      execlp("fusermount3", "fusermount3", "-u", "--", mountpoint.c_str(), nullptr);
    }
    _exit(127);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Waits until the process behind `pidfd` has exited.
void wait_for_exit(int pidfd, pid_t pid, const std::string& mountpoint) {
  pollfd p{pidfd, POLLIN, 0};
  int ready = poll(&p, 1, kQuietWaitMs);
  if (ready == 0) {
    std::fprintf(stderr, "umount.pagefs: waiting for pagefs (pid %d) to finish writing %s\n",
                 int(pid), mountpoint.c_str());
  }
  while (ready <= 0) {
    ready = poll(&p, 1, -1);
    if (ready < 0 && errno != EINTR) return;
  }
}

struct UmountArgs {
  std::string target;
  int flags = 0;
  bool lazy = false;
};

bool parse_umount_args(int argc, char** argv, UmountArgs* a) {
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "-N" || arg == "-t") {
      if (arg == "-N") {
        std::fprintf(stderr, "umount.pagefs: -N (another mount namespace) is not supported\n");
        return false;
      }
      i++;  // -t TYPE: the type is ours
    } else if (arg.size() > 1 && arg[0] == '-') {
      for (char c : arg.substr(1)) {
        if (c == 'l') a->lazy = true;
        if (c == 'f') a->flags |= MNT_FORCE;
        // -n (no mtab), -r (remount read-only on failure), -v: nothing to do.
      }
    } else if (a->target.empty()) {
      a->target = arg;
    }
  }
  if (a->lazy) a->flags |= MNT_DETACH;
  return !a->target.empty();
}

}  // namespace

bool is_mount_helper(const char* argv0) {
  return base_name(argv0) == "mount.pagefs";
}

bool is_umount_helper(const char* argv0) {
  std::string_view name = base_name(argv0);
  return name == "umount.pagefs" || name == "umount.fuse.pagefs";
}

std::vector<std::string> mount_helper_args(int argc, char** argv, int* exit_code) {
  std::vector<std::string> args = {"pagefs"};
  std::string options;
  bool fake = false;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if ((arg == "-o" || arg == "-t" || arg == "-N") && i + 1 < argc) {
      if (arg == "-N") {
        std::fprintf(stderr, "mount.pagefs: -N (another mount namespace) is not supported\n");
        *exit_code = kUmountFailed;
        return {};
      }
      if (arg == "-o") options = argv[i + 1];
      i++;
    } else if (arg.size() > 1 && arg[0] == '-') {
      fake |= arg.find('f') != std::string_view::npos;  // -s, -n, -v: nothing to do
    } else {
      args.emplace_back(arg);
    }
  }
  if (args.size() != 3) {
    std::fprintf(stderr, "usage: mount.pagefs DEVICE MOUNTPOINT [-sfnv] [-o OPTIONS]\n");
    *exit_code = kUsage;
    return {};
  }
  if (fake) {
    *exit_code = 0;
    return {};
  }
  if (!options.empty()) args.insert(args.end(), {"-o", options});
  return args;
}

int umount_helper(int argc, char** argv) {
  UmountArgs a;
  if (!parse_umount_args(argc, argv, &a)) {
    std::fprintf(stderr, "usage: umount.pagefs MOUNTPOINT [-flnrv]\n");
    return kUmountFailed;
  }
  const pid_t pid = daemon_pid(a.target);
  // A pidfd, taken before the unmount, cannot be fooled by a reused pid.
  // (glibc 2.36's <sys/pidfd.h> lacks extern "C", hence the raw call.)
  const int pidfd = pid > 0 ? int(syscall(SYS_pidfd_open, pid, 0)) : -1;
  int result =
      geteuid() == 0 ? umount2(a.target.c_str(), a.flags) : fusermount_unmount(a.target, a.lazy);
  if (result != 0) {
    if (geteuid() == 0) {
      std::fprintf(stderr, "umount.pagefs: %s: %s\n", a.target.c_str(), std::strerror(errno));
    }
    if (pidfd >= 0) close(pidfd);
    return kUmountFailed;
  }
  if (pidfd >= 0) {
    if (!a.lazy) wait_for_exit(pidfd, pid, a.target);
    close(pidfd);
  }
  return 0;
}

void register_mount(const std::string& device, const std::string& mountpoint) {
  libmnt_fs* fs = mnt_new_fs();
  libmnt_update* update = mnt_new_update();
  if (fs != nullptr && update != nullptr && mnt_fs_set_source(fs, device.c_str()) == 0 &&
      mnt_fs_set_target(fs, mountpoint.c_str()) == 0 &&
      mnt_fs_set_options(fs, "uhelper=pagefs") == 0 &&
      mnt_update_set_fs(update, 0, nullptr, fs) == 0) {
    (void)mnt_update_table(update, nullptr);
  }
  mnt_free_update(update);
  mnt_unref_fs(fs);
}

void unregister_mount(const std::string& mountpoint) {
  libmnt_update* update = mnt_new_update();
  if (update != nullptr && mnt_update_set_fs(update, 0, mountpoint.c_str(), nullptr) == 0) {
    (void)mnt_update_table(update, nullptr);
  }
  mnt_free_update(update);
}

}  // namespace pagefs
