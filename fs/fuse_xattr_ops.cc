// Extended attribute handlers.
//
// A size-0 request asks how large the value (or name list) is; a buffer that is
// too small is ERANGE. POSIX ACL names are refused with EOPNOTSUPP: the mount
// checks permissions with mode bits only (default_permissions, no
// FUSE_CAP_POSIX_ACL), so storing an ACL would pretend to a protection that is
// not enforced.
//
// The root directory carries two virtual attributes that listxattr does not
// show: "user.pagefs.stats", read-only, a text block of the engine's counters,
// which `pagefs --stats MOUNTPOINT` prints; and "user.pagefs.scrub", the
// control channel of the online scrub (fs/scrub_xattr.h): reading it reports
// the running or last scrub, setting it to "start [rate=N]" or "cancel"
// starts or stops one. Removing either, or setting the first, is EPERM.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "fs/fuse_ops.h"
#include "fs/scrub_xattr.h"
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
  return name.starts_with("system.posix_acl_");
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

// Formats the engine's counters, one "name: value" line each.
size_t format_stats(const FsStats& s, char* buffer, size_t size) {
  int len =
      std::snprintf(buffer, size,
                    "page_size: %" PRIu64 "\ntotal_pages: %" PRIu64 "\nfree_pages: %" PRIu64
                    "\ninodes: %" PRIu64 "\nchecksum_errors: %" PRIu64 "\nmetadata_errors: %" PRIu64
                    "\ncache_hits: %" PRIu64 "\ncache_misses: %" PRIu64 "\ncache_frames: %" PRIu64
                    "\npages_read: %" PRIu64 "\npages_written: %" PRIu64
                    "\nscrub_state: %s\nscrub_finished: %" PRId64 "\nscrub_pages_checked: %" PRIu64
                    "\nscrub_errors: %" PRIu64 "\nscrub_repaired: %" PRIu64 "\n",
                    s.page_size, s.total_pages, s.free_pages, s.inodes, s.checksum_errors,
                    s.metadata_errors, s.cache_hits, s.cache_misses, s.cache_frames, s.pages_read,
                    s.pages_written, scrub_state_name(s.scrub_state), s.scrub_finished,
                    s.scrub_pages_checked, s.scrub_errors, s.scrub_repaired);
  return len < 0 ? 0 : std::min(static_cast<size_t>(len), size - 1);
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
  if (is_stats_xattr(ino, name) || is_acl_xattr(name)) {
    fuse_reply_err(req, is_acl_xattr(name) ? EOPNOTSUPP : EPERM);
    return;
  }
  FuseAdapter::reply_status(req, FuseAdapter::from(req).fs().setxattr(
                                     InodeNo{ino}, name, std::string_view(value, size), flags));
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  FileSystem& fs = FuseAdapter::from(req).fs();
  if (is_scrub_xattr(ino, name)) {
    reply_xattr(req, format_scrub_status(fs.scrub_status()), size);
    return;
  }
  if (is_stats_xattr(ino, name)) {
    char text[2048];
    reply_xattr(req, std::string_view(text, format_stats(fs.stats(), text, sizeof text)), size);
    return;
  }
  if (is_acl_xattr(name)) {
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
  if (is_stats_xattr(ino, name) || is_scrub_xattr(ino, name) || is_acl_xattr(name)) {
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
