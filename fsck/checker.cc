#include "fsck/checker.h"

#include <sys/stat.h>

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

void Checker::start_pass(int pass, const char* label, uint64_t units) {
  char line[80];
  snprintf(line, sizeof line, "Pass %d: %s", pass, label);
  report_.pass(line);
  if (options_.progress != nullptr) options_.progress->start(pass, label, units);
}

void Checker::advance(uint64_t units) {
  if (options_.progress != nullptr) options_.progress->advance(units);
}

int Checker::run() {
  start_pass(1, "checking the superblock", 1);
  if (!check_superblock() || !check_geometry()) return finish();
  const size_t alignment = std::max<size_t>(kIoAlignment, device_.block_size());
  node_buf_ = std::make_unique<AlignedBuffer>(kBatchPages * page_size_, alignment);
  data_buf_ = std::make_unique<AlignedBuffer>(kBatchPages * page_size_, alignment);
  start_pass(2, "checking the free-space bitmap", sb_.bitmap_pages);
  if (!load_bitmap()) return finish();
  start_pass(3, "walking the tree and verifying data", sb_.page_count - sb_.free_pages);
  if (!walk_tree()) return finish();
  start_pass(4, "checking inodes and directories", inodes_.size());
  check_inodes();
  start_pass(5, "checking space accounting", sb_.page_count);
  check_space();
  check_counters();
  finish_plan();
  return finish();
}

bool Checker::fatal(const char* fmt, ...) {
  fatal_ = true;
  va_list ap;
  va_start(ap, fmt);
  fputs("fsck.pagefs: ", options_.err);
  vfprintf(options_.err, fmt, ap);
  fputc('\n', options_.err);
  va_end(ap);
  return false;
}

// The fixes the repair applies: when the problems include one that needs
// judgement, -p applies none.
Fix Checker::applied_fixes() const {
  switch (options_.mode) {
    case Mode::kCheck:
      return Fix::kNone;
    case Mode::kPreen:
      return needs_judgement() ? Fix::kNone : Fix::kPreen;
    case Mode::kRepair:
      return Fix::kRepair;
  }
  return Fix::kNone;
}

int Checker::finish() {
  if (options_.progress != nullptr) options_.progress->finish();
  report_.flush([this](uint64_t ino, const std::string& entry) { return subject_of(ino, entry); },
                applied_fixes());
  report_.finish();
  if (fatal_) return kExitOperational;
  return report_.count() > 0 ? kExitUncorrected : kExitClean;
}

// What the repair needs besides the fixes the passes planned.
void Checker::finish_plan() {
  plan_.referenced = referenced_;
  plan_.busy = referenced_;
  for (uint64_t p = sb_.data_start; p < sb_.page_count; p++) {
    if (p % 64 == 0 && disk_bitmap_.word(p / 64) == 0 && p + 64 <= sb_.page_count) {
      p += 63;
      continue;
    }
    if (!bitmap_bad_[p / bits_per_bitmap_page_] && disk_bitmap_.test(p)) plan_.busy.set(p);
  }
  for (uint64_t p : damaged_pages_) plan_.busy.set(p);
  plan_.inode_count = inode_records_;
  plan_.next_inode = std::max(sb_.next_inode, max_ino_ + 1);
}

CheckSummary Checker::summary() const {
  CheckSummary s;
  for (const auto& [ino, info] : inodes_) {
    if (!info.has_record) continue;
    (S_ISDIR(info.rec.mode) ? s.directories : s.files)++;
  }
  s.pages_used = referenced_.count();
  s.page_count = sb_.page_count;
  return s;
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
    superblock_lost_ = true;
    if (copy0.state == SuperCopy::kCorrupt || copy1.state == SuperCopy::kCorrupt) {
      return fatal(
          "%s: both superblock copies are corrupt; fsck.pagefs -y rebuilds them from the "
          "device's pages",
          name_.c_str());
    }
    return fatal("%s is not a pagefs filesystem", name_.c_str());
  }
  sb_ = best->sb;
  for (const SuperCopy* c : {&copy0, &copy1}) {
    if (c->state == SuperCopy::kValid) inode_bound_ = std::max(inode_bound_, c->sb.next_inode);
  }
  compare_superblock_copies(*best, best == &copy0 ? copy1 : copy0);
  const uint64_t incompat = sb_.features_incompat & ~kKnownIncompat;
  const uint64_t ro_compat = sb_.features_ro_compat & ~kKnownRoCompat;
  if (incompat != 0 || ro_compat != 0) {
    return fatal("%s has unsupported features (incompat 0x%llx, ro_compat 0x%llx)", name_.c_str(),
                 ull(incompat), ull(ro_compat));
  }
  return true;
}

