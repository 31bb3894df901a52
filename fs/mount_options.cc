#include "fs/mount_options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

namespace pagefs {
namespace {

// Mount flags libfuse hands to the kernel (or to fusermount3).
constexpr std::string_view kKernelFlags[] = {"suid",   "nosuid", "dev",  "nodev",  "exec",
                                             "noexec", "async",  "sync", "dirsync"};
// Options mount(8), mount.fuse3 or fstab may pass that mean nothing here, or
// that hold without doing anything: default_permissions is always on; a
// listing never moves a directory's atime, so nodiratime holds (and diratime
// cannot be asked for); a new atime (or any time) is never written on its
// own but joins the running transaction, committed within the commit
// interval, which is what lazytime asks for.
constexpr std::string_view kIgnored[] = {
    "diratime", "nodiratime", "lazytime", "nolazytime", "auto",
    "noauto",   "user",       "nouser",   "users",      "owner",
    "group",    "defaults",   "_netdev",  "nofail",     "default_permissions"};
constexpr std::string_view kIgnoredPrefixes[] = {"x-", "comment=", "subtype=", "user="};

// When reads store atime; the last option given wins, as in mount(8).
// norelatime and atime leave the kernel's default, relatime.
struct AtimeOption {
  std::string_view name;
  AtimeUpdates updates;
};
constexpr AtimeOption kAtimeOptions[] = {
    {"noatime", AtimeUpdates::kNever},          {"atime", AtimeUpdates::kRelative},
    {"relatime", AtimeUpdates::kRelative},      {"norelatime", AtimeUpdates::kRelative},
    {"nostrictatime", AtimeUpdates::kRelative}, {"strictatime", AtimeUpdates::kAlways}};

// Sets the atime behaviour if `option` names one; false otherwise.
bool apply_atime(std::string_view option, MountConfig& config) {
  for (const AtimeOption& a : kAtimeOptions) {
    if (option == a.name) {
      config.engine.atime_updates = a.updates;
      return true;
    }
  }
  return false;
}

constexpr uint32_t kMaxCommitIntervalS = 24 * 60 * 60;

template <size_t N>
bool contains(const std::string_view (&list)[N], std::string_view option) {
  return std::find(std::begin(list), std::end(list), option) != std::end(list);
}

Err usage_error(std::string* error, std::string line) {
  if (error != nullptr) *error = "pagefs: " + std::move(line);
  return Err{EINVAL};
}

// Splits "a,b\,c" into "a" and "b,c" (a backslash escapes the next byte).
std::vector<std::string> split_options(std::string_view list) {
  std::vector<std::string> options(1);
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\\' && i + 1 < list.size()) {
      options.back() += list[++i];
    } else if (list[i] == ',') {
      options.emplace_back();
    } else {
      options.back() += list[i];
    }
  }
  return options;
}

Status apply_cache_size(std::string_view value, MountConfig& config, std::string* error) {
  Result<uint64_t> bytes = parse_size(std::string(value));
  if (!bytes.ok()) {
    return usage_error(error, "invalid cache_size '" + std::string(value) +
                                  "' (expected a size such as 256M or 1G)");
  }
  if (*bytes < kMinCacheBytes) {
    return usage_error(error, "cache_size " + std::string(value) + " is too small (minimum 4M)");
  }
  config.engine.cache_bytes = *bytes;
  return ok_status();
}

// commit=0 means the default interval, as it does for ext4.
Status apply_commit(std::string_view value, MountConfig& config, std::string* error) {
  uint32_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc() || end != value.data() + value.size() || seconds > kMaxCommitIntervalS) {
    return usage_error(error, "invalid commit interval '" + std::string(value) +
                                  "' (expected seconds, at most 86400)");
  }
  config.engine.commit_interval_s = seconds == 0 ? MountOptions{}.commit_interval_s : seconds;
  return ok_status();
}

Status apply_commit_nice(std::string_view value, MountConfig& config, std::string* error) {
  int nice = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), nice);
  if (ec != std::errc() || end != value.data() + value.size() || nice < -20 || nice > 19) {
    return usage_error(error, "invalid commit_nice '" + std::string(value) +
                                  "' (expected a nice value from -20 to 19)");
  }
  config.engine.commit_nice = nice;
  return ok_status();
}

