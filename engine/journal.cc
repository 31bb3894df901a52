#include "engine/journal.h"

#include <zstd.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/crc32c.h"
#include "engine/log.h"
#include "engine/superblock.h"

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
      tail_sequence_(sb.journal_sequence),
      noted_end_(head),
      noted_next_sequence_(sequence),
      noted_superblock_(new std::byte[sb.page_size]) {}

uint64_t Journal::available_bytes() const {
  uint64_t free = free_bytes(), promised = reserved_.load();
  return free > promised ? free - promised : 0;
}

// Worked example, 4 KiB pages, 10 images: header 48 + table 160 + images at
// most 40960 bytes, rounded up to 11 pages, plus the commit page: 12 pages.
uint64_t Journal::record_bound(uint64_t images) const {
  uint64_t bytes = sizeof(JournalHeader) + images * (sizeof(JournalImage) + page_size_);
  return round_up(bytes, page_size_) + page_size_;
}

void Journal::reserve(uint64_t bytes) {
  reserved_.fetch_add(bytes);
}

void Journal::unreserve(uint64_t bytes) {
  [[maybe_unused]] uint64_t before = reserved_.fetch_sub(bytes);
  assert(before >= bytes);
}

void Journal::note_durable(uint64_t txn, uint64_t lsn, uint64_t sequence,
                           const std::byte* superblock) {
  std::lock_guard lock(noted_mu_);
  noted_.push_back(Noted{txn, lsn, sequence});
  noted_end_ = head();
  noted_next_sequence_ = sequence + 1;
  noted_last_txn_ = txn;
  std::memcpy(noted_superblock_.get(), superblock, page_size_);
}

uint64_t Journal::last_noted_txn() const {
  std::lock_guard lock(noted_mu_);
  return noted_last_txn_;
}

bool Journal::tail_move(uint64_t oldest_pinned, uint64_t last_txn, TailMove* move,
                        std::byte* superblock) const {
  std::lock_guard lock(noted_mu_);
  if (noted_.empty() || noted_.front().txn > last_txn) return false;
  *move = TailMove{noted_end_, noted_next_sequence_, noted_last_txn_};
  for (const Noted& n : noted_) {
    // A transaction noted after `last_txn` may have pages that are not home:
    // the caller's `oldest_pinned` was read before they were pinned.
    if (n.txn >= oldest_pinned || n.txn > last_txn) {
      *move = TailMove{n.lsn, n.sequence, n.txn - 1};
      break;
    }
  }
  std::memcpy(superblock, noted_superblock_.get(), page_size_);
  return move->lsn > tail();
}

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
  assert(lsn >= tail() && lsn <= head());
  std::lock_guard lock(noted_mu_);
  tail_ = lsn;
  tail_sequence_ = sequence;
  while (!noted_.empty() && noted_.front().lsn < lsn) noted_.pop_front();
}

// ---- recovery ---------------------------------------------------------------

namespace {

// Where the journal lies, and what its images may target.
struct Region {
  const Superblock& sb;  // the superblock recovery started from
  uint32_t page_size;
  uint64_t offset;    // byte offset of the region on the device
  uint64_t capacity;  // bytes in the region
  uint64_t first_page, end_page, page_count;

  explicit Region(const Superblock& sb)
      : sb(sb),
        page_size(sb.page_size),
        offset(sb.journal_start * sb.page_size),
        capacity(sb.journal_pages * sb.page_size),
        first_page(sb.journal_start),
        end_page(sb.journal_start + sb.journal_pages),
        page_count(sb.page_count) {}