// A copy that is missing, damaged or behind the other is rewritten from the
// valid one: the copies carry no information of their own.
void Checker::compare_superblock_copies(const SuperCopy& best, const SuperCopy& other) {
  const std::string where = "superblock copy at page " + std::to_string(other.slot);
  const std::string action = "rewrite it from the other copy";
  switch (other.state) {
    case SuperCopy::kAbsent:
      report_.at(Fix::kPreen, where, action, "is missing");
      break;
    case SuperCopy::kCorrupt:
      report_.at(Fix::kPreen, where, action, "is corrupt%s%s", other.why != nullptr ? ": " : "",
                 other.why != nullptr ? other.why : "");
      break;
    case SuperCopy::kOtherVersion:
      report_.at(Fix::kPreen, where, action, "has version %u", other.sb.version);
      break;
    case SuperCopy::kValid:
      if (other.sb.generation < best.sb.generation) {
        // Page 0 travels with every commit; page 1 is rewritten at checkpoints.
        if (other.slot != 0) return;
        report_.at(Fix::kPreen, where, action, "is stale (generation %llu, current %llu)",
                   ull(other.sb.generation), ull(best.sb.generation));
      } else if (memcmp(reinterpret_cast<const uint8_t*>(&other.sb) + sizeof(PageHeader),
                        reinterpret_cast<const uint8_t*>(&best.sb) + sizeof(PageHeader),
                        sizeof(Superblock) - sizeof(PageHeader)) != 0) {
        report_.at(Fix::kPreen, "superblock", "rewrite both copies",
                   "the two copies differ at the same generation %llu", ull(best.sb.generation));
      } else {
        return;
      }
      break;
  }
  plan_.rewrite_superblock = true;
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
    report_.at(Fix::kPreen, "superblock", "set it to 'mounted'", "has an invalid state %u",
               sb_.state);
    plan_.rewrite_superblock = true;
  }
  // next_inode (2 to kMaxInodeNumber) is held to superblock_valid()'s rules,
  // as the mount holds it: a copy that breaks them is never the one chosen.
  if (!check_regions()) return false;
  referenced_ = PageSet(sb_.page_count);
  for (uint64_t p = 0; p < sb_.data_start; p++) referenced_.set(p);
  return true;
}

// The layout regions, which superblock_valid() has checked already; what is
// left is whether the device holds them. Any error here stops the check.
bool Checker::check_regions() {
  const Superblock& s = sb_;
  bool ok = true;
  if (s.page_count > device_.size_bytes() / page_size_) {
    report_.at(Fix::kNone, "device", "",
               "is too small: %llu bytes, the filesystem needs %llu pages of %u bytes",
               ull(device_.size_bytes()), ull(s.page_count), page_size_);
    ok = false;
  }
  assert(s.bitmap_pages * bits_per_bitmap_page_ >= s.page_count);
  assert(s.tree_root >= s.data_start && s.tree_root < s.page_count);
  return ok;
}

// Verifies a metadata page's header and checksum; false, with the reason, if bad.
bool Checker::check_meta_header(const uint8_t* page, uint64_t page_no, PageType type,
                                std::string* why) const {
  PageHeader h;
  memcpy(&h, page, sizeof(h));
  char buf[96];
  if (h.magic != kPageMagic) {
    snprintf(buf, sizeof buf, "has a bad magic 0x%08x", h.magic);
  } else if (h.type != uint16_t(type) || h.page_no != page_no) {
    snprintf(buf, sizeof buf, "has type %u and page number %llu", h.type, ull(h.page_no));
  } else if (meta_page_crc(page, page_size_) != h.crc) {
    snprintf(buf, sizeof buf, "fails its checksum");
  } else {
    return true;
  }
  *why = buf;
  return false;
}

// Reserved header fields are written as zero; the engine ignores them.
bool Checker::header_reserved_set(const uint8_t* page) {
  PageHeader h;
  memcpy(&h, page, sizeof(h));
  return h.flags != 0 || h.reserved != 0;
}

// ---- Pass 2: bitmap ------------------------------------------------------

// Loads the bitmap pages that cover page_count into disk_bitmap_. Any further
// bitmap pages cover no page of the filesystem: their bits must all be set, and
// they are only counted (free_tail_bits_), so a huge bitmap_pages costs no memory.
bool Checker::load_bitmap() {
  const uint64_t count = sb_.bitmap_pages;
  const uint64_t needed = (sb_.page_count + bits_per_bitmap_page_ - 1) / bits_per_bitmap_page_;
  assert(needed <= count);  // superblock_valid
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
      std::string why;
      if (!check_meta_header(page, pages[i], PageType::kBitmap, &why)) {
        report_.at(Fix::kPreen, "bitmap page " + std::to_string(pages[i]),
                   "rebuild it from the pages in use", "%s", why.c_str());
        plan_.rewrite_bitmap = true;
        bitmap_bad_[first + i] = true;
        continue;
      }
      if (header_reserved_set(page)) {
        report_.at(Fix::kPreen, "bitmap page " + std::to_string(pages[i]), "rewrite it",
                   "has nonzero reserved header fields");
        plan_.rewrite_bitmap = true;
      }
      if (first + i < needed) {
        disk_bitmap_.load_bytes((first + i) * bits_per_bitmap_page_, bits, bytes);
      } else {
        for (size_t j = 0; j < bytes; j++) free_tail_bits_ += std::popcount(uint8_t(~bits[j]));
      }
    }
    advance(n);
  }
  return true;
}

}  // namespace pagefs::fsck
