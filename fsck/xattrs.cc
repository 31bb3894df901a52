// Pass 3, the xattrs: each item's name and value, and for a value kept in
// data pages (XattrPages, format.h) the record, the pages it claims and their
// CRC32Cs, read with the file data pages.
#include <cstring>
#include <string_view>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

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
  if (xv.flags == kXattrInPages) {
    check_xattr_pages(key, name, cell.value + sizeof(xv) + xv.name_len, xv.value_len);
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
