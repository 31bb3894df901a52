#include "engine/recovery.h"

#include <cstdlib>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/log.h"

namespace pagefs {

Status load_superblock(Device& device, Superblock* out, std::string* message) {
  const uint32_t probe = std::max<uint32_t>(kMinPageSize, device.block_size());
  if (device.size_bytes() < 2ull * probe) {
    *message = "device is too small to hold a pagefs filesystem";
    return Err{EINVAL};
  }
  void* buf = std::aligned_alloc(4096, kMaxPageSize);
  std::unique_ptr<void, decltype(&std::free)> guard(buf, &std::free);
  auto* bytes = static_cast<std::byte*>(buf);
  PAGEFS_TRY(device.read_at(0, bytes, probe));
  Superblock sb;
  std::memcpy(&sb, bytes, sizeof sb);
  if (std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) != 0 ||
      sb.header.magic != kPageMagic) {
    // The primary may be damaged: try the secondary at each possible page size.
    bool found = false;
    for (uint32_t ps = kMinPageSize; ps <= kMaxPageSize && !found; ps *= 2) {
      if (device.size_bytes() < 2ull * ps) break;
      if (!device.read_at(ps, bytes, ps).ok()) continue;
      std::memcpy(&sb, bytes, sizeof sb);
      found = std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) == 0 && sb.page_size == ps;
    }
    if (!found) {
      *message = "not a pagefs filesystem (no superblock found); format it with mkfs.pagefs";
      return Err{EINVAL};
    }
  }
  uint32_t ps = sb.page_size;
  if (ps < kMinPageSize || ps > kMaxPageSize || (ps & (ps - 1)) != 0) {
    *message = "superblock has an invalid page size; run fsck.pagefs";
    return Err{EINVAL};
  }
  Superblock best{};
  bool have = false;
  for (uint64_t copy = 0; copy < 2; copy++) {
    if (!device.read_at(copy * ps, bytes, ps).ok()) continue;
    const char* why = nullptr;
    if (!verify_meta_page(bytes, ps, PageNo{copy}, PageType::kSuperblock, &why)) {
      PAGEFS_LOG_WARN("superblock copy %llu is invalid: %s", (unsigned long long)copy, why);
      continue;
    }
    Superblock candidate;
    std::memcpy(&candidate, bytes, sizeof candidate);
    if (!have || candidate.generation > best.generation) best = candidate, have = true;
  }
  if (!have) {
    *message = "both superblock copies are damaged; run fsck.pagefs";
    return Err{EIO};
  }
  if (best.version != kFormatVersion) {
    *message = "unsupported pagefs format version " + std::to_string(best.version) +
               " (this pagefs reads version " + std::to_string(kFormatVersion) + ")";
    return Err{EPROTONOSUPPORT};
  }
  if (best.features_incompat & ~kKnownIncompat) {
    *message = "filesystem uses features this pagefs does not support; upgrade pagefs";
    return Err{EPROTONOSUPPORT};
  }
  if (best.page_count * ps > device.size_bytes()) {
    *message = "device is smaller than the filesystem on it (truncated image?)";
    return Err{EINVAL};
  }
  *out = best;
  return ok_status();
}

namespace {

// Writes the superblock to page 0, flushes, then page 1, flushes.
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

}  // namespace

Status recover_device(Device& device, Superblock* sb, RecoveryResult* result,
                      std::string* message) {
  PAGEFS_TRY(load_superblock(device, sb, message));
  if (device.read_only()) {
    auto scanned = Journal::scan(device, *sb, [](PageNo, const std::byte*) { return Status(); });
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
  auto replayed = Journal::replay(device, *sb);
  if (!replayed.ok()) {
    *message = std::string("journal recovery failed: ") + strerror(replayed.error());
    return Err{replayed.error()};
  }
  *result = *replayed;
  if (result->transactions == 0) return ok_status();
  PAGEFS_LOG_INFO("recovered %llu transactions (%llu pages) from the journal",
                  (unsigned long long)result->transactions, (unsigned long long)result->pages);
  // Page 0 may have been replayed: take the newest superblock, then record
  // that the journal is empty up to the head.
  PAGEFS_TRY(load_superblock(device, sb, message));
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

// ---- OverlayDevice ------------------------------------------------------------

Result<std::unique_ptr<OverlayDevice>> OverlayDevice::open(Device& inner, RecoveryResult* result,
                                                           std::string* message) {
  Superblock sb;
  PAGEFS_TRY(load_superblock(inner, &sb, message));
  std::unique_ptr<OverlayDevice> dev(new OverlayDevice(inner, sb.page_size));
  auto scanned = Journal::scan(inner, sb, [&](PageNo page, const std::byte* image) -> Status {
    if (page.value >= sb.page_count) return Err{EIO};
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