// A whole number in [min, max] for option `name`.
Status parse_count(std::string_view name, std::string_view value, uint64_t min, uint64_t max,
                   uint64_t* out, std::string* error) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || v < min || v > max) {
    return usage_error(error, "invalid " + std::string(name) + " '" + std::string(value) +
                                  "' (expected a number from " + std::to_string(min) + " to " +
                                  std::to_string(max) + ")");
  }
  *out = v;
  return ok_status();
}

Status apply_cache_mode(std::string_view value, MountConfig& config, std::string* error) {
  if (value != "private" && value != "kernel") {
    return usage_error(error,
                       "invalid cache mode '" + std::string(value) + "' (private or kernel)");
  }
  config.kernel_cache = value == "kernel";
  return ok_status();
}

// Options that take a value; false if `option` is none of them.
bool apply_valued(std::string_view option, MountConfig& config, std::string* error,
                  Status* status) {
  auto value_of = [option](std::string_view key) { return option.substr(key.size()); };
  if (option.starts_with("cache_size=")) {
    *status = apply_cache_size(value_of("cache_size="), config, error);
  } else if (option.starts_with("commit_nice=")) {
    *status = apply_commit_nice(value_of("commit_nice="), config, error);
  } else if (option.starts_with("commit=")) {
    *status = apply_commit(value_of("commit="), config, error);
  } else if (option.starts_with("cache=")) {
    *status = apply_cache_mode(value_of("cache="), config, error);
  } else if (option.starts_with("queue_depth=")) {
    uint64_t v = 0;
    *status = parse_count("queue_depth", value_of("queue_depth="), 1, 4096, &v, error);
    config.queue_depth = unsigned(v);
  } else if (option.starts_with("max_write_iops=")) {
    *status = parse_count("max_write_iops", value_of("max_write_iops="), 0, 100000000,
                          &config.engine.max_write_iops, error);
  } else if (option.starts_with("max_write_mbps=")) {
    *status = parse_count("max_write_mbps", value_of("max_write_mbps="), 0, 1000000,
                          &config.engine.max_write_mbps, error);
  } else if (option.starts_with("fsname=")) {
    config.fsname = value_of("fsname=");
  } else {
    return false;
  }
  return true;
}

Status apply_option(std::string_view option, MountConfig& config, std::string* error) {
  Status status = ok_status();
  if (option.empty() || apply_valued(option, config, error, &status)) return status;
  if (option == "ro" || option == "rw") {
    config.engine.read_only = option == "ro";
  } else if (option == "allow_other") {
    config.allow_other = true;
  } else if (option == "acl" || option == "noacl") {
    config.engine.posix_acl = option == "acl";
  } else if (apply_atime(option, config)) {
    // handled
  } else if (contains(kKernelFlags, option)) {
    config.kernel_flags.emplace_back(option);
  } else if (!contains(kIgnored, option) &&
             std::none_of(std::begin(kIgnoredPrefixes), std::end(kIgnoredPrefixes),
                          [option](std::string_view p) { return option.starts_with(p); })) {
    return usage_error(error,
                       "unknown mount option '" + std::string(option) + "' (see pagefs --help)");
  }
  return ok_status();
}

Status apply_option_list(std::string_view list, MountConfig& config, std::string* error) {
  for (const std::string& option : split_options(list)) {
    PAGEFS_TRY(apply_option(option, config, error));
  }
  return ok_status();
}

// "-f", "-d", "-s" or a cluster of them ("-fd"); false if `arg` is not one.
bool apply_flags(std::string_view arg, MountConfig& config) {
  if (arg.size() < 2 || arg.substr(1).find_first_not_of("fds") != std::string_view::npos) {
    return false;
  }
  for (char flag : arg.substr(1)) {
    config.foreground |= flag == 'f' || flag == 'd';
    config.debug |= flag == 'd';
    config.single_thread |= flag == 's';
  }
  return true;
}

Result<Invocation> finish(Invocation invocation, bool stats,
                          const std::vector<std::string>& positional, std::string* error) {
  if (stats) {
    if (positional.size() != 1) return usage_error(error, "usage: pagefs --stats MOUNTPOINT");
    invocation.command = Command::kStats;
    invocation.stats_path = positional[0];
    return invocation;
  }
  if (positional.size() != 2) {
    return usage_error(error, "expected DEVICE and MOUNTPOINT (see pagefs --help)");
  }
  invocation.config.device = positional[0];
  invocation.config.mountpoint = positional[1];
  return invocation;
}

}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
  uint64_t number = 0;
  const char* end = text.data() + text.size();
  auto [suffix, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || suffix == text.data()) return Err{EINVAL};
  int shift = 0;
  if (suffix != end) {
    size_t at = std::string_view("KMGT").find(static_cast<char>(std::toupper(*suffix)));
    if (at == std::string_view::npos || suffix + 1 != end) return Err{EINVAL};
    shift = 10 * static_cast<int>(at + 1);
  }
  if (number > (UINT64_MAX >> shift)) return Err{ERANGE};
  return number << shift;
}

