#include "engine/recovery.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/log.h"

namespace pagefs {

namespace {

bool has_super_magics(const Superblock& sb) {
  return sb.header.magic == kPageMagic &&
         std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) == 0;
}

// The page size copy 0 states, if its magics are right and the size is one a
// page may have; otherwise the first page-size offset at which copy 1 states
// that same size.
Result<uint32_t> find_page_size(Device& device, std::byte* buf, std::string* message) {
  const uint32_t probe = std::max<uint32_t>(kMinPageSize, device.block_size());
  if (device.size_bytes() < 2ull * probe) {
    *message = "device is too small to hold a pagefs filesystem";
    return Err{EINVAL};
  }
  Superblock sb;
  if (device.read_at(0, buf, probe).ok()) {
    std::memcpy(&sb, buf, sizeof sb);
    if (has_super_magics(sb) && valid_page_size(sb.page_size)) return sb.page_size;
  }
  for (uint32_t ps = kMinPageSize; ps <= kMaxPageSize; ps *= 2) {
    if (device.size_bytes() < 2ull * ps) break;
    if (!device.read_at(ps, buf, ps).ok()) continue;
    std::memcpy(&sb, buf, sizeof sb);
    if (has_super_magics(sb) && sb.page_size == ps) return ps;
  }
  *message = "not a pagefs filesystem (no superblock found); format it with mkfs.pagefs";
  return Err{EINVAL};
}

// One superblock copy as found on the device.
struct Copy {
  enum State { kMissing, kDamaged, kTooLarge, kOtherVersion, kValid } state = kMissing;
  Superblock sb{};
};

Copy::State classify(const Superblock& sb, uint32_t ps, uint64_t device_bytes, const char** why) {
  if (!has_super_magics(sb)) {
    *why = "no superblock magic";
    return Copy::kDamaged;
  }
  if (sb.version != kFormatVersion) return Copy::kOtherVersion;
  if (sb.page_size != ps) {
    *why = "page size differs from the other copy's";
    return Copy::kDamaged;
  }
  if (!superblock_valid(sb, why)) return Copy::kDamaged;
  return superblock_fits(sb, device_bytes) ? Copy::kValid : Copy::kTooLarge;
}

Copy read_copy(Device& device, uint32_t ps, uint64_t index, std::byte* buf) {
  Copy copy;
  const char* why = "unreadable";
  bool read = device.read_at(index * ps, buf, ps).ok();
  copy.state = Copy::kDamaged;
  if (read && verify_meta_page(buf, ps, PageNo{index}, PageType::kSuperblock, &why)) {
    std::memcpy(&copy.sb, buf, sizeof copy.sb);
    copy.state = classify(copy.sb, ps, device.size_bytes(), &why);
  }
  if (copy.state == Copy::kDamaged) {
    PAGEFS_LOG_WARN("superblock copy %llu is damaged and ignored: %s", (unsigned long long)index,
                    why);
  }
  return copy;
}

// The newest copy of this version that is valid; refuses outright when the
// newest readable copy is of another version (a newer pagefs wrote it).
Status choose_copy(const Copy (&copies)[2], Superblock* out, std::string* message) {
  const Copy* newest = nullptr;
  const Copy* best = nullptr;
  bool too_large = false;
  for (const Copy& c : copies) {
    if (c.state == Copy::kMissing || c.state == Copy::kDamaged) continue;
    if (!newest || c.sb.generation > newest->sb.generation) newest = &c;
    too_large |= c.state == Copy::kTooLarge;
    if (c.state == Copy::kValid && (!best || c.sb.generation > best->sb.generation)) best = &c;
  }
  if (newest && newest->state == Copy::kOtherVersion) {
    *message = "unsupported pagefs format version " + std::to_string(newest->sb.version) +
               " (this pagefs reads version " + std::to_string(kFormatVersion) + ")";
    return Err{EPROTONOSUPPORT};
  }
  if (!best && too_large) {
    *message = "device is smaller than the filesystem on it (truncated image?)";
    return Err{EINVAL};
  }
  if (!best) {
    *message = "both superblock copies are damaged; run fsck.pagefs";
    return Err{EIO};
  }
  *out = best->sb;
  // Inode numbers are never reused: whichever valid copy went further counts.
  for (const Copy& c : copies) {
    if (c.state == Copy::kValid) out->next_inode = std::max(out->next_inode, c.sb.next_inode);
  }
  return ok_status();
}

}  // namespace

