// Helpers that damage a formatted image precisely, for the tests of what the
// engine does with values it cannot trust.
//
// They work on a MemDevice holding an unmounted filesystem (4 KiB pages): read
// and rewrite superblock copies, find the leaf holding a key and the bytes of
// its value, find the records of the journal, and recompute the checksums a
// change broke ("restamp", "reseal"), so that the damage reaches the code that
// parses the bytes instead of stopping at a checksum mismatch.
//
// Thread-safety: none; use them only while no I/O runs on the device.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/crc32c.h"
#include "engine/format.h"
#include "engine/key.h"
#include "engine/mem_device.h"
#include "engine/node.h"

namespace pagefs::test {

inline constexpr uint32_t kPageBytes = 4096;

inline std::byte* page_at(MemDevice& dev, uint64_t page) {
  return dev.raw() + page * kPageBytes;
}

// Recomputes the CRC of a metadata page after its bytes were changed.
inline void restamp(MemDevice& dev, uint64_t page) {
  stamp_meta_page(page_at(dev, page), kPageBytes);
}

inline Superblock superblock(MemDevice& dev, uint64_t copy = 0) {
  Superblock sb;
  std::memcpy(&sb, page_at(dev, copy), sizeof sb);
  return sb;
}

// Stores `sb` as copy `copy` (0 or 1) with a valid checksum.
inline void put_superblock(MemDevice& dev, Superblock sb, uint64_t copy) {
  sb.header.page_no = copy;
  std::memcpy(page_at(dev, copy), &sb, sizeof sb);
  restamp(dev, copy);
}

// Stores `sb` in both copies.
inline void put_superblocks(MemDevice& dev, const Superblock& sb) {
  put_superblock(dev, sb, 0);
  put_superblock(dev, sb, 1);
}

inline Node node_at(MemDevice& dev, uint64_t page) {
  return Node(page_at(dev, page), kPageBytes);
}

// The page of the leaf that holds (or would hold) `key`.
inline uint64_t leaf_of(MemDevice& dev, const Key& key) {
  uint64_t page = superblock(dev).tree_root;
  for (int depth = 0; depth < 32; depth++) {
    Node node = node_at(dev, page);
    if (node.is_leaf()) return page;
    page = node.child_at(node.child_index(key));
  }
  ADD_FAILURE() << "tree deeper than 32 levels";
  return 0;
}

// The value bytes of `key` in its leaf; empty if the key is absent. The
// caller restamps leaf_of(key) after changing them.
inline std::span<std::byte> value_of(MemDevice& dev, const Key& key) {
  Node node = node_at(dev, leaf_of(dev, key));
  uint16_t i = node.lower_bound(key);
  if (i == node.count() || node.key_at(i) != key) return {};
  return node.mutable_value_at(i);
}

// The parent of the leaf holding `key` and the slot that points at it.
struct ParentSlot {
  uint64_t parent = 0;
  uint16_t slot = 0;
};
inline ParentSlot parent_of_leaf(MemDevice& dev, const Key& key) {
  ParentSlot out;
  uint64_t page = superblock(dev).tree_root;
  for (int depth = 0; depth < 32; depth++) {
    Node node = node_at(dev, page);
    if (node.is_leaf()) return out;
    out = ParentSlot{page, node.child_index(key)};
    page = node.child_at(out.slot);
  }
  return out;
}

// Overwrites the child pointer in slot `slot` of internal node `page`.
inline void set_child(MemDevice& dev, uint64_t page, uint16_t slot, uint64_t child) {
  auto v = node_at(dev, page).mutable_value_at(slot);
  std::memcpy(v.data(), &child, sizeof child);
  restamp(dev, page);
}

// Removes the item `key` from its leaf (which must keep at least one item).
inline void erase_item(MemDevice& dev, const Key& key) {
  const uint64_t leaf = leaf_of(dev, key);
  Node node = node_at(dev, leaf);
  uint16_t i = node.lower_bound(key);
  ASSERT_TRUE(i < node.count() && node.key_at(i) == key) << "no item to erase";
  ASSERT_GT(node.count(), 1) << "the leaf would be empty";
  node.erase_at(i);
  restamp(dev, leaf);
}

// Changes the inode record of `ino` on the unmounted device.
template <class Change>
void change_record(MemDevice& dev, uint64_t ino, Change change) {
  Key key = Key::of(ino, KeyKind::kInode, 0);
  auto v = value_of(dev, key);
  ASSERT_EQ(v.size(), sizeof(InodeRecord));
  InodeRecord rec;
  std::memcpy(&rec, v.data(), sizeof rec);
  change(rec);
  std::memcpy(v.data(), &rec, sizeof rec);
  restamp(dev, leaf_of(dev, key));
}

// Sets or clears the bitmap bit of `page` (with a valid checksum).
inline void set_bitmap_bit(MemDevice& dev, uint64_t page, bool used) {
  Superblock sb = superblock(dev);
  const uint64_t bits = bitmap_bits_per_page(kPageBytes);
  const uint64_t bitmap = sb.bitmap_start + page / bits;
  const uint64_t bit = page % bits;
  auto* byte = reinterpret_cast<uint8_t*>(page_at(dev, bitmap) + sizeof(PageHeader) + bit / 8);
  *byte = used ? uint8_t(*byte | (1u << (bit % 8))) : uint8_t(*byte & ~(1u << (bit % 8)));
  restamp(dev, bitmap);
}

// Flips one byte near the end of a page, leaving its header alone: a
// metadata page then fails its checksum, a data page its extent's CRC.
inline void break_page(MemDevice& dev, uint64_t page) {
  page_at(dev, page)[kPageBytes - 100] ^= std::byte{0x5a};
}

// The cookie of `name` in a directory that holds no other name of its hash.
inline uint64_t cookie_of(std::string_view name) {
  return name_hash(name.data(), name.size()) << kCookieCollisionBits;
}

// The extent value of (ino, kExtent, file_page).
inline ExtentValue extent_at(MemDevice& dev, uint64_t ino, uint64_t file_page) {
  ExtentValue ev{};
  auto v = value_of(dev, Key::of(ino, KeyKind::kExtent, file_page));
  EXPECT_GE(v.size(), sizeof ev);
  if (v.size() >= sizeof ev) std::memcpy(&ev, v.data(), sizeof ev);
  return ev;
}

// ---- the journal ------------------------------------------------------------------

// A whole-looking transaction record found by walking the journal from the
// superblock's tail: where its header and its commit page lie on the device.
struct RecordRef {
  uint64_t lsn = 0;
  uint64_t offset = 0;         // device byte offset of the record's header
  uint64_t commit_offset = 0;  // device byte offset of the commit page
  uint64_t record_bytes = 0;   // padded size of the record
  JournalHeader header{};
};

// Follows the records from the tail while their headers carry the expected
// sequence and LSN. Records must not wrap around the end of the region.
inline std::vector<RecordRef> journal_records(MemDevice& dev) {
  Superblock sb = superblock(dev);
  const uint64_t region = sb.journal_start * kPageBytes;
  const uint64_t capacity = sb.journal_pages * kPageBytes;
  std::vector<RecordRef> out;
  uint64_t lsn = sb.journal_tail, seq = sb.journal_sequence;
  for (;;) {
    RecordRef r;
    r.lsn = lsn;
    r.offset = region + lsn % capacity;
    std::memcpy(&r.header, dev.raw() + r.offset, sizeof r.header);
    if (r.header.magic != kJournalMagic || r.header.sequence != seq || r.header.lsn != lsn) break;
    r.record_bytes =
        (sizeof(JournalHeader) + r.header.payload_bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
    EXPECT_LE(lsn % capacity + r.record_bytes + kPageBytes, capacity) << "record wraps";
    r.commit_offset = r.offset + r.record_bytes;
    out.push_back(r);
    lsn += r.record_bytes + kPageBytes;
    seq++;
  }
  return out;
}

inline JournalImage image_entry(MemDevice& dev, const RecordRef& r, uint32_t i) {
  JournalImage img;
  std::memcpy(&img, dev.raw() + r.offset + sizeof(JournalHeader) + i * sizeof img, sizeof img);
  return img;
}

inline void put_image_entry(MemDevice& dev, const RecordRef& r, uint32_t i,
                            const JournalImage& img) {
  std::memcpy(dev.raw() + r.offset + sizeof(JournalHeader) + i * sizeof img, &img, sizeof img);
}

inline uint32_t journal_header_crc(JournalHeader h) {
  h.header_crc = 0;
  return crc32c(&h, sizeof h);
}

// Recomputes every checksum of a record and its commit after a change to the
// record's header or payload: a forged record that is whole but for what the
// change made impossible.
inline void reseal(MemDevice& dev, const RecordRef& r) {
  std::byte* rec = dev.raw() + r.offset;
  JournalHeader h;
  std::memcpy(&h, rec, sizeof h);
  h.payload_crc = crc32c(rec + sizeof h, h.payload_bytes);
  h.header_crc = journal_header_crc(h);
  std::memcpy(rec, &h, sizeof h);
  JournalHeader c;
  std::memcpy(&c, dev.raw() + r.commit_offset, sizeof c);
  c.payload_crc = crc32c(rec, r.record_bytes);
  c.header_crc = journal_header_crc(c);
  std::memcpy(dev.raw() + r.commit_offset, &c, sizeof c);
}

// Writes, at the place of record `r`, a transaction record with the same
// sequence number and LSN holding one raw image of `image_page`, and its
// commit: a forged record that is whole in every respect the journal's own
// checksums cover. It takes three pages, so it also overwrites what followed.
inline void forge_raw_record(MemDevice& dev, const RecordRef& r, uint64_t image_page,
                             const std::byte* image) {
  constexpr uint64_t kPayload = sizeof(JournalImage) + kPageBytes;
  constexpr uint64_t kRecord = 2 * kPageBytes;
  std::vector<std::byte> rec(kRecord + kPageBytes);
  JournalImage img{image_page, kPageBytes, 0};
  std::memcpy(rec.data() + sizeof(JournalHeader), &img, sizeof img);
  std::memcpy(rec.data() + sizeof(JournalHeader) + sizeof img, image, kPageBytes);
  JournalHeader h{kJournalMagic,
                  uint16_t(JournalKind::kTxn),
                  0,
                  0,
                  0,
                  r.header.sequence,
                  r.lsn,
                  kPayload,
                  1,
                  0};
  h.payload_crc = crc32c(rec.data() + sizeof h, kPayload);
  h.header_crc = journal_header_crc(h);
  std::memcpy(rec.data(), &h, sizeof h);
  JournalHeader c{kJournalMagic,
                  uint16_t(JournalKind::kCommit),
                  0,
                  0,
                  crc32c(rec.data(), kRecord),
                  r.header.sequence,
                  r.lsn + kRecord,
                  kRecord,
                  0,
                  0};
  c.header_crc = journal_header_crc(c);
  std::memcpy(rec.data() + kRecord, &c, sizeof c);
  std::memcpy(dev.raw() + r.offset, rec.data(), rec.size());
}

}  // namespace pagefs::test
