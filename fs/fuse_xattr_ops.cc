// Extended attribute handlers.
//
// A size-0 request asks how large the value (or name list) is; a buffer that is
// too small is ERANGE. The POSIX ACL names reach the engine, which keeps ACLs
// in step with the mode (engine/posix_acl.h), only when the kernel enforces
// them (FuseAdapter::acls_enforced); otherwise they are EOPNOTSUPP, since
// storing an ACL would pretend to a protection that is not there. Setting an
// access ACL clears setgid when the caller is neither root nor in the file's
// group, as the kernel's posix_acl_update_mode does.
//
// The root directory carries two virtual attributes that listxattr does not
// show: "user.pagefs.stats", read-only, a text block of the daemon's counters
// and histograms (fs/stats_text.h), which `pagefs stats MOUNTPOINT` reads; and
// "user.pagefs.scrub", the control channel of the online scrub
// (fs/scrub_xattr.h): reading it reports the running or last scrub, setting
// it to "start [rate=N]" or "cancel" starts or stops one. Removing either, or
// setting the first, is EPERM.
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

#include "engine/posix_acl.h"
#include "fs/fuse_ops.h"
#include "fs/scrub_xattr.h"
#include "fs/stats_text.h"
#include "fs/stats_xattr.h"

namespace pagefs {
namespace {

bool is_stats_xattr(fuse_ino_t ino, std::string_view name) {
  return ino == kRootInode.value && name == kStatsXattrName;
}

bool is_scrub_xattr(fuse_ino_t ino, std::string_view name) {
  return ino == kRootInode.value && name == kScrubXattrName;
}

bool is_acl_xattr(std::string_view name) {
  return name == kAclAccessXattr || name == kAclDefaultXattr;
}

// ACL names are refused where the kernel does not enforce ACLs.
bool refused_acl(fuse_req_t req, std::string_view name) {
  return is_acl_xattr(name) && !FuseAdapter::from(req).acls_enforced();
}

// The S_ISGID bit that setting an access ACL clears (posix_acl_update_mode).
Result<uint32_t> acl_clear_mode(fuse_req_t req, fuse_ino_t ino, std::string_view name) {
  if (name != kAclAccessXattr || fuse_req_ctx(req)->uid == 0) return 0u;
  PAGEFS_ASSIGN(Attr attr, FuseAdapter::from(req).fs().getattr(InodeNo{ino}));
  return FuseAdapter::caller_in_group(req, attr.gid) ? 0u : uint32_t(S_ISGID);
}

// Answers a value or name-list request of `size` bytes (0: just the length).
void reply_xattr(fuse_req_t req, std::string_view value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

// "start [rate=N]" or "cancel" on the scrub's control attribute.
void set_scrub_xattr(fuse_req_t req, std::string_view text) {
  FileSystem& fs = FuseAdapter::from(req).fs();
  std::optional<ScrubCommand> command = parse_scrub_command(text);
  if (!command) {
    fuse_reply_err(req, EINVAL);
  } else if (command->cancel) {
    fs.scrub_cancel();
    fuse_reply_err(req, 0);
  } else {
    FuseAdapter::reply_status(req, fs.scrub_start(command->options));
  }
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) noexcept {
  if (is_scrub_xattr(ino, name)) return set_scrub_xattr(req, std::string_view(value, size));
  if (is_stats_xattr(ino, name) || refused_acl(req, name)) {
    fuse_reply_err(req, is_acl_xattr(name) ? EOPNOTSUPP : EPERM);
    return;
  }
  Result<uint32_t> clear_mode = acl_clear_mode(req, ino, name);
  if (!clear_mode.ok()) {
    fuse_reply_err(req, clear_mode.error());
    return;
  }
  FuseAdapter::reply_status(
      req, FuseAdapter::from(req).fs().setxattr(InodeNo{ino}, name, std::string_view(value, size),
                                                flags, *clear_mode));
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  FileSystem& fs = adapter.fs();
  if (is_scrub_xattr(ino, name)) {
    reply_xattr(req, format_scrub_status(fs.scrub_status()), size);
    return;
  }
  if (is_stats_xattr(ino, name)) {
    DaemonInfo daemon{getpid(), adapter.options().device, adapter.uptime_ms()};
    reply_xattr(req, format_stats(fs.stats_report(), adapter.request_stats(), daemon), size);
    return;
  }
  if (refused_acl(req, name)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  Result<std::string> value = fs.getxattr(InodeNo{ino}, name);
  if (!value.ok()) {
    fuse_reply_err(req, value.error());
    return;
  }
  reply_xattr(req, *value, size);
}

// trusted.* names are shown only to root, as the kernel does for local
// filesystems (it already refuses others reading or setting them).
std::string visible_names(const std::string& names, bool privileged) {
  if (privileged) return names;
  std::string out;
  for (size_t at = 0; at < names.size();) {
    size_t end = names.find('\0', at);
    if (end == std::string::npos) end = names.size();
    std::string_view name(names.data() + at, end - at);
    if (!name.starts_with("trusted.")) out.append(name).push_back('\0');
    at = end + 1;
  }
  return out;
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  Result<std::string> names = FuseAdapter::from(req).fs().listxattr(InodeNo{ino});
  if (!names.ok()) {
    fuse_reply_err(req, names.error());
    return;
  }
  reply_xattr(req, visible_names(*names, fuse_req_ctx(req)->uid == 0), size);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept {
  if (is_stats_xattr(ino, name) || is_scrub_xattr(ino, name) || refused_acl(req, name)) {
    fuse_reply_err(req, is_acl_xattr(name) ? EOPNOTSUPP : EPERM);
    return;
  }
  FuseAdapter::reply_status(req, FuseAdapter::from(req).fs().removexattr(InodeNo{ino}, name));
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
}

}  // namespace pagefs
