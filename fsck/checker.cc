#include "fsck/checker.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdarg>
#include <cstring>
#include <utility>

#include "engine/crc32c.h"
#include "engine/superblock.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

bool valid_page_size(uint64_t page_size) {
  return page_size >= kMinPageSize && page_size <= kMaxPageSize &&
         (page_size & (page_size - 1)) == 0;
}

// CRC32C of a metadata page with its crc field taken as zero.
uint32_t meta_page_crc(const uint8_t* page, size_t page_size) {
  static constexpr uint8_t kZero[4] = {};
  constexpr size_t kCrcOffset = offsetof(PageHeader, crc);
  uint32_t crc = crc32c(page, kCrcOffset);
  crc = crc32c_extend(crc, kZero, sizeof(kZero));
  return crc32c_extend(crc, page + kCrcOffset + 4, page_size - kCrcOffset - 4);
}

bool has_super_magics(const Superblock& sb) {
  return sb.header.magic == kPageMagic && memcmp(sb.magic, kSuperMagic, sizeof(kSuperMagic)) == 0;
}

}  // namespace

Checker::Checker(Device& device, std::string device_name, CheckOptions options, Report& report)
    : device_(device), name_(std::move(device_name)), options_(options), report_(report) {}

int Checker::run() {
  report_.pass("Pass 1: checking the superblock");
  if (!check_superblock() || !check_geometry()) return finish();
  const size_t alignment = std::max<size_t>(kIoAlignment, device_.block_size());
  node_buf_ = std::make_unique<AlignedBuffer>(kBatchPages * page_size_, alignment);
  data_buf_ = std::make_unique<AlignedBuffer>(kBatchPages * page_size_, alignment);
  report_.pass("Pass 2: checking the free-space bitmap");
  if (!load_bitmap()) return finish();
  report_.pass("Pass 3: walking the tree and verifying data pages");
  if (!walk_tree()) return finish();
  report_.pass("Pass 4: checking inodes and directories");
  check_inodes();
  report_.pass("Pass 5: checking space accounting");
  check_space();
  check_counters();
  return finish();
}

bool Checker::fatal(const char* fmt, ...) {
  fatal_ = true;
  va_list ap;
  va_start(ap, fmt);
  fputs("fsck.pagefs: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return false;
}

int Checker::finish() {
  report_.finish();
  if (fatal_) return kExitOperational;
  if (report_.count() > 0) {
    printf("%s: %llu error%s found\n", name_.c_str(), ull(report_.count()),
           report_.count() == 1 ? "" : "s");
    return kExitUncorrected;
  }
  printf("%s: clean, %llu inodes, %llu/%llu pages used\n", name_.c_str(), ull(inode_records_),
         ull(referenced_.count()), ull(sb_.page_count));
  return kExitClean;
}

// Reads n pages into consecutive page-sized slots of buf; runs of consecutive
// page numbers become one request.
bool Checker::read_pages(const uint64_t* pages, size_t n, AlignedBuffer& buf) {
  assert(n > 0 && n * page_size_ <= buf.size());
  std::vector<iovec> iov;
  std::vector<uint64_t> offsets;
  iov.reserve(n);
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && pages[i] == pages[i - 1] + 1) {
      iov.back().iov_len += page_size_;
      continue;
    }
    iov.push_back(iovec{buf.data() + i * page_size_, page_size_});
    offsets.push_back(pages[i] * page_size_);
  }
  std::vector<IoRequest> requests(iov.size());
  for (size_t i = 0; i < iov.size(); i++) {
    requests[i] = IoRequest{offsets[i], std::span<const iovec>(&iov[i], 1)};
  }
  Status st = device_.read(requests);
  if (!st.ok()) {
    return fatal("%s: read error in pages %llu..%llu: %s", name_.c_str(), ull(pages[0]),
                 ull(pages[n - 1]), strerror(st.error()));
  }
  return true;
}

bool Checker::claim(uint64_t page) {
  if (referenced_.test(page)) return false;
  referenced_.set(page);
  return true;
}

