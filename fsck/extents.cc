// Pass 3, the extents: file data mapping and the data pages themselves.
//
// Every written data page is read (in batches of kBatchPages, queued as the
// walk meets extents) and its CRC32C compared with the one its extent holds.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "engine/crc32c.h"
#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

}  // namespace

void Checker::check_extent_item(const Cell& cell) {
  const Key& key = cell.key;
  InodeInfo* owner = owner_of(key, "extent");
  ExtentValue ev;
  if (cell.value_len < sizeof(ev)) {
    report_.error("extent %s is malformed", to_string(key).c_str());
    return;
  }
  memcpy(&ev, cell.value, sizeof(ev));
  if (ev.pages < 1 || ev.pages > kMaxExtentPages || ev.reserved != 0 ||
      cell.value_len != extent_value_size(ev.pages)) {
    report_.error("extent %s is malformed (%u pages, %u value bytes)", to_string(key).c_str(),
                  ev.pages, cell.value_len);
    return;
  }
  if ((uint64_t{ev.unwritten_mask} >> ev.pages) != 0) {
    report_.error("extent %s has unwritten bits past its %u pages", to_string(key).c_str(),
                  ev.pages);
  }
  const uint64_t max_file_pages = uint64_t(INT64_MAX) / page_size_;
  if (key.off > max_file_pages - ev.pages) {
    report_.error("extent %s lies past the largest file size", to_string(key).c_str());
    return;
  }
  if (key.ino == extent_ino_ && key.off < extent_end_) {
    report_.error("extents of inode %llu overlap at file page %llu", ull(key.ino), ull(key.off));
  }
  extent_end_ =
      key.ino == extent_ino_ ? std::max(extent_end_, key.off + ev.pages) : key.off + ev.pages;
  extent_ino_ = key.ino;
  if (ev.phys < sb_.data_start || ev.phys >= sb_.page_count ||
      ev.pages > sb_.page_count - ev.phys) {
    report_.error("extent %s points outside the data region (pages %llu..%llu)",
                  to_string(key).c_str(), ull(ev.phys), ull(ev.phys + ev.pages - 1));
    return;
  }
  if (owner != nullptr && !S_ISREG(owner->mode) && !S_ISLNK(owner->mode)) {
    report_.error("inode %llu has extents but is not a regular file or symlink", ull(key.ino));
    owner = nullptr;
  }
  check_extent_pages(key, ev, cell.value + sizeof(ev), owner);
}

// Claims the extent's device pages and queues its written pages for their CRC.
// owner is null when the inode is missing or cannot have data.
void Checker::check_extent_pages(const Key& key, const ExtentValue& ev, const uint8_t* crcs,
                                 InodeInfo* owner) {
  const bool symlink = owner != nullptr && S_ISLNK(owner->mode);
  const uint64_t target_pages = symlink ? (owner->size + page_size_ - 1) / page_size_ : 0;
  if (symlink && key.off + ev.pages > target_pages) {
    report_.error("symlink %llu has an extent past its %llu-byte target", ull(key.ino),
                  ull(owner->size));
  }
  for (uint32_t i = 0; i < ev.pages; i++) {
    const uint64_t phys = ev.phys + i;
    const uint64_t file_page = key.off + i;
    if (!claim(phys)) {
      report_.error("page %llu is claimed twice (again by inode %llu at offset %llu)", ull(phys),
                    ull(key.ino), ull(file_page * page_size_));
      continue;
    }
    if (owner != nullptr) owner->extent_pages++;
    const uint64_t file_offset = file_page * page_size_;
    const bool in_target = symlink && file_offset < owner->size;
    if ((ev.unwritten_mask >> i) & 1) {
      if (in_target) report_.error("symlink %llu has an unwritten target page", ull(key.ino));
      continue;
    }
    uint32_t crc;
    memcpy(&crc, crcs + 4 * size_t{i}, sizeof(crc));
    const uint32_t symlink_bytes =
        in_target ? uint32_t(std::min<uint64_t>(page_size_, owner->size - file_offset)) : 0;
    queue_data_check(DataCheck{phys, crc, key.ino, file_page, symlink_bytes});
  }
}

void Checker::queue_data_check(const DataCheck& check) {
  data_checks_.push_back(check);
  if (data_checks_.size() >= kBatchPages) flush_data_checks();
}

bool Checker::flush_data_checks() {
  if (fatal_) return false;
  const size_t n = data_checks_.size();
  if (n == 0) return true;
  uint64_t pages[kBatchPages];
  for (size_t i = 0; i < n; i++) pages[i] = data_checks_[i].phys;
  if (!read_pages(pages, n, *data_buf_)) return false;
  for (size_t i = 0; i < n; i++) {
    verify_data_page(data_checks_[i], data_buf_->data() + i * page_size_);
  }
  data_pages_verified_ += n;
  data_checks_.clear();
  return true;
}

void Checker::verify_data_page(const DataCheck& check, const uint8_t* data) {
  if (crc32c(data, page_size_) != check.crc) {
    if (check.xattr) {
      report_.error("checksum mismatch in page %llu of an xattr value of inode %llu (page %llu)",
                    ull(check.file_page), ull(check.ino), ull(check.phys));
    } else {
      report_.error("checksum mismatch in inode %llu at offset %llu (page %llu)", ull(check.ino),
                    ull(check.file_page * page_size_), ull(check.phys));
    }
    return;
  }
  if (check.xattr) {
    const uint8_t* tail = data + check.zero_from;
    const size_t tail_bytes = page_size_ - check.zero_from;
    if (tail_bytes > 0 && (tail[0] != 0 || memcmp(tail, tail + 1, tail_bytes - 1) != 0)) {
      report_.error("page %llu of an xattr value of inode %llu has bytes past the value's end",
                    ull(check.phys), ull(check.ino));
    }
    return;
  }
  if (memchr(data, 0, check.symlink_bytes) != nullptr) {
    report_.error("symlink %llu has a NUL byte inside its target", ull(check.ino));
  }
}

}  // namespace pagefs::fsck