Result<Invocation> parse_command_line(int argc, char** argv, std::string* error) {
  Invocation invocation;
  std::vector<std::string> positional;
  bool stats = false;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-') {
      positional.emplace_back(arg);
    } else if (arg == "--") {
      only_positional = true;
    } else if (arg == "-h" || arg == "--help" || arg == "-V" || arg == "--version") {
      invocation.command = arg == "-h" || arg == "--help" ? Command::kHelp : Command::kVersion;
      return invocation;
    } else if (arg == "--stats") {
      stats = true;
    } else if (arg == "-o") {
      if (++i == argc) return usage_error(error, "option -o needs a list of mount options");
      PAGEFS_TRY(apply_option_list(argv[i], invocation.config, error));
    } else if (arg.starts_with("-o")) {
      PAGEFS_TRY(apply_option_list(arg.substr(2), invocation.config, error));
    } else if (!apply_flags(arg, invocation.config)) {
      return usage_error(error, "unknown option '" + std::string(arg) + "' (see pagefs --help)");
    }
  }
  return finish(std::move(invocation), stats, positional, error);
}

const char* usage_text() {
  return "Usage: pagefs DEVICE MOUNTPOINT [-f] [-d] [-s] [-o option[,option...]]\n"
         "       pagefs stats MOUNTPOINT [-i SECONDS [-c COUNT]] [--json | --prometheus]\n"
         "       pagefs resize DEVICE [SIZE]\n"
         "       pagefs --help | --version\n"
         "\n"
         "Mounts the pagefs filesystem on DEVICE (a file or block device formatted\n"
         "with mkfs.pagefs) at MOUNTPOINT. Also usable as `mount -t pagefs`.\n"
         "`pagefs stats --help` and `pagefs resize --help` describe the subcommands;\n"
         "a device named stats or resize is written ./stats or ./resize.\n"
         "\n"
         "  -f                 stay in the foreground, log to stderr\n"
         "  -d                 debug: foreground, trace every FUSE request\n"
         "  -s                 serve requests on a single thread\n"
         "  --stats MOUNTPOINT the same as `pagefs stats MOUNTPOINT`\n"
         "  -h, --help         show this help\n"
         "  -V, --version      show the version\n"
         "\n"
         "Mount options (-o):\n"
         "  cache_size=SIZE    page cache budget, K/M/G suffix (default 256M, minimum 4M)\n"
         "  commit=SECONDS     dirty data reaches the device within this (default 5)\n"
         "  commit_nice=N      the commit thread's nice value, -20..19 (default 0)\n"
         "  queue_depth=N      I/O requests in flight per io_uring ring (default 64)\n"
         "  max_write_iops=N   cap background write-back at N requests/s (default: none)\n"
         "  max_write_mbps=N   cap background write-back at N MB/s (default: none)\n"
         "  cache=private      file data is cached only by pagefs (default)\n"
         "  cache=kernel       file data also goes through the kernel page cache\n"
         "  ro, rw             mount read-only / read-write (default rw)\n"
         "  allow_other        let other users in (needs user_allow_other in\n"
         "                     /etc/fuse.conf unless run as root)\n"
         "  fsname=NAME        name shown in mount tables (default: DEVICE)\n"
         "  default_permissions  always on: the kernel checks mode bits and ACLs\n"
         "  acl                POSIX ACLs are stored and enforced (default)\n"
         "  noacl              ACLs are refused (EOPNOTSUPP); mode bits only\n"
         "  relatime           a read stores atime when it is not after mtime or ctime,\n"
         "                     or is a day old (default; also atime, norelatime)\n"
         "  noatime            reads never store atime\n"
         "  strictatime        every read stores atime\n"
         "  nodiratime, lazytime  accepted: listings never store atime, and times\n"
         "                     are committed with the running transaction\n"
         "  nosuid, nodev, noexec, suid, dev, exec, sync, async, dirsync\n"
         "                     passed to the kernel\n"
         "  Generic options of mount(8) (defaults, auto, noauto, user, nouser, users,\n"
         "  _netdev, nofail, x-*, comment=...) are accepted and ignored.\n";
}

}  // namespace pagefs
