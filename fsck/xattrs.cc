// Pass 3, the xattrs: each item's name and value, and for a value kept in
// data pages (XattrPages, format.h) the record, the pages it claims and their
// CRC32Cs, read with the file data pages. An inline POSIX ACL is checked
// against the ACL format (one kept in data pages is not read whole: only its
// pages' CRCs are checked).
//
// What a repair does: an item the engine would refuse (engine/items.h: its
// record, its pages inside the data region), a duplicate name, a name with a
// NUL byte, an inline ACL that is not one, or a value naming a page another
// owner claimed first is removed (-y); a missing xattr_pages feature bit is
// set (-p). A value page that fails its CRC, or holds bytes past the value's
// end, is the user's data: it is reported and left (reads of the value fail
// with EIO), as a file's data page is; setfattr -x removes the attribute.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/crc32c.h"
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
  InodeInfo& owner = owner_of(key);
  const std::string value(reinterpret_cast<const char*>(cell.value), cell.value_len);
  decide_xattr_crc(value);
  std::string why;
  if (!engine_accepts(key, value, &why)) {
    return drop_item(key, Fix::kRepair, key.ino, "xattr %s: %s", to_string(key).c_str(),
                     why.c_str());
  }
  XattrValue xv;
  memcpy(&xv, value.data(), sizeof(xv));
  const std::string_view name(value.data() + sizeof(xv), xv.name_len);
  const std::string shown = printable(name);
  if (name.find('\0') != std::string_view::npos || !check_duplicate_name(key, name)) {
    return drop_item(key, Fix::kRepair, key.ino, "xattr '%s' is a duplicate or has a NUL byte",
                     shown.c_str());
  }
  // The value's CRC32C, when the item has one: an inline value is checked
  // here, one in pages read whole for it.
  const uint8_t* rest = cell.value + sizeof(xv) + xv.name_len;
  uint16_t rest_len = xv.value_len;
  uint32_t value_crc = 0;
  if (xv.flags & kXattrCrc) {
    memcpy(&value_crc, rest, kXattrCrcBytes);
    rest += kXattrCrcBytes;
    rest_len -= kXattrCrcBytes;
  }
  if (xv.flags & kXattrInPages) {
    if (!check_xattr_pages(key, shown, rest, rest_len)) return;
    if (xv.flags & kXattrCrc) check_xattr_value_crc(key, shown, rest, value_crc);
  } else if ((xv.flags & kXattrCrc) && crc32c(rest, rest_len) != value_crc) {
    report_.inode(Fix::kNone, key.ino, "",
                  "the value of xattr '%s' fails its checksum; reads of it return EIO "
                  "(setfattr -x removes the attribute)",
                  shown.c_str());
  } else if (is_acl_name(name)) {
    if (const char* problem = acl_problem(rest, rest_len)) {
      return drop_item(key, Fix::kRepair, key.ino, "xattr '%s' is not a valid ACL: it %s",
                       shown.c_str(), problem);
    }
  }
  owner.other_items++;
}

// A value in pages (its record checked by engine_accepts): the feature bit
// that lets a mount read it, then each page claimed and queued for its CRC
// and its zero tail. False if the item is removed.
bool Checker::check_xattr_pages(const Key& key, const std::string& shown, const uint8_t* record,
                                uint16_t record_len) {
  if (!(sb_.features_incompat & kIncompatXattrPages)) {
    report_.at(Fix::kPreen, "superblock", "set it",
               "lacks the xattr_pages feature, which xattr '%s' of inode %llu needs", shown.c_str(),
               ull(key.ino));
    sb_.features_incompat |= kIncompatXattrPages;
    plan_.rewrite_superblock = true;
  }
  XattrPages xp;
  memcpy(&xp, record, sizeof(xp));
  std::vector<XattrPage> pages(xp.pages);
  for (uint32_t i = 0; i < xp.pages; i++) {
    memcpy(&pages[i], record + sizeof(xp) + sizeof(XattrPage) * i, sizeof(XattrPage));
  }
  (void)record_len;  // engine_accepts matched it to the page count
  for (uint32_t i = 0; i < xp.pages; i++) {
    bool again = referenced_.test(pages[i].phys);
    for (uint32_t j = 0; j < i; j++) again |= pages[j].phys == pages[i].phys;
    if (again) {
      drop_item(key, Fix::kRepair, key.ino,
                "xattr '%s' keeps its value in page %llu, which is already in use", shown.c_str(),
                ull(pages[i].phys));
      return false;
    }
  }
  for (uint32_t i = 0; i < xp.pages; i++) {
    (void)claim(pages[i].phys);  // checked above: free until now
    const uint64_t end = std::min<uint64_t>(page_size_, xp.value_bytes - uint64_t{i} * page_size_);
    DataCheck check{pages[i].phys, pages[i].crc, key.ino, key, i, 0};
    check.xattr = true;
    check.zero_from = uint32_t(end);
    queue_data_check(check);
  }
  return true;
}