Status load_superblock(Device& device, Superblock* out, std::string* message) {
  void* buf = std::aligned_alloc(4096, kMaxPageSize);
  if (!buf) return Err{ENOMEM};
  std::unique_ptr<void, decltype(&std::free)> guard(buf, &std::free);
  auto* bytes = static_cast<std::byte*>(buf);
  PAGEFS_ASSIGN(uint32_t ps, find_page_size(device, bytes, message));
  Copy copies[2] = {read_copy(device, ps, 0, bytes), read_copy(device, ps, 1, bytes)};
  Superblock best;
  PAGEFS_TRY(choose_copy(copies, &best, message));
  if (best.features_incompat & ~kKnownIncompat) {
    *message = "filesystem uses features this pagefs does not support; upgrade pagefs";
    return Err{EPROTONOSUPPORT};
  }
  *out = best;
  return ok_status();
}

Status write_superblock_copies(Device& device, Superblock sb) {
  const uint32_t ps = sb.page_size;
  void* buf = std::aligned_alloc(4096, ps);
  if (!buf) return Err{ENOMEM};
  std::unique_ptr<void, decltype(&std::free)> guard(buf, &std::free);
  auto* page = static_cast<std::byte*>(buf);
  sb.generation++;
  for (uint64_t copy = 0; copy < 2; copy++) {
    std::memset(page, 0, ps);
    std::memcpy(page, &sb, sizeof sb);
    auto* h = reinterpret_cast<PageHeader*>(page);
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kSuperblock);
    h->page_no = copy;
    stamp_meta_page(page, ps);
    PAGEFS_TRY(device.write_at(copy * ps, page, ps));
    PAGEFS_TRY(device.flush());
  }
  return ok_status();
}

namespace {

// The superblock to carry on with after a replay: page 0 as the last replayed
// transaction left it (scan replays only valid images of page 0), never an
// older copy, whatever its generation says. Its next_inode and generation do
// not go below those of the copy recovery started from, so the copies written
// next are newer than any copy on the device.
void adopt_replayed(const RecoveryResult& result, Superblock* sb) {
  if (!result.superblock) return;
  Superblock replayed = *result.superblock;
  replayed.next_inode = std::max(replayed.next_inode, sb->next_inode);
  replayed.generation = std::max(replayed.generation, sb->generation);
  *sb = replayed;
}

// A read-only device cannot be recovered: refuse it if the journal needs replay.
Status scan_read_only(Device& device, const Superblock& sb, RecoveryResult* result,
                      std::string* message) {
  auto scanned = Journal::scan(device, sb, [](PageNo, const std::byte*) { return Status(); });
  if (!scanned.ok()) {
    *message = std::string("cannot read the journal: ") + strerror(scanned.error());
    return Err{scanned.error()};
  }
  if (scanned->transactions > 0) {
    *message =
        "the journal needs recovery but the device is read-only; make it writable "
        "or run fsck.pagefs -y on it";
    return Err{EROFS};
  }
  *result = *scanned;
  return ok_status();
}

// Recovery stopped at the first record that is not whole, but records written
// after that one before the crash may still lie in the region, whole, carrying
// the sequence numbers that come next. New transactions written from the stop
// must never line up with them, or the next recovery (or fsck -y) would replay
// them over live pages. So the sequence jumps past every number the region
// can hold: the journal never holds more than a region's worth of bytes after
// the tail, each record takes at least two pages (record and commit), so no
// record in the region is numbered journal_pages or more past next_sequence.
// The new base reaches both superblocks before any new transaction is written.
Status start_new_sequence(Device& device, Superblock* sb, RecoveryResult* result,
                          std::string* message) {
  result->next_sequence += sb->journal_pages + 1;
  sb->journal_tail = result->head_lsn;
  sb->journal_sequence = result->next_sequence;
  Status st = write_superblock_copies(device, *sb);
  if (!st.ok()) {
    *message = std::string("cannot write the superblock after recovery: ") + strerror(st.error());
    return st;
  }
  sb->generation++;
  return ok_status();
}

}  // namespace

