// The `pagefs` command line: what to do and with which options.
//
//   pagefs DEVICE MOUNTPOINT [-f] [-d] [-s] [-o opt[,opt...]]
//   pagefs --stats MOUNTPOINT   (pagefs stats MOUNTPOINT, fs/stats_command.h)
//   pagefs --help | --version
//
// Flags and -o lists may appear anywhere in argv, because mount.fuse3 runs
// `pagefs DEVICE MOUNTPOINT -o rw,...`. The generic options mount(8) and
// mount.fuse3 pass are accepted: the ones the kernel understands as mount
// flags (nosuid, nodev, noexec, sync, ...) are handed to libfuse, the atime
// options (noatime, relatime, strictatime, ...) set when the engine stores
// atime, acl/noacl turn POSIX ACLs on (the default) or off, the rest (auto, _netdev, x-*,
// comment=..., lazytime, ...) are ignored. Anything else is refused, so a typo never goes
// unnoticed.
//
// Parsing is pure (no I/O), so it can be tested on its own.
#pragma once

#include <string>
#include <vector>

#include "engine/filesystem.h"
#include "engine/result.h"

namespace pagefs {

inline constexpr uint64_t kMinCacheBytes = 4ull << 20;

struct MountConfig {
  std::string device;
  std::string mountpoint;
  bool foreground = false;     // -f (and -d)
  bool debug = false;          // -d: libfuse request tracing and debug log lines
  bool single_thread = false;  // -s
  MountOptions engine;         // cache_size, commit, ro, atime and ACL options
  bool kernel_cache = false;   // cache=kernel
  unsigned queue_depth = 64;   // queue_depth=: I/O requests in flight per io_uring ring
  bool allow_other = false;
  std::string fsname;                     // fsname= if given; else the device path
  std::vector<std::string> kernel_flags;  // mount flags passed through to libfuse
};

enum class Command { kMount, kStats, kHelp, kVersion };

struct Invocation {
  Command command = Command::kMount;
  MountConfig config;      // kMount
  std::string stats_path;  // kStats: a path inside the mount
};

// Parses argv. A usage error is EINVAL with one line for the user, starting
// "pagefs: ", in *error.
Result<Invocation> parse_command_line(int argc, char** argv, std::string* error);

// Parses a size such as "256M", "1G", "4096" or "512k" into bytes.
Result<uint64_t> parse_size(const std::string& text);

// The --help text.
const char* usage_text();

}  // namespace pagefs
