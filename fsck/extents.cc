// Pass 3, the extents: file data mapping and the data pages themselves.
//
// Every written data page is read (in batches of kBatchPages, queued as the
// walk meets extents) and its CRC32C compared with the one its extent holds.
// An extent that cannot be right (outside the data region, overlapping
// another extent of its file, on an inode that holds no data) is removed; one
// whose pages another owner claimed first (a tree node, an earlier extent) is
// given fresh copies of them by the repair, so that neither owner loses data.
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
  InodeInfo& owner = owner_of(key);
  ExtentValue ev;
  if (cell.value_len < sizeof(ev)) {
    return drop_item(key, Fix::kRepair, key.ino, "extent %s is malformed", to_string(key).c_str());
  }
  memcpy(&ev, cell.value, sizeof(ev));
  if (ev.pages < 1 || ev.pages > kMaxExtentPages || cell.value_len != extent_value_size(ev.pages)) {
    return drop_item(key, Fix::kRepair, key.ino, "extent %s is malformed (%u pages, %u bytes)",
                     to_string(key).c_str(), ev.pages, cell.value_len);
  }
  if (!check_extent_place(key, ev, owner)) return;
  std::string value(reinterpret_cast<const char*>(cell.value), cell.value_len);
  const uint32_t mask = ev.pages == 32 ? ~0u : (1u << ev.pages) - 1;
  if (ev.reserved != 0 || (ev.unwritten_mask & ~mask) != 0) {
    report_.inode(Fix::kPreen, key.ino, "clear them",
                  "extent at file offset %llu has reserved bits set", ull(key.off * page_size_));
    ev.reserved = 0;
    ev.unwritten_mask &= mask;
    memcpy(value.data(), &ev, sizeof(ev));
    plan_.edits[key] = value;
  }
  std::string why;
  if (!engine_accepts(key, value, &why)) {
    return drop_item(key, Fix::kRepair, key.ino, "extent %s: %s", to_string(key).c_str(),
                     why.c_str());
  }
  extent_end_ =
      key.ino == extent_ino_ ? std::max(extent_end_, key.off + ev.pages) : key.off + ev.pages;
  extent_ino_ = key.ino;
  owner.other_items++;
  owner.extent_end = std::max(owner.extent_end, key.off + ev.pages);
  check_extent_pages(key, ev, cell.value + sizeof(ev), owner);
}

// Where the extent lies, in the file and on the device; false (and the
// extent removed) if it cannot stay.
bool Checker::check_extent_place(const Key& key, const ExtentValue& ev, InodeInfo& owner) {
  const uint64_t max_file_pages = uint64_t(INT64_MAX) / page_size_;
  const char* wrong = nullptr;
  if (key.off > max_file_pages - ev.pages) {
    wrong = "lies past the largest file size";
  } else if (key.ino == extent_ino_ && key.off < extent_end_) {
    wrong = "overlaps the file's previous extent";
  } else if (ev.phys < sb_.data_start || ev.phys >= sb_.page_count ||
             ev.pages > sb_.page_count - ev.phys) {
    wrong = "points outside the data region";
  } else if (owner.has_record && !S_ISREG(owner.rec.mode) && !S_ISLNK(owner.rec.mode)) {
    wrong = "belongs to an inode that is neither a regular file nor a symlink";
  } else if (owner.has_record && S_ISLNK(owner.rec.mode) &&
             (key.off + ev.pages) * page_size_ > owner.rec.size + page_size_ - 1) {
    wrong = "lies past the end of the symlink's target";
  }
  if (wrong == nullptr) return true;
  drop_item(key, Fix::kRepair, key.ino, "extent at file offset %llu (pages %llu..%llu) %s",
            ull(key.off * page_size_), ull(ev.phys), ull(ev.phys + ev.pages - 1), wrong);
  return false;
}

// Claims the extent's device pages and queues its written pages for their CRC.
void Checker::check_extent_pages(const Key& key, ExtentValue& ev, const uint8_t* crcs,
                                 InodeInfo& owner) {
  const bool symlink = owner.has_record && S_ISLNK(owner.rec.mode);
  bool shared = false;
  for (uint32_t i = 0; i < ev.pages; i++) {
    const uint64_t phys = ev.phys + i;
    const uint64_t file_offset = (key.off + i) * page_size_;
    if (!claim(phys)) shared = true;
    owner.extent_pages++;
    const bool in_target = symlink && file_offset < owner.rec.size;
    if ((ev.unwritten_mask >> i) & 1) {
      if (in_target) owner.broken_link = true;
      continue;
    }
    uint32_t crc;
    memcpy(&crc, crcs + 4 * size_t{i}, sizeof(crc));
    const uint32_t symlink_bytes =
        in_target ? uint32_t(std::min<uint64_t>(page_size_, owner.rec.size - file_offset)) : 0;
    queue_data_check(DataCheck{phys, crc, key.ino, key, i, symlink_bytes});
  }
  if (shared) {
    plan_.relocate.push_back(key);
    shared_extents_.push_back(SharedExtent{key, ev.phys, ev.pages});
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
  advance(n);
  data_checks_.clear();
  return true;
}

// A page that fails its CRC is reported with the file and offset it holds.
// It stays as it is (reads of it return EIO) unless -E zero_bad_data asks
// for zeros, so that the rest of the file can be used.
void Checker::verify_data_page(const DataCheck& check, const uint8_t* data) {
  if (check.xattr) return verify_xattr_page(check, data);
  const uint64_t offset = (check.extent.off + check.index) * page_size_;
  if (crc32c(data, page_size_) != check.crc) {
    InodeInfo& owner = inodes_[check.ino];
    if (owner.has_record && S_ISLNK(owner.rec.mode)) {
      owner.broken_link = true;
      return;
    }
    if (options_.zero_bad_data) {
      report_.inode(Fix::kRepair, check.ino, "replace it with zeros",
                    "data at offset %llu fails its checksum", ull(offset));
      plan_.zero_pages.push_back(ZeroPage{check.extent, check.index});
    } else {
      report_.inode(Fix::kNone, check.ino, "",
                    "data at offset %llu fails its checksum; reads there return EIO "
                    "(-E zero_bad_data replaces it with zeros)",
                    ull(offset));
    }
    return;
  }
  if (memchr(data, 0, check.symlink_bytes) != nullptr) inodes_[check.ino].broken_link = true;
}

}  // namespace pagefs::fsck