Status recover_device(Device& device, Superblock* sb, RecoveryResult* result,
                      std::string* message) {
  PAGEFS_TRY(load_superblock(device, sb, message));
  if (device.read_only()) return scan_read_only(device, *sb, result, message);
  auto replayed = Journal::replay(device, *sb);
  if (!replayed.ok()) {
    *message = std::string("journal recovery failed: ") + strerror(replayed.error());
    return Err{replayed.error()};
  }
  *result = *replayed;
  // After a clean unmount the tail is the head: no record after it was ever
  // written with the sequence numbers to come, and nothing needs doing.
  bool clean = sb->state == static_cast<uint32_t>(FsState::kClean);
  if (result->transactions == 0 && clean) return ok_status();
  if (result->transactions > 0) {
    PAGEFS_LOG_INFO("recovered %llu transactions (%llu pages) from the journal",
                    (unsigned long long)result->transactions, (unsigned long long)result->pages);
    adopt_replayed(*result, sb);
  }
  return start_new_sequence(device, sb, result, message);
}

// ---- OverlayDevice ------------------------------------------------------------

Result<std::unique_ptr<OverlayDevice>> OverlayDevice::open(Device& inner, RecoveryResult* result,
                                                           std::string* message) {
  Superblock sb;
  PAGEFS_TRY(load_superblock(inner, &sb, message));
  return open(inner, sb, result, message);
}

Result<std::unique_ptr<OverlayDevice>> OverlayDevice::open(Device& inner, const Superblock& sb,
                                                           RecoveryResult* result,
                                                           std::string* message) {
  std::unique_ptr<OverlayDevice> dev(new OverlayDevice(inner, sb.page_size));
  auto scanned = Journal::scan(inner, sb, [&](PageNo page, const std::byte* image) -> Status {
    dev->images_[page.value].assign(image, image + sb.page_size);
    return ok_status();
  });
  if (!scanned.ok()) {
    *message = std::string("cannot read the journal: ") + strerror(scanned.error());
    return Err{scanned.error()};
  }
  *result = *scanned;
  return dev;
}

Status OverlayDevice::read(std::span<const IoRequest> batch) {
  PAGEFS_TRY(inner_.read(batch));
  if (images_.empty()) return ok_status();
  for (const IoRequest& r : batch) {
    uint64_t offset = r.offset;
    for (const iovec& v : r.iov) {
      patch(offset, static_cast<std::byte*>(v.iov_base), v.iov_len);
      offset += v.iov_len;
    }
  }
  return ok_status();
}

// Copies the overlay's bytes over [offset, offset+len) of a read buffer.
void OverlayDevice::patch(uint64_t offset, std::byte* buf, size_t len) const {
  uint64_t first = offset / page_size_, last = (offset + len - 1) / page_size_;
  for (auto it = images_.lower_bound(first); it != images_.end() && it->first <= last; ++it) {
    uint64_t page_start = it->first * page_size_;
    uint64_t from = std::max(page_start, offset);
    uint64_t to = std::min(page_start + page_size_, offset + len);
    std::memcpy(buf + (from - offset), it->second.data() + (from - page_start), to - from);
  }
}

}  // namespace pagefs