std::string to_string(const Key& key) {
  char buf[80];
  snprintf(buf, sizeof(buf), "(%llu, %u, %llu)", ull(key.ino), key.kind, ull(key.off));
  return buf;
}

// ---- Pass 1: superblock --------------------------------------------------

// Reads the start of the device, enough to hold both superblock copies for any
// page size (or the whole device if it is smaller).
std::unique_ptr<AlignedBuffer> Checker::read_superblock_area(size_t* area_bytes) {
  const uint64_t block = std::max<uint64_t>(device_.block_size(), kIoAlignment);
  uint64_t bytes = std::min<uint64_t>(device_.size_bytes(), 2 * uint64_t{kMaxPageSize});
  bytes -= bytes % block;
  if (bytes < 2 * kMinPageSize) {
    fatal("%s is not a pagefs filesystem (device too small)", name_.c_str());
    return nullptr;
  }
  auto area = std::make_unique<AlignedBuffer>(bytes, block);
  Status st = device_.read_at(0, area->data(), bytes);
  if (!st.ok()) {
    fatal("%s: cannot read the superblock: %s", name_.c_str(), strerror(st.error()));
    return nullptr;
  }
  *area_bytes = bytes;
  return area;
}

// Classifies the superblock copy at byte `offset` of the area as page `slot`.
Checker::SuperCopy Checker::classify_super_copy(const uint8_t* area, size_t area_bytes,
                                                uint64_t offset, int slot) {
  SuperCopy copy;
  copy.slot = slot;
  if (offset + sizeof(Superblock) > area_bytes) return copy;
  memcpy(&copy.sb, area + offset, sizeof(Superblock));
  const Superblock& sb = copy.sb;
  if (!has_super_magics(sb)) return copy;
  const bool page_fits = valid_page_size(sb.page_size) && offset + sb.page_size <= area_bytes;
  const bool header_ok =
      sb.header.type == uint16_t(PageType::kSuperblock) && sb.header.page_no == uint64_t(slot);
  if (!page_fits || !header_ok || meta_page_crc(area + offset, sb.page_size) != sb.header.crc) {
    copy.state = SuperCopy::kCorrupt;
  } else if (sb.version != kFormatVersion) {
    copy.state = SuperCopy::kOtherVersion;
  } else {
    // The rules a mount applies (engine/superblock.h): a copy it would ignore
    // is not the one to check the filesystem against.
    copy.state = superblock_valid(sb, &copy.why) ? SuperCopy::kValid : SuperCopy::kCorrupt;
  }
  return copy;
}

// Copy 1 lives at page 1, whose offset depends on the page size: the one copy 0
// states if it has a plausible one, otherwise the first page size at which a
// superblock copy stating that same page size is found.
Checker::SuperCopy Checker::find_second_copy(const uint8_t* area, size_t area_bytes,
                                             uint32_t page_size_hint) {
  if (page_size_hint != 0) {
    SuperCopy copy = classify_super_copy(area, area_bytes, page_size_hint, 1);
    if (copy.state != SuperCopy::kAbsent) return copy;
  }
  for (uint64_t ps = kMinPageSize; ps <= kMaxPageSize; ps *= 2) {
    SuperCopy copy = classify_super_copy(area, area_bytes, ps, 1);
    if (copy.state != SuperCopy::kAbsent && copy.sb.page_size == ps) return copy;
  }
  SuperCopy absent;
  absent.slot = 1;
  return absent;
}

bool Checker::check_superblock() {
  size_t area_bytes = 0;
  std::unique_ptr<AlignedBuffer> area = read_superblock_area(&area_bytes);
  if (area == nullptr) return false;
  const SuperCopy copy0 = classify_super_copy(area->data(), area_bytes, 0, 0);
  const bool hint_ok = copy0.state != SuperCopy::kAbsent && valid_page_size(copy0.sb.page_size);
  const SuperCopy copy1 =
      find_second_copy(area->data(), area_bytes, hint_ok ? copy0.sb.page_size : 0);
  return choose_superblock(copy0, copy1);
}