  // Recovery writes images home: never into the journal it is reading, never
  // past the end of the filesystem.
  bool may_target(uint64_t page) const {
    return page < page_count && (page < first_page || page >= end_page);
  }
};

// A transaction header that can start a whole record at `lsn`: valid, the
// sequence expected, reserved fields zero, and sizes that fit the region
// with the commit page (so no sum of them wraps). Sets the padded size.
bool txn_header_whole(const JournalHeader& h, uint64_t sequence, uint64_t lsn, const Region& g,
                      uint64_t* record_bytes) {
  if (!header_valid(h, JournalKind::kTxn, sequence, lsn) || h.reserved != 0 || h.reserved2 != 0) {
    return false;
  }
  if (h.payload_bytes > g.capacity) return false;
  *record_bytes = round_up(sizeof h + h.payload_bytes, g.page_size);
  if (*record_bytes + g.page_size > g.capacity) return false;
  return uint64_t{h.image_count} * sizeof(JournalImage) <= h.payload_bytes;
}

bool commit_whole(const JournalHeader& c, uint64_t sequence, uint64_t lsn, uint64_t record_bytes,
                  uint32_t record_crc) {
  return header_valid(c, JournalKind::kCommit, sequence, lsn) && c.reserved == 0 &&
         c.reserved2 == 0 && c.image_count == 0 && c.payload_bytes == record_bytes &&
         c.payload_crc == record_crc;
}

// Decodes one stored image into `page`: raw bytes of exactly one page, or a
// zstd frame that decompresses to exactly one page.
bool decode_image(const JournalImage& img, const std::byte* data, uint32_t page_size,
                  std::byte* page) {
  if (img.flags == 0) {
    if (img.stored_bytes != page_size) return false;
    std::memcpy(page, data, page_size);
    return true;
  }
  if (img.flags != kImageZstd) return false;
  size_t n = ZSTD_decompress(page, page_size, data, img.stored_bytes);
  return !ZSTD_isError(n) && n == page_size;
}

JournalImage image_at(const std::byte* record, uint32_t i) {
  JournalImage img;
  std::memcpy(&img, record + sizeof(JournalHeader) + i * sizeof img, sizeof img);
  return img;
}

// An image of page 0 replaces the primary superblock: it is replayed only if
// it is a valid superblock of this very filesystem, so that what recovery
// leaves on page 0 is always the newest state, never a page mount ignores.
bool superblock_image_valid(const std::byte* page, const Region& g) {
  const char* why = nullptr;
  if (!verify_meta_page(page, g.page_size, PageNo{0}, PageType::kSuperblock, &why)) return false;
  Superblock sb;
  std::memcpy(&sb, page, sizeof sb);
  return sb.version == kFormatVersion && superblock_valid(sb, &why) && same_geometry(sb, g.sb);
}

// Every image targets a page recovery may write and decodes to one page (a
// superblock, for page 0), and the images fill the payload after the table
// exactly. `page` is scratch.
bool images_whole(const std::byte* record, const JournalHeader& h, const Region& g,
                  std::byte* page) {
  uint64_t table_bytes = uint64_t{h.image_count} * sizeof(JournalImage);
  const std::byte* data = record + sizeof h + table_bytes;
  uint64_t left = h.payload_bytes - table_bytes;
  for (uint32_t i = 0; i < h.image_count; i++) {
    JournalImage img = image_at(record, i);
    if (!g.may_target(img.page_no) || img.stored_bytes > left) return false;
    if (!decode_image(img, data, g.page_size, page)) return false;
    if (img.page_no == 0 && !superblock_image_valid(page, g)) return false;
    data += img.stored_bytes;
    left -= img.stored_bytes;
  }
  return left == 0;
}

// Hands the images of a whole record to `visit`, in order.
Status visit_images(const std::byte* record, const JournalHeader& h, uint32_t page_size,
                    std::byte* page, const Journal::ImageVisitor& visit, uint64_t* count) {
  const std::byte* data = record + sizeof h + uint64_t{h.image_count} * sizeof(JournalImage);
  for (uint32_t i = 0; i < h.image_count; i++) {
    JournalImage img = image_at(record, i);
    [[maybe_unused]] bool decoded = decode_image(img, data, page_size, page);
    assert(decoded);  // images_whole
    PAGEFS_TRY(visit(PageNo{img.page_no}, page));
    data += img.stored_bytes;
    (*count)++;
  }
  return ok_status();
}

// Reads the records of the journal one at a time, with buffers sized once
// per scan (the record buffer grows to the largest record).
class RecordReader {
 public:
  RecordReader(Device& device, const Region& g)
      : device_(device),
        g_(g),
        head_(aligned_buffer(g.page_size)),
        page_(aligned_buffer(g.page_size)) {}

  // Reads the record at `lsn` and checks all of it (header, sizes, payload,
  // image table, images, commit record). False if it is not whole.
  Result<bool> read(uint64_t lsn, uint64_t sequence) {
    PAGEFS_TRY(read_lsn(device_, g_.offset, g_.capacity, lsn, head_.get(), g_.page_size));
    std::memcpy(&h_, head_.get(), sizeof h_);
    if (!txn_header_whole(h_, sequence, lsn, g_, &record_bytes_)) return false;
    PAGEFS_TRY(reserve(record_bytes_));
    PAGEFS_TRY(read_lsn(device_, g_.offset, g_.capacity, lsn, record_.get(), record_bytes_));
    if (crc32c(record_.get() + sizeof h_, h_.payload_bytes) != h_.payload_crc) return false;
    commit_lsn_ = lsn + record_bytes_;
    PAGEFS_TRY(read_lsn(device_, g_.offset, g_.capacity, commit_lsn_, head_.get(), g_.page_size));
    JournalHeader c;
    std::memcpy(&c, head_.get(), sizeof c);
    if (!commit_whole(c, sequence, commit_lsn_, record_bytes_,
                      crc32c(record_.get(), record_bytes_))) {
      return false;
    }
    return images_whole(record_.get(), h_, g_, page_.get());
  }

