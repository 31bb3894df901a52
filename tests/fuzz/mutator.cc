// The mutator's dispatch, and the raw, superblock and bitmap families.
#include <cstddef>
#include <cstring>
#include <vector>

#include "tests/fuzz/mutation_context.h"

namespace pagefs::fuzz {

uint64_t MutationContext::journal_page() {
  if (!map.txns.empty() && rng.chance(0.7)) {
    const JournalTxn& t = rng.pick(map.txns);
    uint64_t lsn = t.lsn + ps() * rng.below(t.record_bytes / ps() + 1);
    return map.journal_offset(lsn) / ps();
  }
  return map.sb.journal_start + rng.below(map.sb.journal_pages);
}

namespace {

// ---- raw -------------------------------------------------------------------

uint64_t pick_page(MutationContext& ctx, std::string* kind) {
  static const char* kKinds[] = {"superblock", "journal", "bitmap", "node", "data", "any"};
  size_t k = ctx.rng.weighted({1, 2, 1, 3, 2, 2});
  *kind = kKinds[k];
  switch (k) {
    case 0:
      return ctx.rng.below(2);
    case 1:
      return ctx.journal_page();
    case 2:
      return ctx.bitmap_page();
    case 3:
      return ctx.node_page();
    case 4:
      return ctx.data_page();
    default:
      return ctx.any_page();
  }
}

std::string page_name(uint64_t page, const std::string& kind) {
  return kind + " page " + std::to_string(page);
}

Mutation flip_bits(MutationContext& ctx) {
  std::string kind;
  uint64_t p = pick_page(ctx, &kind);
  int bits = int(ctx.rng.range(1, 8));
  std::string desc = "flip in " + page_name(p, kind) + ": ";
  for (int i = 0; i < bits; i++) {
    uint64_t byte = ctx.rng.below(ctx.ps());
    int bit = int(ctx.rng.below(8));
    ctx.page(p)[byte] ^= std::byte(1u << bit);
    desc += (i ? ", " : "") + std::string("byte ") + std::to_string(byte) + " bit " +
            std::to_string(bit);
  }
  return Mutation{"raw.bitflip", desc};
}

Mutation zero_page(MutationContext& ctx) {
  std::string kind;
  uint64_t p = pick_page(ctx, &kind);
  std::memset(ctx.page(p), 0, ctx.ps());
  return Mutation{"raw.zero", "zeroed " + page_name(p, kind)};
}

Mutation swap_or_copy(MutationContext& ctx, bool swap) {
  std::string kind_a, kind_b;
  uint64_t a = pick_page(ctx, &kind_a), b = pick_page(ctx, &kind_b);
  std::vector<std::byte> tmp(ctx.page(a), ctx.page(a) + ctx.ps());
  if (swap) std::memcpy(ctx.page(a), ctx.page(b), ctx.ps());
  std::memcpy(ctx.page(b), tmp.data(), ctx.ps());
  return Mutation{swap ? "raw.swap" : "raw.copy",
                  std::string(swap ? "swapped " : "copied ") + page_name(a, kind_a) +
                      (swap ? " and " : " over ") + page_name(b, kind_b)};
}

// ---- superblock --------------------------------------------------------------

struct SuperField {
  const char* name;
  size_t offset;
  size_t bytes;
};

constexpr SuperField kSuperFields[] = {
    {"page_count", offsetof(Superblock, page_count), 8},
    {"bitmap_start", offsetof(Superblock, bitmap_start), 8},
    {"bitmap_pages", offsetof(Superblock, bitmap_pages), 8},
    {"data_start", offsetof(Superblock, data_start), 8},
    {"tree_root", offsetof(Superblock, tree_root), 8},
    {"tree_height", offsetof(Superblock, tree_height), 4},
    {"next_inode", offsetof(Superblock, next_inode), 8},
    {"journal_tail", offsetof(Superblock, journal_tail), 8},
    {"journal_sequence", offsetof(Superblock, journal_sequence), 8},
    {"generation", offsetof(Superblock, generation), 8},
    {"journal_start", offsetof(Superblock, journal_start), 8},
    {"journal_pages", offsetof(Superblock, journal_pages), 8},
    {"page_size", offsetof(Superblock, page_size), 4},
    {"free_pages", offsetof(Superblock, free_pages), 8},
    {"state", offsetof(Superblock, state), 4},
};

// Values that are wrong in a way particular to the field: a root that is
// another kind of page, a journal tail off by a page or a byte or at an
// older record, a data region that overlaps the bitmap.
std::vector<uint64_t> field_values(MutationContext& ctx, const std::string& name, uint64_t old) {
  const Superblock& sb = ctx.map.sb;
  const uint64_t ps = ctx.ps();
  if (name == "tree_root") return {ctx.node_page(), ctx.data_page(), ctx.bitmap_page()};
  if (name == "journal_tail") {
    return {old + ps,     old - ps,
            old + 2 * ps, old - 2 * ps,
            old + 1,      ctx.map.txns.empty() ? old + ps : ctx.rng.pick(ctx.map.txns).lsn};
  }
  if (name == "journal_sequence") return {old + 1, old - 1, old + 2};
  if (name == "data_start" || name == "bitmap_start") {
    return {sb.bitmap_start, sb.data_start - 1, sb.data_start + 1, sb.journal_start};
  }
  if (name == "bitmap_pages") return {old + 1, old - 1, 1ull << 40};
  return {};
}

// A value a damaged field might hold: one particular to the field, or one
// near the old value, at the edges of the device, or anything.
uint64_t damaged_value(MutationContext& ctx, const SuperField& f, uint64_t old) {
  const uint64_t pc = ctx.page_count();
  std::vector<uint64_t> c = field_values(ctx, f.name, old);
  if (c.empty() || ctx.rng.chance(0.4)) {
    c = {0,
         1,
         old - 1,
         old + 1,
         old * 2,
         old / 2,
         pc,
         pc + 1,
         pc - 1,
         UINT64_MAX,
         1ull << ctx.rng.below(64),
         ctx.rng.next(),
         ctx.any_page()};
  }
  uint64_t v = ctx.rng.pick(c);
  if (f.bytes == 4) v &= 0xffffffffu;
  return v == old ? old ^ 1 : v;
}

Mutation damage_superblock_field(MutationContext& ctx) {
  const SuperField& f = kSuperFields[ctx.rng.below(std::size(kSuperFields))];
  int which = int(ctx.rng.below(3));  // copy 0, copy 1, or both
  bool restamp = ctx.rng.chance(0.7);
  uint64_t old = 0;
  std::memcpy(&old, ctx.page(which == 1 ? 1 : 0) + f.offset, f.bytes);
  uint64_t v = damaged_value(ctx, f, old);
  for (uint64_t copy = 0; copy < 2; copy++) {
    if (which != 2 && copy != uint64_t(which)) continue;
    std::memcpy(ctx.page(copy) + f.offset, &v, f.bytes);
    if (restamp) ctx.restamp(copy);
  }
  std::string copies = which == 2 ? "both copies" : "copy " + std::to_string(which);
  return Mutation{restamp ? "super.field+crc" : "super.field",
                  "superblock " + copies + ": " + f.name + " " + std::to_string(old) + " -> " +
                      std::to_string(v) + (restamp ? ", crc recomputed" : ", crc left stale")};
}

// ---- bitmap ------------------------------------------------------------------

// Sets or clears the bit of device page p; returns the bitmap page it is on.
uint64_t set_bitmap_bit(MutationContext& ctx, uint64_t p, bool used) {
  const uint64_t bits = bitmap_bits_per_page(ctx.ps());
  uint64_t bpage = ctx.map.sb.bitmap_start + p / bits;
  std::byte& b = ctx.page(bpage)[sizeof(PageHeader) + (p % bits) / 8];
  std::byte mask{uint8_t(1u << (p % 8))};
  b = used ? (b | mask) : (b & ~mask);
  return bpage;
}

Mutation damage_bitmap(MutationContext& ctx) {
  static const char* kWhat[] = {"used pages marked free", "free pages marked used",
                                "fixed-region page marked free", "page past the end marked free"};
  size_t what = ctx.rng.weighted({4, 2, 1, 1});
  int n = int(ctx.rng.range(1, 4));
  std::string pages;
  for (int i = 0; i < n; i++) {
    uint64_t p = what == 0   ? (ctx.rng.chance(0.5) ? ctx.node_page() : ctx.data_page())
                 : what == 1 ? ctx.map.sb.data_start +
                                   ctx.rng.below(ctx.page_count() - ctx.map.sb.data_start)
                 : what == 2 ? ctx.rng.below(ctx.map.sb.data_start)
                             : ctx.page_count() + ctx.rng.below(64);
    uint64_t bits_total = ctx.map.sb.bitmap_pages * bitmap_bits_per_page(ctx.ps());
    if (p >= bits_total) continue;
    ctx.restamp(set_bitmap_bit(ctx, p, what == 1));
    pages += (pages.empty() ? "" : ", ") + std::to_string(p);
  }
  return Mutation{"bitmap.bits",
                  std::string(kWhat[what]) + ": pages " + pages + ", crc recomputed"};
}

// ---- dispatch ------------------------------------------------------------------

Mutation mutate_one(MutationContext& ctx) {
  switch (ctx.rng.weighted({6, 2, 2, 2, 10, 4, 16, 20, 8, 14})) {
    case 0:
      return flip_bits(ctx);
    case 1:
      return zero_page(ctx);
    case 2:
      return swap_or_copy(ctx, true);
    case 3:
      return swap_or_copy(ctx, false);
    case 4:
      return damage_superblock_field(ctx);
    case 5:
      return damage_bitmap(ctx);
    case 6:
      return mutate_node(ctx);
    case 7:
      return mutate_item(ctx);
    case 8:
      return damage_journal(ctx);
    default:
      return forge_journal(ctx);
  }
}

}  // namespace

Mutation mutate_raw(MutationContext& ctx) {
  return flip_bits(ctx);
}

Mutation mutate_image(MemDevice& image, const ImageMap& map, Rng& rng) {
  MutationContext ctx{image, map, rng};
  return mutate_one(ctx);
}

}  // namespace pagefs::fuzz
