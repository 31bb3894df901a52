// Leaf item mutations: one field of one extent, directory entry, inode record
// or xattr (also of the page record of a value kept in data pages, and of an
// inline POSIX ACL) made impossible (or, for the lies, plausible but false), with the node's CRC
// recomputed.
#include <sys/stat.h>

#include <string>
#include <vector>

#include "engine/posix_acl.h"
#include "tests/fuzz/mutation_context.h"
#include "tests/fuzz/raw_node.h"

namespace pagefs::fuzz {
namespace {

// A leaf item found again in the image being mutated.
struct Item {
  CellRef ref;
  std::byte* value = nullptr;
  uint16_t len = 0;
  std::string name;  // "extent (5, 4, 0) in node 1030"
};

std::string key_text(const CellRef& c) {
  return "(" + std::to_string(c.ino) + ", " + std::to_string(c.kind) + ", " +
         std::to_string(c.off) + ")";
}

// Finds the cell `c` in the image; false if an earlier mutation moved it or
// its value is shorter than `min_len`.
bool find_cell(MutationContext& ctx, const CellRef& c, size_t min_len, Item* out) {
  RawNode node(ctx.page(c.node), ctx.ps());
  if (!node.is_node() || c.slot >= node.count()) return false;
  auto cell = node.cell(c.slot);
  if (!cell) return false;
  DiskKey k = node.key_at(*cell);
  if (k.ino != c.ino || k.kind != c.kind || k.off != c.off) return false;
  if (node.value_len_at(*cell) < min_len) return false;
  static const char* kNames[] = {"?", "inode", "xattr", "dirent", "extent", "orphan"};
  *out =
      Item{c, node.value_at(*cell), node.value_len_at(*cell),
           std::string(kNames[c.kind]) + " " + key_text(c) + " in node " + std::to_string(c.node)};
  return true;
}

// Picks a cell of `kind` and finds it in the image; false if an earlier
// mutation moved it or the base has none. Xattrs kept in data pages are few
// among the base images' xattrs, so half of the xattr picks are among them.
bool find_item(MutationContext& ctx, KeyKind kind, size_t min_len, Item* out) {
  std::vector<const CellRef*> cells;
  for (const CellRef& c : ctx.map.cells) {
    if (c.kind == uint8_t(kind)) cells.push_back(&c);
  }
  if (cells.empty()) return false;
  if (kind == KeyKind::kXattr && ctx.rng.chance(0.5)) {
    std::vector<Item> paged;
    for (const CellRef* c : cells) {
      Item item;
      if (find_cell(ctx, *c, sizeof(XattrValue), &item) &&
          (std::to_integer<uint8_t>(item.value[offsetof(XattrValue, flags)]) & kXattrInPages)) {
        paged.push_back(item);
      }
    }
    if (!paged.empty()) return *out = paged[ctx.rng.below(paged.size())], true;
  }
  return find_cell(ctx, *cells[ctx.rng.below(cells.size())], min_len, out);
}

template <class T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

uint64_t pick_other(Rng& rng, const std::vector<uint64_t>& candidates, uint64_t old) {
  uint64_t v = rng.pick(candidates);
  return v == old ? old + 1 : v;
}

std::string change(const char* field, uint64_t old, uint64_t v) {
  return std::string(field) + " " + std::to_string(old) + " -> " + std::to_string(v);
}

// ---- extents -------------------------------------------------------------------

// A device page an extent must not point at, and what it is.
uint64_t bad_phys(MutationContext& ctx, const ExtentValue& ev, std::string* what) {
  static const char* kWhat[] = {"a superblock", "a journal page",      "a bitmap page",
                                "a tree node",  "another file's data", "the next page",
                                "past the end", "far past the end"};
  size_t k = ctx.rng.weighted({1, 1, 1, 2, 3, 1, 1, 1});
  *what = kWhat[k];
  const uint64_t pc = ctx.page_count();
  const uint64_t choices[] = {ctx.rng.below(2),
                              ctx.journal_page(),
                              ctx.bitmap_page(),
                              ctx.node_page(),
                              ctx.data_page(),
                              ev.phys + 1,
                              pc - ctx.rng.below(std::min<uint64_t>(ev.pages, pc)),
                              UINT64_MAX - ctx.rng.below(16)};
  return choices[k];
}

// Another file's extent of the same length, or nullptr.
const ExtentRef* alias_source(MutationContext& ctx, const Item& item, uint16_t pages) {
  std::vector<const ExtentRef*> same;
  for (const ExtentRef& e : ctx.map.extents) {
    if (e.pages == pages && e.cell.ino != item.ref.ino) same.push_back(&e);
  }
  return same.empty() ? nullptr : same[ctx.rng.below(same.size())];
}

// Copies another file's extent value (pages and their CRCs) over this one.
std::string alias(MutationContext& ctx, Item& item, const ExtentValue& ev) {
  const ExtentRef* src = alias_source(ctx, item, ev.pages);
  if (src == nullptr) return "";
  RawNode node(ctx.page(src->cell.node), ctx.ps());
  auto cell = node.is_node() ? node.cell(src->cell.slot) : std::nullopt;
  if (!cell || node.value_len_at(*cell) != item.len) return "";
  std::memmove(item.value, node.value_at(*cell), item.len);
  return "aliased to inode " + std::to_string(src->cell.ino) + "'s extent at phys " +
         std::to_string(src->phys) + " with its CRCs";
}

std::string extent_field(MutationContext& ctx, Item& item, size_t k, bool* lie) {
  ExtentValue ev = load<ExtentValue>(item.value);
  std::string what;
  switch (k) {
    case 0: {
      uint64_t v = bad_phys(ctx, ev, &what);
      store(item.value + offsetof(ExtentValue, phys), v);
      return change("phys", ev.phys, v) + " (" + what + ")";
    }
    case 1: {
      uint16_t v =
          uint16_t(pick_other(ctx.rng, {0, 33, 65535, ev.pages + 1u, ev.pages - 1u}, ev.pages));
      store(item.value + offsetof(ExtentValue, pages), v);
      return change("pages", ev.pages, v);
    }
    case 2: {
      if (ev.pages >= kMaxExtentPages) return "";
      uint32_t v = ev.unwritten_mask | (1u << ctx.rng.range(ev.pages, kMaxExtentPages - 1));
      store(item.value + offsetof(ExtentValue, unwritten_mask), v);
      return change("unwritten_mask", ev.unwritten_mask, v) + " (bit past the pages)";
    }
    case 3: {
      uint32_t bit = 1u << ctx.rng.below(ev.pages);
      *lie = !(ev.unwritten_mask & bit);  // a written page now reads as zeros
      store(item.value + offsetof(ExtentValue, unwritten_mask), ev.unwritten_mask ^ bit);
      return change("unwritten_mask", ev.unwritten_mask, ev.unwritten_mask ^ bit);
    }
    case 4:
      *lie = true;
      return alias(ctx, item, ev);
    default: {
      uint64_t i = ctx.rng.below(ev.pages);
      std::byte* crc = item.value + sizeof(ExtentValue) + 4 * i;
      *crc ^= std::byte(1u << ctx.rng.below(8));
      return "CRC of page " + std::to_string(i) + " flipped";
    }
  }
}

std::string extent(MutationContext& ctx, Item& item, std::string* cls, bool* lie) {
  static const char* kClasses[] = {"extent.phys",      "extent.pages", "extent.unwritten_past",
                                   "extent.unwritten", "extent.alias", "extent.crc"};
  size_t k = ctx.rng.weighted({6, 2, 2, 1, 1, 1});
  *cls = kClasses[k];
  return extent_field(ctx, item, k, lie);
}

// ---- directory entries, inodes, xattrs ------------------------------------------

std::string dirent(MutationContext& ctx, Item& item, std::string* cls) {
  DirentValue d = load<DirentValue>(item.value);
  switch (ctx.rng.weighted({2, 4, 1, 1})) {
    case 0: {
      *cls = "dirent.name_len";
      uint8_t v = uint8_t(pick_other(
          ctx.rng, {0, d.name_len + 1u, d.name_len - 1u, 255, ctx.rng.below(256)}, d.name_len));
      store(item.value + offsetof(DirentValue, name_len), v);
      return change("name_len", d.name_len, v);
    }
    case 1: {
      *cls = "dirent.ino";
      uint64_t v =
          pick_other(ctx.rng,
                     {0, UINT64_MAX, 1ull << 63, ctx.map.sb.next_inode + ctx.rng.range(0, 999),
                      ctx.rng.pick(ctx.map.inodes), item.ref.ino, kRootInode.value},
                     d.ino);
      store(item.value + offsetof(DirentValue, ino), v);
      return change("ino", d.ino, v);
    }
    case 2: {
      *cls = "dirent.type";
      uint8_t v = uint8_t(pick_other(ctx.rng, {0, 1, 2, 4, 8, 10, 12, 14, 255}, d.type));
      store(item.value + offsetof(DirentValue, type), v);
      return change("type", d.type, v);
    }
    default: {
      *cls = "dirent.name";
      if (item.len <= sizeof(DirentValue)) return "";
      uint64_t at = sizeof(DirentValue) + ctx.rng.below(item.len - sizeof(DirentValue));
      item.value[at] ^= std::byte(1u << ctx.rng.below(7));
      return "name byte " + std::to_string(at - sizeof(DirentValue)) + " changed";
    }
  }
}

std::string inode(MutationContext& ctx, Item& item, std::string* cls) {
  InodeRecord r = load<InodeRecord>(item.value);
  switch (ctx.rng.weighted({3, 3, 2, 1, 1})) {
    case 0: {
      *cls = "inode.mode";
      uint32_t type = uint32_t(ctx.rng.pick<uint64_t>(
          {S_IFDIR, S_IFREG, S_IFLNK, 0, S_IFCHR, S_IFIFO, 0xF000, ctx.rng.next() & S_IFMT}));
      uint32_t v = (r.mode & ~uint32_t(S_IFMT)) | type;
      if (v == r.mode) v ^= S_IFDIR ^ S_IFREG;
      store(item.value + offsetof(InodeRecord, mode), v);
      return change("mode", r.mode, v);
    }
    case 1: {
      *cls = "inode.size";
      uint64_t v = pick_other(ctx.rng,
                              {0, r.size + 1, r.size - 1, r.size + ctx.ps(), 1ull << 62, UINT64_MAX,
                               ctx.rng.next() >> ctx.rng.below(64)},
                              r.size);
      store(item.value + offsetof(InodeRecord, size), v);
      return change("size", r.size, v);
    }
    case 2: {
      *cls = "inode.nlink";
      uint32_t v = uint32_t(pick_other(ctx.rng, {0, 1, r.nlink + 1u, 0xffffffffu}, r.nlink));
      store(item.value + offsetof(InodeRecord, nlink), v);
      return change("nlink", r.nlink, v);
    }
    case 3: {
      *cls = "inode.parent";
      uint64_t v = pick_other(ctx.rng, {0, item.ref.ino, ctx.rng.pick(ctx.map.inodes), UINT64_MAX},
                              r.parent);
      store(item.value + offsetof(InodeRecord, parent), v);
      return change("parent", r.parent, v);
    }
    default: {
      *cls = "inode.blocks";
      uint64_t v = pick_other(ctx.rng, {0, r.blocks + 1, UINT64_MAX}, r.blocks);
      store(item.value + offsetof(InodeRecord, blocks), v);
      return change("blocks", r.blocks, v);
    }
  }
}

// Bytes of the value's CRC32C after the name (kXattrCrc), or 0.
size_t crc_bytes(const XattrValue& x) {
  return (x.flags & kXattrCrc) ? kXattrCrcBytes : 0;
}

// A value kept in pages: one field of its XattrPages record, or one page
// entry pointed elsewhere or its CRC flipped.
std::string xattr_pages(MutationContext& ctx, Item& item, const XattrValue& x, std::string* cls) {
  std::byte* record = item.value + sizeof(XattrValue) + x.name_len + crc_bytes(x);
  XattrPages p = load<XattrPages>(record);
  if (x.value_len < crc_bytes(x) + sizeof p || p.pages == 0) return "";
  std::byte* entry = record + sizeof p + sizeof(XattrPage) * ctx.rng.below(p.pages);
  XattrPage page = load<XattrPage>(entry);
  switch (ctx.rng.weighted({2, 2, 1, 4, 2})) {
    case 0: {
      *cls = "xattr.value_bytes";
      uint32_t v = uint32_t(pick_other(ctx.rng,
                                       {0, p.value_bytes + 1u, p.value_bytes - 1u,
                                        p.value_bytes + ctx.ps(), kMaxXattrValue + 1, UINT32_MAX},
                                       p.value_bytes));
      store(record + offsetof(XattrPages, value_bytes), v);
      return change("value_bytes", p.value_bytes, v);
    }
    case 1: {
      *cls = "xattr.pages";
      uint16_t v = uint16_t(pick_other(ctx.rng, {0, p.pages + 1u, p.pages - 1u, 65535}, p.pages));
      store(record + offsetof(XattrPages, pages), v);
      return change("pages", p.pages, v);
    }
    case 2:
      *cls = "xattr.reserved";
      store(record + offsetof(XattrPages, reserved), uint16_t(1 + ctx.rng.below(65535)));
      return "page record reserved field set";
    case 3: {
      *cls = "xattr.phys";
      uint64_t v = pick_other(
          ctx.rng,
          {ctx.rng.below(2), ctx.journal_page(), ctx.bitmap_page(), ctx.node_page(),
           ctx.data_page(), page.phys + 1, ctx.page_count(), UINT64_MAX - ctx.rng.below(16)},
          page.phys);
      store(entry + offsetof(XattrPage, phys), v);
      return change("page phys", page.phys, v);
    }
    default:
      *cls = "xattr.crc";
      store(entry + offsetof(XattrPage, crc), page.crc ^ (1u << ctx.rng.below(32)));
      return "CRC of a value page flipped";
  }
}

// An inline POSIX ACL made invalid: its version, or one entry's tag or
// permissions. "" if the item is no inline ACL.
std::string acl(MutationContext& ctx, Item& item, const XattrValue& x, std::string* cls) {
  std::string_view name(reinterpret_cast<const char*>(item.value) + sizeof x, x.name_len);
  const size_t value_len = x.value_len - std::min<size_t>(x.value_len, crc_bytes(x));
  const size_t entries = value_len < 4 ? 0 : (value_len - 4) / 8;
  if ((x.flags & kXattrInPages) || entries == 0 ||
      (name != kAclAccessXattr && name != kAclDefaultXattr)) {
    return "";
  }
  std::byte* value = item.value + sizeof x + x.name_len + crc_bytes(x);
  std::byte* entry = value + 4 + 8 * ctx.rng.below(entries);
  switch (ctx.rng.below(3)) {
    case 0:
      *cls = "xattr.acl_version";
      store(value, uint32_t(pick_other(ctx.rng, {0, 1, 3, UINT32_MAX}, 2)));
      return "ACL version changed";
    case 1: {
      *cls = "xattr.acl_tag";
      const uint16_t old = load<uint16_t>(entry);
      store(entry, uint16_t(pick_other(ctx.rng, {0, 0x40, 0xffff, 0x01, 0x10}, old)));
      return "ACL entry tag changed";
    }
    default:
      *cls = "xattr.acl_perm";
      store(entry + 2, uint16_t(8 << ctx.rng.below(8)));
      return "ACL entry permissions beyond rwx";
  }
}

std::string xattr(MutationContext& ctx, Item& item, std::string* cls) {
  XattrValue x = load<XattrValue>(item.value);
  if (ctx.rng.chance(0.5)) {
    std::string what = acl(ctx, item, x, cls);
    if (!what.empty()) return what;
  }
  if ((x.flags & kXattrInPages) && ctx.rng.chance(0.7)) {
    std::string what = xattr_pages(ctx, item, x, cls);
    if (!what.empty()) return what;
  }
  switch (ctx.rng.weighted({2, 2, 1, crc_bytes(x) && x.value_len >= kXattrCrcBytes ? 2u : 0u})) {
    case 0: {
      *cls = "xattr.name_len";
      uint8_t v =
          uint8_t(pick_other(ctx.rng, {0, x.name_len + 1u, x.name_len - 1u, 255}, x.name_len));
      store(item.value + offsetof(XattrValue, name_len), v);
      return change("name_len", x.name_len, v);
    }
    case 1: {
      *cls = "xattr.value_len";
      uint16_t v = uint16_t(
          pick_other(ctx.rng, {0, x.value_len + 1u, x.value_len - 1u, 0xffff}, x.value_len));
      store(item.value + offsetof(XattrValue, value_len), v);
      return change("value_len", x.value_len, v);
    }
    case 2: {
      // An inline value read as a page record, a record read as a value, a
      // value without its checksum, or flags no version defines.
      *cls = "xattr.flags";
      uint8_t v = uint8_t(pick_other(
          ctx.rng, {0, kXattrInPages, kXattrCrc, kXattrInPages | kXattrCrc, 0x80, 0xff}, x.flags));
      store(item.value + offsetof(XattrValue, flags), v);
      return change("flags", x.flags, v);
    }
    default: {
      // The value's CRC32C, as a wrong value would leave it.
      *cls = "xattr.value_crc";
      std::byte* crc = item.value + sizeof x + x.name_len;
      store(crc, load<uint32_t>(crc) ^ (1u << ctx.rng.below(32)));
      return "CRC32C of the value flipped";
    }
  }
}

}  // namespace

Mutation mutate_item(MutationContext& ctx) {
  static const KeyKind kKinds[] = {KeyKind::kExtent, KeyKind::kDirent, KeyKind::kInode,
                                   KeyKind::kXattr};
  static const size_t kMinLen[] = {sizeof(ExtentValue), sizeof(DirentValue), sizeof(InodeRecord),
                                   sizeof(XattrValue)};
  size_t k = ctx.rng.weighted({5, 3, 3, 1});
  Item item;
  if (!find_item(ctx, kKinds[k], kMinLen[k], &item)) return mutate_raw(ctx);
  std::string cls;
  bool lie = false;
  std::string what = k == 0   ? extent(ctx, item, &cls, &lie)
                     : k == 1 ? dirent(ctx, item, &cls)
                     : k == 2 ? inode(ctx, item, &cls)
                              : xattr(ctx, item, &cls);
  if (what.empty()) return mutate_raw(ctx);
  ctx.restamp(item.ref.node);
  return Mutation{cls, item.name + ": " + what + ", crc recomputed", lie};
}

}  // namespace pagefs::fuzz
