#include "engine/superblock.h"

#include <cstring>

namespace pagefs {
namespace {

bool fail(const char** why, const char* reason) {
  *why = reason;
  return false;
}

}  // namespace

bool valid_page_size(uint32_t ps) {
  return ps >= kMinPageSize && ps <= kMaxPageSize && (ps & (ps - 1)) == 0;
}

// Each comparison is arranged so that no sum of fields can wrap.
bool superblock_valid(const Superblock& s, const char** why) {
  const uint64_t n = s.page_count;
  if (s.header.magic != kPageMagic || std::memcmp(s.magic, kSuperMagic, sizeof kSuperMagic) != 0) {
    return fail(why, "no superblock magic");
  }
  if (!valid_page_size(s.page_size)) return fail(why, "invalid page size");
  if (s.journal_start < 2 || s.journal_start > n || s.journal_pages > n - s.journal_start) {
    return fail(why, "journal region out of place");
  }
  if (s.journal_pages < kMinJournalPages) return fail(why, "journal region too small");
  if (s.bitmap_start < s.journal_start + s.journal_pages || s.bitmap_start > n ||
      s.bitmap_pages > n - s.bitmap_start) {
    return fail(why, "bitmap region out of place");
  }
  const uint64_t bits = bitmap_bits_per_page(s.page_size);
  if (s.bitmap_pages != n / bits + (n % bits != 0)) {
    return fail(why, "bitmap size does not match page_count");
  }
  if (s.data_start < s.bitmap_start + s.bitmap_pages || s.data_start >= n) {
    return fail(why, "data region out of place");
  }
  if (s.tree_root < s.data_start || s.tree_root >= n) {
    return fail(why, "tree root outside the data region");
  }
  if (s.tree_height < 1 || s.tree_height > kMaxTreeHeight) {
    return fail(why, "tree height out of range");
  }
  if (s.next_inode < 2) return fail(why, "next_inode below 2");
  if (s.next_inode > kMaxInodeNumber) return fail(why, "next_inode past the largest inode number");
  if (s.journal_tail % s.page_size != 0 || s.journal_tail > kMaxLsn ||
      s.journal_sequence > kMaxLsn) {
    return fail(why, "journal tail out of range");
  }
  return true;
}

bool superblock_fits(const Superblock& sb, uint64_t device_bytes) {
  return sb.page_count <= device_bytes / sb.page_size;
}

bool same_geometry(const Superblock& a, const Superblock& b) {
  return a.page_size == b.page_size && a.page_count == b.page_count &&
         a.journal_start == b.journal_start && a.journal_pages == b.journal_pages &&
         a.bitmap_start == b.bitmap_start && a.bitmap_pages == b.bitmap_pages &&
         a.data_start == b.data_start;
}

}  // namespace pagefs
