#include "engine/journal.h"

#include <zstd.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "engine/crc32c.h"
#include "engine/log.h"

namespace pagefs {
namespace {

constexpr uint64_t kMaxStagingBytes = 16ull << 20;
constexpr int kZstdLevel = -3;

uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

uint32_t header_crc(JournalHeader h) {
  h.header_crc = 0;
  return crc32c(&h, sizeof h);
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, AlignedFree>;

AlignedBuffer aligned_buffer(uint64_t bytes) {
  return AlignedBuffer(static_cast<std::byte*>(std::aligned_alloc(4096, round_up(bytes, 4096))));
}

// Reads `bytes` (page multiple) at `lsn`, following the wrap of the region.
Status read_lsn(Device& device, uint64_t region, uint64_t capacity, uint64_t lsn, std::byte* out,
                uint64_t bytes) {
  uint64_t pos = lsn % capacity;
  uint64_t first = std::min(bytes, capacity - pos);
  PAGEFS_TRY(device.read_at(region + pos, out, first));
  if (first < bytes) PAGEFS_TRY(device.read_at(region, out + first, bytes - first));
  return ok_status();
}

bool header_valid(const JournalHeader& h, JournalKind kind, uint64_t sequence, uint64_t lsn) {
  return h.magic == kJournalMagic && h.kind == static_cast<uint16_t>(kind) &&
         h.header_crc == header_crc(h) && h.sequence == sequence && h.lsn == lsn;
}

}  // namespace

Journal::Journal(Device& device, const Superblock& sb, uint64_t head, uint64_t sequence)
    : device_(device),
      page_size_(sb.page_size),
      region_offset_(sb.journal_start * sb.page_size),
      capacity_(sb.journal_pages * sb.page_size),
      head_(head),
      tail_(sb.journal_tail),
      sequence_(sequence),
      tail_sequence_(sb.journal_sequence) {}

Journal::~Journal() {
  std::free(staging_);
  std::free(record_);
  ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(zstd_));
}

Result<std::unique_ptr<Journal>> Journal::open(Device& device, const Superblock& sb,
                                               uint64_t head_lsn, uint64_t next_sequence) {
  std::unique_ptr<Journal> j(new Journal(device, sb, head_lsn, next_sequence));
  j->staging_bytes_ =
      std::min<uint64_t>(round_up(j->capacity_ / 4, sb.page_size), kMaxStagingBytes);
  if (j->max_images() < 8) return Err{EINVAL};  // mkfs never makes so small a journal
  uint64_t record_bytes =
      round_up(sizeof(JournalHeader) + 2 * j->max_images() * sizeof(JournalImage), sb.page_size) +
      j->staging_bytes_ + 2ull * sb.page_size;
  j->staging_ = static_cast<std::byte*>(std::aligned_alloc(4096, j->staging_bytes_));
  j->record_ = static_cast<std::byte*>(std::aligned_alloc(4096, round_up(record_bytes, 4096)));
  j->zstd_ = ZSTD_createCCtx();
  if (!j->staging_ || !j->record_ || !j->zstd_) return Err{ENOMEM};
  j->table_.reserve(2 * j->max_images());
  return j;
}

uint64_t Journal::physical(uint64_t lsn) const {
  return region_offset_ + lsn % capacity_;
}

// ---- building and committing ------------------------------------------------

Status Journal::add_image(PageNo page, const std::byte* data) {
  if (table_.size() >= 2 * max_images()) return Err{ENOSPC};
  size_t room = staging_bytes_ - staged_bytes_;
  std::byte* out = staging_ + staged_bytes_;
  size_t n = 0;
  uint32_t flags = 0;
  if (room >= ZSTD_compressBound(page_size_)) {
    // zstd's fast level -3: a tree leaf in 5.5 us instead of 15 us at level 1,
    // for 18% more journal bytes (bench/journal_bench.cc).
    n = ZSTD_compressCCtx(static_cast<ZSTD_CCtx*>(zstd_), out, room, data, page_size_, kZstdLevel);
    if (ZSTD_isError(n)) return Err{EIO};
    flags = kImageZstd;
  }
  if (flags == 0 || n >= page_size_) {
    if (room < page_size_) return Err{ENOSPC};
    std::memcpy(out, data, page_size_);
    n = page_size_;
    flags = 0;
  }
  table_.push_back(JournalImage{page.value, uint32_t(n), flags});
  staged_bytes_ += n;
  return ok_status();
}

void Journal::reset_staging() {
  table_.clear();
  staged_bytes_ = 0;
}

// Splits a write of `bytes` at `lsn` where it wraps around the region's end.
void Journal::split(uint64_t lsn, std::byte* data, uint64_t bytes, std::vector<iovec>& iov,
                    std::vector<IoRequest>& out) const {
  uint64_t pos = lsn % capacity_;
  uint64_t first = std::min(bytes, capacity_ - pos);
  iov.push_back(iovec{data, first});
  out.push_back(IoRequest{region_offset_ + pos, {}});
  if (first < bytes) {
    iov.push_back(iovec{data + first, bytes - first});
    out.push_back(IoRequest{region_offset_, {}});
  }
}

Status Journal::commit(std::span<const IoRequest> ordered, bool barrier) {
  if (table_.empty() && ordered.empty()) return ok_status();
  // Assemble the record: header, image table, images, padding.
  uint64_t table_bytes = table_.size() * sizeof(JournalImage);
  uint64_t payload = table_bytes + staged_bytes_;
  uint64_t record_bytes = round_up(sizeof(JournalHeader) + payload, page_size_);
  if (record_bytes + page_size_ > free_bytes()) {
    PAGEFS_LOG_ERROR("journal full: a %llu-byte transaction does not fit",
                     (unsigned long long)record_bytes);
    reset_staging();
    return Err{ENOSPC};
  }
  std::memset(record_, 0, record_bytes + page_size_);
  std::byte* body = record_ + sizeof(JournalHeader);
  if (table_bytes) std::memcpy(body, table_.data(), table_bytes);
  if (staged_bytes_) std::memcpy(body + table_bytes, staging_, staged_bytes_);
  JournalHeader h{
      kJournalMagic, uint16_t(JournalKind::kTxn), 0, 0, crc32c(body, payload), sequence_, head_,
      payload,       uint32_t(table_.size()),     0};
  h.header_crc = header_crc(h);
  std::memcpy(record_, &h, sizeof h);
  // The commit record: its payload_crc covers the whole record.
  uint64_t commit_lsn = head_ + record_bytes;
  JournalHeader c{kJournalMagic,
                  uint16_t(JournalKind::kCommit),
                  0,
                  0,
                  crc32c(record_, record_bytes),
                  sequence_,
                  commit_lsn,
                  record_bytes,
                  0,
                  0};
  c.header_crc = header_crc(c);
  std::memcpy(record_ + record_bytes, &c, sizeof c);

  std::vector<iovec> iov;
  iov.reserve(4);
  std::vector<IoRequest> batch(ordered.begin(), ordered.end());
  size_t first_own = batch.size();
  split(head_, record_, record_bytes, iov, batch);
  size_t commit_at = batch.size();
  split(commit_lsn, record_ + record_bytes, page_size_, iov, batch);
  for (size_t i = first_own; i < batch.size(); i++) {
    batch[i].iov = std::span<const iovec>(&iov[i - first_own], 1);
  }
  std::span<const IoRequest> all(batch);
  if (!ordered.empty() || barrier) {
    // Ordered data and the record must be durable before the commit exists.
    PAGEFS_TRY(device_.write(all.first(commit_at)));
    PAGEFS_TRY(device_.flush());
    PAGEFS_TRY(device_.write(all.subspan(commit_at)));
  } else {
    PAGEFS_TRY(device_.write(all));
  }
  PAGEFS_TRY(device_.flush());
  head_ = commit_lsn + page_size_;
  sequence_++;
  reset_staging();
  return ok_status();
}

void Journal::set_tail(uint64_t lsn, uint64_t sequence) {
  assert(lsn >= tail_ && lsn <= head_);
  tail_ = lsn;
  tail_sequence_ = sequence;
}

// ---- recovery ---------------------------------------------------------------

namespace {

// Decodes the images of one whole record and hands them to `visit`.
Status visit_images(const std::byte* record, const JournalHeader& h, uint32_t page_size,
                    std::byte* page, const Journal::ImageVisitor& visit, uint64_t* count) {
  const std::byte* body = record + sizeof(JournalHeader);
  uint64_t table_bytes = uint64_t(h.image_count) * sizeof(JournalImage);
  if (table_bytes > h.payload_bytes) return Err{EIO};
  const std::byte* data = body + table_bytes;
  uint64_t data_left = h.payload_bytes - table_bytes;
  for (uint32_t i = 0; i < h.image_count; i++) {
    JournalImage img;
    std::memcpy(&img, body + i * sizeof img, sizeof img);
    if (img.stored_bytes > data_left) return Err{EIO};
    if (img.flags == kImageZstd) {
      size_t n = ZSTD_decompress(page, page_size, data, img.stored_bytes);
      if (ZSTD_isError(n) || n != page_size) return Err{EIO};
    } else if (img.flags == 0 && img.stored_bytes == page_size) {
      std::memcpy(page, data, page_size);
    } else {
      return Err{EIO};
    }
    PAGEFS_TRY(visit(PageNo{img.page_no}, page));
    data += img.stored_bytes;
    data_left -= img.stored_bytes;
    (*count)++;
  }
  return ok_status();
}

}  // namespace

Result<RecoveryResult> Journal::scan(Device& device, const Superblock& sb,
                                     const ImageVisitor& visit) {
  const uint32_t ps = sb.page_size;
  const uint64_t region = sb.journal_start * ps, capacity = sb.journal_pages * ps;
  RecoveryResult r{sb.journal_tail, sb.journal_sequence, 0, 0};
  AlignedBuffer head_page = aligned_buffer(ps), image = aligned_buffer(ps);
  AlignedBuffer record;
  uint64_t record_capacity = 0;
  for (;;) {
    PAGEFS_TRY(read_lsn(device, region, capacity, r.head_lsn, head_page.get(), ps));
    JournalHeader h;
    std::memcpy(&h, head_page.get(), sizeof h);
    if (!header_valid(h, JournalKind::kTxn, r.next_sequence, r.head_lsn)) break;
    uint64_t record_bytes = round_up(sizeof h + h.payload_bytes, ps);
    if (record_bytes + ps > capacity) break;
    if (record_bytes > record_capacity) {
      record = aligned_buffer(record_bytes);
      record_capacity = record_bytes;
    }
    PAGEFS_TRY(read_lsn(device, region, capacity, r.head_lsn, record.get(), record_bytes));
    const std::byte* body = record.get() + sizeof h;
    if (crc32c(body, h.payload_bytes) != h.payload_crc) break;
    uint64_t commit_lsn = r.head_lsn + record_bytes;
    PAGEFS_TRY(read_lsn(device, region, capacity, commit_lsn, head_page.get(), ps));
    JournalHeader c;
    std::memcpy(&c, head_page.get(), sizeof c);
    if (!header_valid(c, JournalKind::kCommit, r.next_sequence, commit_lsn) ||
        c.payload_bytes != record_bytes || c.payload_crc != crc32c(record.get(), record_bytes)) {
      break;
    }
    PAGEFS_TRY(visit_images(record.get(), h, ps, image.get(), visit, &r.pages));
    r.head_lsn = commit_lsn + ps;
    r.next_sequence++;
    r.transactions++;
  }
  return r;
}

Result<RecoveryResult> Journal::replay(Device& device, const Superblock& sb) {
  const uint32_t ps = sb.page_size;
  auto result = scan(device, sb, [&](PageNo page, const std::byte* image) -> Status {
    if (page.value >= sb.page_count) return Err{EIO};
    return device.write_at(page.value * ps, image, ps);
  });
  if (!result.ok()) return result;
  if (result->transactions > 0) PAGEFS_TRY(device.flush());
  return result;
}

}  // namespace pagefs
