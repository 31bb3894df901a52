// PosixAcl: a POSIX access control list as Linux hands it to a filesystem, the
// value of the xattrs system.posix_acl_access and system.posix_acl_default
// (include/uapi/linux/posix_acl_xattr.h): a little-endian u32 version (2),
// then 8-byte entries {u16 tag, u16 perm, u32 id}.
//
// The kernel enforces an ACL (the mount negotiates FUSE_POSIX_ACL, which turns
// on default_permissions); the filesystem stores it and keeps it in step with
// the mode, as ext4 does with the kernel's posix_acl helpers:
//
//   - setting an access ACL sets the mode's permission bits from it (owner
//     from USER_OBJ, group from MASK or, without one, GROUP_OBJ, other from
//     OTHER); an ACL the mode says entirely (no named user or group) is not
//     stored at all;
//   - chmod sets USER_OBJ, MASK (or GROUP_OBJ) and OTHER from the new mode;
//   - a new inode in a directory with a default ACL gets that ACL, masked by
//     the mode its creator asked for, as its access ACL (and a new directory
//     gets it as its default ACL too); the umask is not applied then.
//
// parse() is the only way in, for values from the user and from the device
// alike: an ACL it returns is valid (one USER_OBJ, GROUP_OBJ and OTHER, a MASK
// when there are named entries, entries in the kernel's order, distinct ids,
// permissions of rwx only).
//
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/result.h"

namespace pagefs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

// Entries an ACL may hold. The kernel sends at most a page of them (511 with
// 4 KiB pages); this bound keeps an ACL's value within a few pages.
inline constexpr size_t kMaxAclEntries = 1024;
inline constexpr size_t kMaxAclBytes = 4 + 8 * kMaxAclEntries;

class PosixAcl {
 public:
  // Tags, as <linux/posix_acl.h> numbers them.
  static constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08,
                            kMask = 0x10, kOther = 0x20;
  struct Entry {
    uint16_t tag;
    uint16_t perm;  // bits of 07
    uint32_t id;    // uid or gid for kUser and kGroup; ignored (stored as is) otherwise
  };

  // EINVAL unless `value` is a valid ACL in the xattr format.
  static Result<PosixAcl> parse(std::string_view value);
  // The minimal ACL a mode stands for (three entries).
  static PosixAcl from_mode(uint32_t mode);

  std::string encode() const;
  const std::vector<Entry>& entries() const { return entries_; }

  // The permission bits (0777) the ACL gives the mode.
  uint32_t mode_bits() const;
  // Whether the mode says everything the ACL does: no named user or group.
  bool equivalent_to_mode() const;
  // chmod: USER_OBJ, MASK (or GROUP_OBJ) and OTHER take the bits of `mode`.
  void apply_mode(uint32_t mode);
  // Inheritance: masks the entries by the requested `mode` and returns that
  // mode with its permission bits masked by the ACL in turn. `store` says
  // whether the result must be kept as an access ACL: it has a named entry or
  // a MASK (as Linux's posix_acl_create_masq decides).
  uint32_t create_masq(uint32_t mode, bool* store);

 private:
  Entry* find(uint16_t tag);
  std::vector<Entry> entries_;
};

}  // namespace pagefs