// The CRC32C of a value kept in pages (kXattrCrc): its pages read whole, in
// order. A page that fails its own CRC is left to verify_xattr_page, which
// reports it; a value whose pages pass theirs but not the value's own was
// cut or grown by a wrong value_bytes, or assembled from the wrong pages.
void Checker::check_xattr_value_crc(const Key& key, const std::string& shown, const uint8_t* record,
                                    uint32_t value_crc) {
  XattrPages xp;
  memcpy(&xp, record, sizeof(xp));
  const size_t bytes = size_t(xp.pages) * page_size_;
  std::unique_ptr<uint8_t, void (*)(void*)> buf(
      static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)), &std::free);
  if (!buf) return;
  for (uint32_t i = 0; i < xp.pages; i++) {
    XattrPage page;
    memcpy(&page, record + sizeof(xp) + sizeof(XattrPage) * i, sizeof page);
    uint8_t* data = buf.get() + size_t(i) * page_size_;
    if (!device_.read_at(page.phys * page_size_, data, page_size_).ok()) return;
    if (crc32c(data, page_size_) != page.crc) return;
  }
  if (crc32c(buf.get(), xp.value_bytes) == value_crc) return;
  report_.inode(Fix::kNone, key.ino, "",
                "the value of xattr '%s' fails its checksum; reads of it return EIO "
                "(setfattr -x removes the attribute)",
                shown.c_str());
}

// A filesystem whose superblock was rebuilt from the layout has no feature
// bits: the first xattr item says whether the image keeps values' CRC32Cs.
void Checker::decide_xattr_crc(const std::string& value) {
  if (!superblock_lost_ || xattr_crc_decided_ || value.size() < sizeof(XattrValue)) return;
  xattr_crc_decided_ = true;
  XattrValue xv;
  memcpy(&xv, value.data(), sizeof(xv));
  if (!(xv.flags & kXattrCrc) || (sb_.features_incompat & kIncompatXattrCrc)) return;
  report_.at(Fix::kPreen, "superblock", "set it",
             "rebuilt without the xattr_crc feature, which its xattrs have");
  sb_.features_incompat |= kIncompatXattrCrc;
  plan_.rewrite_superblock = true;
}

// A value page that fails its CRC, or holds bytes past the value's end: the
// value is the user's, so nothing certain can be done about it.
void Checker::verify_xattr_page(const DataCheck& check, const uint8_t* data) {
  const char* wrong = nullptr;
  if (crc32c(data, page_size_) != check.crc) {
    wrong = "fails its checksum; reads of the value return EIO";
  } else {
    const uint8_t* tail = data + check.zero_from;
    const size_t tail_bytes = page_size_ - check.zero_from;
    if (tail_bytes > 0 && (tail[0] != 0 || memcmp(tail, tail + 1, tail_bytes - 1) != 0)) {
      wrong = "holds bytes past the value's end";
    }
  }
  if (wrong == nullptr) return;
  report_.inode(Fix::kNone, check.ino, "",
                "page %u of the value of xattr %s %s (setfattr -x removes the attribute)",
                check.index, to_string(check.extent).c_str(), wrong);
}

}  // namespace pagefs::fsck
