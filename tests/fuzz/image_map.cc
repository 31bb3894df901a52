#include "tests/fuzz/image_map.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <memory>

#include "engine/journal.h"
#include "engine/recovery.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/raw_node.h"

namespace pagefs::fuzz {
namespace {

// An undamaged tree is never deeper than this; a deeper one is a parse error.
constexpr uint16_t kMaxLevel = 16;

void map_leaf_cell(const TreeNodeRef& ref, uint16_t slot, RawNode& node, size_t cell,
                   ImageMap* out) {
  DiskKey k = node.key_at(cell);
  CellRef c{ref.page, slot, k.ino, k.kind, k.off};
  out->cells.push_back(c);
  if (k.kind == uint8_t(KeyKind::kInode)) out->inodes.push_back(k.ino);
  if (k.kind != uint8_t(KeyKind::kExtent) || node.value_len_at(cell) < sizeof(ExtentValue)) return;
  ExtentValue ev;
  std::memcpy(&ev, node.value_at(cell), sizeof ev);
  out->extents.push_back(ExtentRef{c, ev.phys, ev.pages, ev.unwritten_mask});
  for (uint32_t i = 0; i < ev.pages; i++) {
    if (!((ev.unwritten_mask >> i) & 1)) out->data_pages.push_back(ev.phys + i);
  }
}

// Maps one node; queues its children.
bool map_node(MemDevice& dev, const TreeNodeRef& ref, ImageMap* out, std::deque<TreeNodeRef>* queue,
              std::string* error) {
  const uint32_t ps = out->page_size();
  if (ref.page >= out->sb.page_count) return *error = "node page out of range", false;
  RawNode node(page_bytes(dev, ps, ref.page), ps);
  if (!node.is_node() || node.level() != ref.level) {
    return *error = "page " + std::to_string(ref.page) + " is not the expected node", false;
  }
  out->nodes.push_back(ref);
  for (uint16_t i = 0; i < node.count(); i++) {
    auto cell = node.cell(i);
    if (!cell) return *error = "bad cell in node " + std::to_string(ref.page), false;
    if (ref.level == 0) {
      map_leaf_cell(ref, i, node, *cell, out);
      continue;
    }
    uint64_t child;
    std::memcpy(&child, node.value_at(*cell), sizeof child);
    queue->push_back(TreeNodeRef{child, uint16_t(ref.level - 1), ref.page});
  }
  return true;
}

bool map_tree(MemDevice& dev, ImageMap* out, std::string* error) {
  Superblock sb;
  std::memcpy(&sb, dev.raw(), sizeof sb);
  if (sb.tree_height == 0 || sb.tree_height > kMaxLevel) return *error = "tree height", false;
  std::deque<TreeNodeRef> queue{TreeNodeRef{sb.tree_root, uint16_t(sb.tree_height - 1), 0}};
  while (!queue.empty()) {
    TreeNodeRef ref = queue.front();
    queue.pop_front();
    if (!map_node(dev, ref, out, &queue, error)) return false;
  }
  return true;
}

// The whole transactions after the tail, as recovery would find them.
bool map_journal(MemDevice& dev, ImageMap* out, std::string* error) {
  auto scanned = Journal::scan(dev, out->sb, [](PageNo, const std::byte*) { return Status(); });
  if (!scanned.ok()) return *error = "journal scan failed", false;
  out->head_lsn = scanned->head_lsn;
  out->next_sequence = scanned->next_sequence;
  const uint32_t ps = out->page_size();
  uint64_t lsn = out->sb.journal_tail;
  for (uint64_t t = 0; t < scanned->transactions; t++) {
    JournalHeader h;
    std::memcpy(&h, dev.raw() + out->journal_offset(lsn), sizeof h);
    uint64_t record_bytes = (sizeof h + h.payload_bytes + ps - 1) / ps * ps;
    out->txns.push_back(JournalTxn{lsn, h.sequence, record_bytes});
    lsn += record_bytes + ps;
  }
  return true;
}

// The image as recovery would leave it: the tree a mount will see, so that
// mutations aim at nodes recovery does not overwrite as often as possible.
bool recovered_view(MemDevice& dev, std::unique_ptr<MemDevice>* out, std::string* error) {
  RecoveryResult rr;
  std::string message;
  auto overlay = OverlayDevice::open(dev, &rr, &message);
  if (!overlay.ok()) return *error = "overlay: " + message, false;
  *out = std::make_unique<MemDevice>(dev.size_bytes());
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<std::byte, decltype(&std::free)> buf(
      static_cast<std::byte*>(std::aligned_alloc(4096, kChunk)), &std::free);
  for (uint64_t at = 0; at < dev.size_bytes(); at += kChunk) {
    size_t n = size_t(std::min<uint64_t>(kChunk, dev.size_bytes() - at));
    if (!(*overlay)->read_at(at, buf.get(), n).ok()) return *error = "overlay read failed", false;
    std::memcpy((*out)->raw() + at, buf.get(), n);
  }
  return true;
}

}  // namespace

uint64_t ImageMap::journal_offset(uint64_t lsn) const {
  const uint64_t capacity = sb.journal_pages * sb.page_size;
  return sb.journal_start * sb.page_size + lsn % capacity;
}

bool map_image(MemDevice& dev, ImageMap* out, std::string* error) {
  *out = ImageMap{};
  std::memcpy(&out->sb, dev.raw(), sizeof out->sb);
  if (out->sb.page_size < kMinPageSize ||
      out->sb.page_count * out->sb.page_size > dev.size_bytes()) {
    return *error = "superblock does not parse", false;
  }
  std::unique_ptr<MemDevice> recovered;
  return recovered_view(dev, &recovered, error) && map_tree(*recovered, out, error) &&
         map_journal(dev, out, error);
}

}  // namespace pagefs::fuzz
