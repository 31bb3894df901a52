// Journal mutations: damage to a committed record (recovery must stop at it,
// and keep everything before it), and forged transactions appended at the
// head whose checksums are all valid but whose contents are impossible.
#include <zstd.h>

#include <string>
#include <vector>

#include "engine/crc32c.h"
#include "tests/fuzz/mutation_context.h"

namespace pagefs::fuzz {
namespace {

JournalHeader load_header(MutationContext& ctx, uint64_t lsn) {
  JournalHeader h;
  std::memcpy(&h, ctx.dev.raw() + ctx.map.journal_offset(lsn), sizeof h);
  return h;
}

void store_header(MutationContext& ctx, uint64_t lsn, JournalHeader h) {
  h.header_crc = 0;
  h.header_crc = crc32c(&h, sizeof h);
  std::memcpy(ctx.dev.raw() + ctx.map.journal_offset(lsn), &h, sizeof h);
}

// Writes whole pages at `lsn`, following the wrap of the region.
void write_journal(MutationContext& ctx, uint64_t lsn, const std::string& bytes) {
  for (size_t at = 0; at < bytes.size(); at += ctx.ps()) {
    std::memcpy(ctx.dev.raw() + ctx.map.journal_offset(lsn + at), bytes.data() + at, ctx.ps());
  }
}

// ---- damage to a committed record -------------------------------------------------

std::string damage_txn(MutationContext& ctx, const JournalTxn& t) {
  const uint64_t commit = t.lsn + t.record_bytes;
  switch (ctx.rng.below(6)) {
    case 0:
      ctx.dev.raw()[ctx.map.journal_offset(t.lsn) + ctx.rng.below(sizeof(JournalHeader))] ^=
          std::byte(1u << ctx.rng.below(8));
      return "a bit of the record header flipped";
    case 1: {
      uint64_t at = sizeof(JournalHeader) + ctx.rng.below(t.record_bytes - sizeof(JournalHeader));
      ctx.dev.raw()[ctx.map.journal_offset(t.lsn + at)] ^= std::byte(1u << ctx.rng.below(8));
      return "a bit of the record body flipped at byte " + std::to_string(at);
    }
    case 2:
      std::memset(ctx.dev.raw() + ctx.map.journal_offset(commit), 0, ctx.ps());
      return "commit record zeroed";
    case 3: {
      JournalHeader h = load_header(ctx, t.lsn);
      h.sequence += ctx.rng.range(1, 3);
      store_header(ctx, t.lsn, h);
      return "record sequence changed, header crc recomputed";
    }
    case 4: {
      JournalHeader c = load_header(ctx, commit);
      c.payload_bytes += ctx.ps() * ctx.rng.range(1, 2);
      store_header(ctx, commit, c);
      return "commit payload_bytes changed, header crc recomputed";
    }
    default: {
      JournalHeader h = load_header(ctx, t.lsn);
      h.lsn += ctx.ps();
      store_header(ctx, t.lsn, h);
      return "record lsn changed, header crc recomputed";
    }
  }
}

// ---- forged transactions --------------------------------------------------------------

struct Forgery {
  std::vector<JournalImage> table;
  std::string images;          // the images' stored bytes, in table order
  uint32_t image_count = 0;    // as the header states it
  uint64_t payload_bytes = 0;  // as the header states it; 0: the real size
  bool with_commit = true;
};

std::string page_copy(MutationContext& ctx, uint64_t page) {
  return std::string(reinterpret_cast<const char*>(ctx.page(page)), ctx.ps());
}

std::string zstd_frame(const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 1);
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

void add_image(Forgery& f, uint64_t page_no, uint32_t flags, const std::string& stored,
               uint32_t stored_bytes) {
  f.table.push_back(JournalImage{page_no, stored_bytes, flags});
  f.images += stored;
  f.image_count++;
}

// Writes the forgery as the next transaction: at the head, with the sequence
// recovery expects there, every checksum valid.
void write_forgery(MutationContext& ctx, const Forgery& f) {
  const uint64_t ps = ctx.ps(), lsn = ctx.map.head_lsn, seq = ctx.map.next_sequence;
  std::string payload(reinterpret_cast<const char*>(f.table.data()),
                      f.table.size() * sizeof(JournalImage));
  payload += f.images;
  std::string record(sizeof(JournalHeader) + payload.size(), '\0');
  record.resize((record.size() + ps - 1) / ps * ps, '\0');
  JournalHeader h{kJournalMagic,
                  uint16_t(JournalKind::kTxn),
                  0,
                  0,
                  crc32c(payload.data(), payload.size()),
                  seq,
                  lsn,
                  f.payload_bytes ? f.payload_bytes : payload.size(),
                  f.image_count,
                  0};
  h.header_crc = crc32c(&h, sizeof h);
  std::memcpy(record.data(), &h, sizeof h);
  std::memcpy(record.data() + sizeof h, payload.data(), payload.size());
  write_journal(ctx, lsn, record);
  if (!f.with_commit) return;
  std::string commit(ps, '\0');
  JournalHeader c{kJournalMagic,
                  uint16_t(JournalKind::kCommit),
                  0,
                  0,
                  crc32c(record.data(), record.size()),
                  seq,
                  lsn + record.size(),
                  record.size(),
                  0,
                  0};
  c.header_crc = crc32c(&c, sizeof c);
  std::memcpy(commit.data(), &c, sizeof c);
  write_journal(ctx, lsn + record.size(), commit);
}

std::string forge_payload_bytes(MutationContext& ctx, Forgery& f) {
  const uint64_t capacity = ctx.map.sb.journal_pages * ctx.ps();
  uint64_t p = ctx.node_page();
  add_image(f, p, 0, page_copy(ctx, p), ctx.ps());
  f.payload_bytes = ctx.rng.pick<uint64_t>(
      {UINT64_MAX, UINT64_MAX - 47, UINT64_MAX - 48 - ctx.rng.below(3 * ctx.ps()), 1ull << 63,
       capacity, capacity - sizeof(JournalHeader) - ctx.ps(), capacity * 3});
  f.with_commit = false;
  return "payload_bytes " + std::to_string(f.payload_bytes);
}

std::string forge_image_count(MutationContext& ctx, Forgery& f) {
  uint64_t p = ctx.node_page();
  add_image(f, p, 0, page_copy(ctx, p), ctx.ps());
  f.image_count = uint32_t(ctx.rng.pick<uint64_t>({2, 1000, 0xffffffff, 0x10000000}));
  return "1 image (node " + std::to_string(p) + ") but image_count " +
         std::to_string(f.image_count);
}

std::string forge_target(MutationContext& ctx, Forgery& f) {
  const uint64_t pc = ctx.page_count(),
                 head_page = ctx.map.journal_offset(ctx.map.head_lsn) / ctx.ps();
  uint64_t target =
      ctx.rng.pick<uint64_t>({pc, pc + ctx.rng.below(1000), 1ull << 40, UINT64_MAX, head_page,
                              head_page + 1, ctx.map.sb.journal_start, ctx.journal_page()});
  std::string frame = zstd_frame(page_copy(ctx, ctx.node_page()));
  add_image(f, target, kImageZstd, frame, uint32_t(frame.size()));
  bool in_journal = target >= ctx.map.sb.journal_start &&
                    target < ctx.map.sb.journal_start + ctx.map.sb.journal_pages;
  return "image of a tree node targets page " + std::to_string(target) +
         (in_journal ? " (inside the journal)" : " (outside the filesystem)");
}

std::string forge_zstd(MutationContext& ctx, Forgery& f) {
  const std::string page = page_copy(ctx, ctx.node_page());
  const uint64_t p = ctx.node_page();
  switch (ctx.rng.below(7)) {
    case 0: {
      std::string junk = "\x28\xb5\x2f\xfd" + pattern(ctx.rng.next(), ctx.rng.range(8, 300));
      add_image(f, p, kImageZstd, junk, uint32_t(junk.size()));
      return "zstd image of random bytes";
    }
    case 1: {
      std::string short_frame = zstd_frame(page.substr(0, ctx.ps() / 2));
      add_image(f, p, kImageZstd, short_frame, uint32_t(short_frame.size()));
      return "zstd image of half a page";
    }
    case 2: {
      std::string long_frame = zstd_frame(page + page);
      add_image(f, p, kImageZstd, long_frame, uint32_t(long_frame.size()));
      return "zstd image of two pages";
    }
    case 3: {
      std::string frame = zstd_frame(page);
      frame.resize(frame.size() / 2);
      add_image(f, p, kImageZstd, frame, uint32_t(frame.size()));
      return "truncated zstd image";
    }
    case 4: {
      std::string frame = zstd_frame(page);
      add_image(f, p, kImageZstd, frame, uint32_t(frame.size() + ctx.rng.range(1, 100000)));
      return "image stored_bytes past the payload";
    }
    case 5:
      add_image(f, p, 0, page.substr(0, ctx.ps() / 2), ctx.ps() / 2);
      return "raw image of half a page";
    default:
      add_image(f, p, uint32_t(ctx.rng.range(2, 0xffffffffu)), page, ctx.ps());
      return "image with unknown flags";
  }
}

// A superblock image that is itself valid (CRC and all) but says something
// no commit ever writes.
std::string forge_superblock(MutationContext& ctx, Forgery& f) {
  std::string image = page_copy(ctx, 0);
  Superblock sb;
  std::memcpy(&sb, image.data(), sizeof sb);
  std::string what;
  switch (ctx.rng.below(4)) {
    case 0:
      what = "generation " + std::to_string(sb.generation) + " -> 0 (older than page 1)";
      sb.generation = 0;
      break;
    case 1:
      what = "next_inode " + std::to_string(sb.next_inode) + " -> 2 (numbers in use)";
      sb.next_inode = 2;
      break;
    case 2:
      what = "tree_root -> data page";
      sb.tree_root = ctx.data_page();
      break;
    default:
      what = "page_count " + std::to_string(sb.page_count) + " -> " +
             std::to_string(sb.page_count * 4) + " (larger than the device)";
      sb.page_count *= 4;
      break;
  }
  std::memcpy(image.data(), &sb, sizeof sb);
  stamp_meta_page(reinterpret_cast<std::byte*>(image.data()), ctx.ps());
  std::string frame = zstd_frame(image);
  add_image(f, 0, kImageZstd, frame, uint32_t(frame.size()));
  return "valid superblock image with " + what;
}

}  // namespace

Mutation damage_journal(MutationContext& ctx) {
  if (ctx.map.txns.empty()) {
    uint64_t p = ctx.journal_page();
    ctx.page(p)[ctx.rng.below(ctx.ps())] ^= std::byte(1u << ctx.rng.below(8));
    return Mutation{"journal.damage",
                    "a bit flipped in checkpointed journal page " + std::to_string(p)};
  }
  size_t i = ctx.rng.below(ctx.map.txns.size());
  std::string what = damage_txn(ctx, ctx.map.txns[i]);
  return Mutation{"journal.damage", "transaction " + std::to_string(i + 1) + " of " +
                                        std::to_string(ctx.map.txns.size()) + " (sequence " +
                                        std::to_string(ctx.map.txns[i].sequence) + "): " + what};
}

Mutation forge_journal(MutationContext& ctx) {
  static const char* kClasses[] = {"journal.forge.payload_bytes", "journal.forge.image_count",
                                   "journal.forge.target", "journal.forge.zstd",
                                   "journal.forge.superblock"};
  size_t k = ctx.rng.weighted({2, 2, 3, 3, 2});
  Forgery f;
  std::string what = k == 0   ? forge_payload_bytes(ctx, f)
                     : k == 1 ? forge_image_count(ctx, f)
                     : k == 2 ? forge_target(ctx, f)
                     : k == 3 ? forge_zstd(ctx, f)
                              : forge_superblock(ctx, f);
  write_forgery(ctx, f);
  return Mutation{kClasses[k], "forged transaction at lsn " + std::to_string(ctx.map.head_lsn) +
                                   " sequence " + std::to_string(ctx.map.next_sequence) + ": " +
                                   what};
}

}  // namespace pagefs::fuzz
