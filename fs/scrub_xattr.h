// The control channel of the online scrub: a virtual attribute on the root
// directory of a pagefs mount (fs/fuse_xattr_ops.cc serves it, `pagefs
// scrub` in fs/scrub_command.cc uses it), like user.pagefs.stats.
//
//   setxattr user.pagefs.scrub "start"            start a scrub (EBUSY if one runs)
//   setxattr user.pagefs.scrub "start rate=50"    ... limited to 50 MB/s
//   setxattr user.pagefs.scrub "cancel"           stop a running scrub
//   getxattr user.pagefs.scrub                    the running or last scrub:
//
//     state: running            (never, running, done, cancelled, failed)
//     started: 1795000000       (seconds since the epoch; 0: never)
//     finished: 0
//     pages_checked: 12345
//     pages_total: 27000
//     errors: 1
//     repaired: 0
//     rate_mbps: 0              (0: about a quarter of the device's time)
//     damage: page 1034 data damaged /docs/big.bin offset 20480: checksum mismatch
//
// Damage lines stop before the text would pass what getxattr can return
// (64 KiB); "damage_more: N" counts the rest. An xattr is used rather than an
// ioctl because FUSE passes xattrs to the daemon on any kernel, and the
// permission to start a scrub is then the permission to set an xattr on the
// root (root, or its owner).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/filesystem.h"

namespace pagefs {

inline constexpr std::string_view kScrubXattrName = "user.pagefs.scrub";
inline constexpr size_t kScrubStatusMax = 60 * 1024;

// The getxattr text of a status.
std::string format_scrub_status(const ScrubStatus& status);

// A setxattr command: start (with options) or cancel; nullopt if malformed.
struct ScrubCommand {
  bool cancel = false;
  ScrubOptions options;
};
std::optional<ScrubCommand> parse_scrub_command(std::string_view text);

}  // namespace pagefs