  Status visit(const Journal::ImageVisitor& visit, uint64_t* count) {
    return visit_images(record_.get(), h_, g_.page_size, page_.get(), visit, count);
  }
  // The LSN after the record just read and its commit page.
  uint64_t next_lsn() const { return commit_lsn_ + g_.page_size; }

 private:
  Status reserve(uint64_t bytes) {
    if (bytes <= record_capacity_) return ok_status();
    record_ = aligned_buffer(bytes);
    if (!record_) return Err{ENOMEM};
    record_capacity_ = bytes;
    return ok_status();
  }

  Device& device_;
  const Region g_;
  AlignedBuffer head_, page_, record_;
  uint64_t record_capacity_ = 0;
  JournalHeader h_{};
  uint64_t record_bytes_ = 0;
  uint64_t commit_lsn_ = 0;
};

}  // namespace

// A record is replayed only once all of it has been checked, so recovery
// stops at the first record that is not whole, whatever is wrong with it,
// and never applies part of one. Only a device error is an error.
Result<RecoveryResult> Journal::scan(Device& device, const Superblock& sb,
                                     const ImageVisitor& visit) {
  Region region(sb);
  RecordReader reader(device, region);
  RecoveryResult r{sb.journal_tail, sb.journal_sequence, 0, 0};
  auto visit_and_note = [&](PageNo page, const std::byte* image) -> Status {
    if (page.value == 0) {
      r.superblock.emplace();
      std::memcpy(&*r.superblock, image, sizeof(Superblock));
    }
    return visit(page, image);
  };
  for (;;) {
    PAGEFS_ASSIGN(bool whole, reader.read(r.head_lsn, r.next_sequence));
    if (!whole) break;
    PAGEFS_TRY(reader.visit(visit_and_note, &r.pages));
    r.head_lsn = reader.next_lsn();
    r.next_sequence++;
    r.transactions++;
  }
  return r;
}

namespace {

// A transaction header found at byte `pos` of the region: valid, and written
// at an LSN that lands there.
bool record_starts_at(const std::byte* page, uint64_t pos, uint64_t capacity, JournalHeader* h) {
  std::memcpy(h, page, sizeof *h);
  return h->magic == kJournalMagic && h->kind == static_cast<uint16_t>(JournalKind::kTxn) &&
         h->header_crc == header_crc(*h) && h->lsn < kMaxLsn && h->lsn % capacity == pos;
}

}  // namespace

Result<uint64_t> Journal::scan_region(Device& device, const Superblock& sb,
                                      const RegionVisitor& visit, const ReadHook& after_read) {
  constexpr uint64_t kChunkPages = 256;
  Region region(sb);
  RecordReader reader(device, region);
  const uint32_t ps = sb.page_size;
  AlignedBuffer chunk = aligned_buffer(kChunkPages * ps);
  if (!chunk) return Err{ENOMEM};
  uint64_t found = 0;
  for (uint64_t first = 0; first < sb.journal_pages; first += kChunkPages) {
    const uint64_t n = std::min(kChunkPages, sb.journal_pages - first);
    PAGEFS_TRY(device.read_at(region.offset + first * ps, chunk.get(), n * ps));
    if (after_read && !after_read(n)) return Err{ECANCELED};
    for (uint64_t i = 0; i < n; i++) {
      JournalHeader h;
      if (!record_starts_at(chunk.get() + i * ps, (first + i) * ps, region.capacity, &h)) continue;
      PAGEFS_ASSIGN(bool whole, reader.read(h.lsn, h.sequence));
      if (!whole) continue;
      uint64_t images = 0;
      PAGEFS_TRY(reader.visit(
          [&](PageNo page, const std::byte* image) { return visit(h.lsn, page, image); }, &images));
      found++;
    }
  }
  return found;
}

Result<RecoveryResult> Journal::replay(Device& device, const Superblock& sb) {
  const uint32_t ps = sb.page_size;
  auto result = scan(device, sb, [&](PageNo page, const std::byte* image) {
    return device.write_at(page.value * ps, image, ps);
  });
  if (!result.ok()) return result;
  if (result->transactions > 0) PAGEFS_TRY(device.flush());
  return result;
}

}  // namespace pagefs