bool Checker::choose_superblock(const SuperCopy& copy0, const SuperCopy& copy1) {
  const SuperCopy* best = nullptr;
  for (const SuperCopy* c : {&copy0, &copy1}) {
    if (c->state != SuperCopy::kValid) continue;
    if (best == nullptr || c->sb.generation > best->sb.generation) best = c;
  }
  if (best == nullptr) {
    for (const SuperCopy* c : {&copy0, &copy1}) {
      if (c->state == SuperCopy::kOtherVersion) {
        return fatal("%s: unsupported version %u (this fsck.pagefs knows version %u)",
                     name_.c_str(), c->sb.version, kFormatVersion);
      }
    }
    if (copy0.state == SuperCopy::kCorrupt || copy1.state == SuperCopy::kCorrupt) {
      return fatal("%s: both superblock copies are corrupt", name_.c_str());
    }
    return fatal("%s is not a pagefs filesystem", name_.c_str());
  }
  sb_ = best->sb;
  compare_superblock_copies(*best, best == &copy0 ? copy1 : copy0);
  const uint64_t incompat = sb_.features_incompat & ~kKnownIncompat;
  const uint64_t ro_compat = sb_.features_ro_compat & ~kKnownRoCompat;
  if (incompat != 0 || ro_compat != 0) {
    return fatal("%s has unsupported features (incompat 0x%llx, ro_compat 0x%llx)", name_.c_str(),
                 ull(incompat), ull(ro_compat));
  }
  return true;
}

void Checker::compare_superblock_copies(const SuperCopy& best, const SuperCopy& other) {
  const int slot = other.slot;
  switch (other.state) {
    case SuperCopy::kAbsent:
      report_.error("superblock copy at page %d is missing", slot);
      return;
    case SuperCopy::kCorrupt:
      if (other.why != nullptr) {
        report_.error("superblock copy at page %d is corrupt: %s", slot, other.why);
      } else {
        report_.error("superblock copy at page %d is corrupt", slot);
      }
      return;
    case SuperCopy::kOtherVersion:
      report_.error("superblock copy at page %d has version %u", slot, other.sb.version);
      return;
    case SuperCopy::kValid:
      break;
  }
  if (other.sb.generation < best.sb.generation) {
    // Page 0 travels with every commit; page 1 is rewritten at checkpoints.
    if (slot == 0) {
      report_.error("superblock copy at page 0 is stale (generation %llu, current %llu)",
                    ull(other.sb.generation), ull(best.sb.generation));
    }
  } else if (memcmp(reinterpret_cast<const uint8_t*>(&other.sb) + sizeof(PageHeader),
                    reinterpret_cast<const uint8_t*>(&best.sb) + sizeof(PageHeader),
                    sizeof(Superblock) - sizeof(PageHeader)) != 0) {
    report_.error("superblock copies differ at the same generation %llu", ull(best.sb.generation));
  }
}

// ---- Pass 1: geometry ----------------------------------------------------

bool Checker::check_geometry() {
  page_size_ = sb_.page_size;
  bits_per_bitmap_page_ = bitmap_bits_per_page(page_size_);
  if (device_.block_size() > page_size_) {
    return fatal("%s: device block size %u exceeds the page size %u", name_.c_str(),
                 device_.block_size(), page_size_);
  }
  if (options_.verbose) {
    report_.info("superblock: generation %llu, page size %u, %llu pages, tree height %u",
                 ull(sb_.generation), page_size_, ull(sb_.page_count), sb_.tree_height);
  }
  if (sb_.state != uint32_t(FsState::kClean) && sb_.state != uint32_t(FsState::kMounted)) {
    report_.error("superblock has an invalid state %u", sb_.state);
  }
  if (sb_.next_inode < 2) report_.error("superblock next_inode %llu < 2", ull(sb_.next_inode));
  if (sb_.next_inode > kMaxInodeNumber) {
    report_.error("superblock next_inode %llu is past the largest inode number",
                  ull(sb_.next_inode));
  }
  if (!check_regions()) return false;
  referenced_ = PageSet(sb_.page_count);
  for (uint64_t p = 0; p < sb_.data_start; p++) referenced_.set(p);
  return true;
}

