// Pass 3, the xattrs: each item's name and value, and for a value kept in
// data pages (XattrPages, format.h) the record, the pages it claims and their
// CRC32Cs, read with the file data pages. An inline POSIX ACL is checked
// against the ACL format (one kept in data pages is not read whole: only its
// pages' CRCs are checked).
#include <cstring>
#include <string_view>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

// The POSIX ACL xattrs, in Linux's xattr form: a u32 version 2, then entries
// {u16 tag, u16 perm, u32 id}. The rules are the engine's (engine/posix_acl.h),
// written out again here so that fsck stays an independent reader.
bool is_acl_name(std::string_view name) {
  return name == "system.posix_acl_access" || name == "system.posix_acl_default";
}

// The order of tags: user_obj, users, group_obj, groups, mask, other.
int acl_rank(uint16_t tag) {
  switch (tag) {
    case 0x01:
      return 0;
    case 0x02:
      return 1;
    case 0x04:
      return 2;
    case 0x08:
      return 3;
    case 0x10:
      return 4;
    case 0x20:
      return 5;
    default:
      return -1;
  }
}

// Why `value` is not a valid ACL, or nullptr.
const char* acl_problem(const uint8_t* value, size_t len) {
  constexpr size_t kMaxEntries = 1024;
  uint32_t version = 0;
  if (len < 4 || (len - 4) % 8 != 0 || (len - 4) / 8 > kMaxEntries) return "has a bad size";
  memcpy(&version, value, 4);
  if (version != 2) return "has an unknown version";
  int prev_rank = -1, base = 0;
  uint32_t prev_id = 0;
  bool named = false, mask = false;
  for (size_t at = 4; at < len; at += 8) {
    uint16_t tag, perm;
    uint32_t id;
    memcpy(&tag, value + at, 2);
    memcpy(&perm, value + at + 2, 2);
    memcpy(&id, value + at + 4, 4);
    const int rank = acl_rank(tag);
    const bool repeatable = tag == 0x02 || tag == 0x08;
    if (rank < 0) return "has an entry of an unknown tag";
    if (perm > 7) return "has permissions beyond rwx";
    if (rank < prev_rank || (rank == prev_rank && (!repeatable || id <= prev_id))) {
      return "has entries out of order or repeated";
    }
    named |= repeatable;
    mask |= tag == 0x10;
    base += tag == 0x01 || tag == 0x04 || tag == 0x20;
    prev_rank = rank;
    prev_id = id;
  }
  if (base != 3) return "lacks an owner, owning group or other entry";
  if (named && !mask) return "names users or groups without a mask";
  return nullptr;
}

}  // namespace

void Checker::check_xattr_item(const Cell& cell) {
  const Key& key = cell.key;
  owner_of(key, "xattr");
  XattrValue xv;
  if (cell.value_len < sizeof(xv)) {
    report_.error("xattr %s is malformed", to_string(key).c_str());
    return;
  }
  memcpy(&xv, cell.value, sizeof(xv));
  if (xv.name_len == 0 || (xv.flags != 0 && xv.flags != kXattrInPages) ||
      cell.value_len != sizeof(xv) + size_t{xv.name_len} + xv.value_len) {
    report_.error("xattr %s is malformed", to_string(key).c_str());
    return;
  }
  const std::string_view name(reinterpret_cast<const char*>(cell.value) + sizeof(xv), xv.name_len);
  if (name.find('\0') != std::string_view::npos) {
    report_.error("xattr name '%s' of inode %llu contains a NUL byte", printable(name).c_str(),
                  ull(key.ino));
  }
  if (key.off >> kCookieCollisionBits != name_hash(name.data(), name.size())) {
    report_.error("xattr '%s' of inode %llu has the wrong hash in its key %s",
                  printable(name).c_str(), ull(key.ino), to_string(key).c_str());
  }
  check_duplicate_name(key, name, "xattr");
  const uint8_t* rest = cell.value + sizeof(xv) + xv.name_len;
  if (xv.flags == kXattrInPages) {
    check_xattr_pages(key, name, rest, xv.value_len);
  } else if (is_acl_name(name)) {
    if (const char* problem = acl_problem(rest, xv.value_len)) {
      report_.error("xattr '%s' of inode %llu is not a valid ACL: it %s", printable(name).c_str(),
                    ull(key.ino), problem);
    }
  }
}

// A value in pages: the record's fields, then each page claimed and queued
// for its CRC and its zero tail.
void Checker::check_xattr_pages(const Key& key, std::string_view name, const uint8_t* record,
                                uint16_t record_len) {
  const std::string shown = printable(name);
  if (!(sb_.features_incompat & kIncompatXattrPages)) {
    report_.error(
        "xattr '%s' of inode %llu is kept in pages, but the superblock lacks the "
        "xattr_pages feature",
        shown.c_str(), ull(key.ino));
  }
  XattrPages xp;
  if (record_len < sizeof(xp)) {
    report_.error("xattr '%s' of inode %llu has a malformed page record", shown.c_str(),
                  ull(key.ino));
    return;
  }
  memcpy(&xp, record, sizeof(xp));
  const uint32_t want_pages = (uint64_t{xp.value_bytes} + page_size_ - 1) / page_size_;
  if (xp.value_bytes == 0 || xp.value_bytes > kMaxXattrValue || xp.pages != want_pages ||
      xp.reserved != 0 || record_len != xattr_pages_size(xp.pages)) {
    report_.error("xattr '%s' of inode %llu has a malformed page record (%u bytes in %u pages)",
                  shown.c_str(), ull(key.ino), xp.value_bytes, xp.pages);
    return;
  }
  for (uint32_t i = 0; i < xp.pages; i++) {
    XattrPage page;
    memcpy(&page, record + sizeof(xp) + sizeof(page) * i, sizeof(page));
    if (page.phys < sb_.data_start || page.phys >= sb_.page_count) {
      report_.error("xattr '%s' of inode %llu names page %llu, outside the data region",
                    shown.c_str(), ull(key.ino), ull(page.phys));
      continue;
    }
    if (!claim(page.phys)) {
      report_.error("page %llu is claimed twice (again by xattr '%s' of inode %llu)",
                    ull(page.phys), shown.c_str(), ull(key.ino));
      continue;
    }
    const uint64_t end = std::min<uint64_t>(page_size_, xp.value_bytes - uint64_t{i} * page_size_);
    DataCheck check{page.phys, page.crc, key.ino, i, 0};
    check.xattr = true;
    check.zero_from = uint32_t(end);
    queue_data_check(check);
  }
}

}  // namespace pagefs::fsck