// The layout regions; any error here stops the check.
bool Checker::check_regions() {
  const Superblock& s = sb_;
  const uint64_t n = s.page_count;
  bool ok = true;
  auto fail = [&](const char* what) {
    report_.error("superblock geometry: %s", what);
    ok = false;
  };
  if (n > device_.size_bytes() / page_size_) {
    report_.error("device is too small: %llu bytes, filesystem needs %llu pages of %u bytes",
                  ull(device_.size_bytes()), ull(n), page_size_);
    ok = false;
  }
  if (s.journal_start < 2 || s.journal_start > n || s.journal_pages > n - s.journal_start) {
    fail("journal region out of place");
  } else if (s.bitmap_start < s.journal_start + s.journal_pages || s.bitmap_start > n ||
             s.bitmap_pages > n - s.bitmap_start || s.bitmap_pages == 0) {
    fail("bitmap region out of place");
  } else if (s.data_start < s.bitmap_start + s.bitmap_pages || s.data_start >= n) {
    fail("data region out of place");
  } else if (s.bitmap_pages * bits_per_bitmap_page_ < n) {
    fail("bitmap too small for page_count");
  }
  if (s.tree_height < 1 || s.tree_height > kMaxTreeHeight) fail("tree height out of range");
  if (ok && (s.tree_root < s.data_start || s.tree_root >= n))
    fail("tree root outside the data region");
  return ok;
}

// Verifies a metadata page's header and checksum; reports and returns false if bad.
bool Checker::check_meta_header(const uint8_t* page, uint64_t page_no, PageType type,
                                const char* what) {
  PageHeader h;
  memcpy(&h, page, sizeof(h));
  if (h.magic != kPageMagic) {
    report_.error("%s at page %llu has a bad magic 0x%08x", what, ull(page_no), h.magic);
    return false;
  }
  if (h.type != uint16_t(type) || h.page_no != page_no) {
    report_.error("%s at page %llu has type %u and page number %llu", what, ull(page_no), h.type,
                  ull(h.page_no));
    return false;
  }
  if (meta_page_crc(page, page_size_) != h.crc) {
    report_.error("%s at page %llu fails its checksum", what, ull(page_no));
    return false;
  }
  if (h.flags != 0 || h.reserved != 0) {
    report_.error("%s at page %llu has nonzero reserved header fields", what, ull(page_no));
  }
  return true;
}

// ---- Pass 2: bitmap ------------------------------------------------------

// Loads the bitmap pages that cover page_count into disk_bitmap_. Any further
// bitmap pages cover no page of the filesystem: their bits must all be set, and
// they are only counted (free_tail_bits_), so a huge bitmap_pages costs no memory.
bool Checker::load_bitmap() {
  const uint64_t count = sb_.bitmap_pages;
  const uint64_t needed = (sb_.page_count + bits_per_bitmap_page_ - 1) / bits_per_bitmap_page_;
  assert(needed <= count);  // check_regions
  disk_bitmap_ = PageSet(needed * bits_per_bitmap_page_);
  bitmap_bad_.assign(count, false);
  uint64_t pages[kBatchPages];
  for (uint64_t first = 0; first < count; first += kBatchPages) {
    const size_t n = std::min<uint64_t>(kBatchPages, count - first);
    for (size_t i = 0; i < n; i++) pages[i] = sb_.bitmap_start + first + i;
    if (!read_pages(pages, n, *node_buf_)) return false;
    for (size_t i = 0; i < n; i++) {
      const uint8_t* page = node_buf_->data() + i * page_size_;
      const uint8_t* bits = page + sizeof(PageHeader);
      const size_t bytes = page_size_ - sizeof(PageHeader);
      if (!check_meta_header(page, pages[i], PageType::kBitmap, "bitmap page")) {
        bitmap_bad_[first + i] = true;
      } else if (first + i < needed) {
        disk_bitmap_.load_bytes((first + i) * bits_per_bitmap_page_, bits, bytes);
      } else {
        for (size_t j = 0; j < bytes; j++) free_tail_bits_ += std::popcount(uint8_t(~bits[j]));
      }
    }
  }
  return true;
}

}  // namespace pagefs::fsck
