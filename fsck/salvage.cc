// Salvage: the items of key ranges the tree walk could not read.
//
// A tree node that fails its checksum or its checks hides the key range its
// parent gives it. Every tree page carries its type, own page number, LSN and
// keys, so the items of that range can be found again without the tree: in
// leaves the damaged node pointed to (still intact, only unreachable), and in
// images of tree pages in the journal region (transactions already written
// home stay there until the journal wraps around).
//
// Candidates are leaves that pass every check of a node (header, checksum,
// Node::check), hold keys in a damaged range, and are not referenced by the
// intact part of the tree. Pages the bitmap marks free are left out: a freed
// node keeps its last contents, items that were deleted. Among overlapping
// candidates the newest (highest LSN) wins each key range: a candidate takes
// its items only where no newer one has claimed the range from its first to
// its last key. Every item taken must pass the engine's item checks.
//
// What salvage cannot find is lost; pass 4 of the next check then reports the
// consequences by path (entries to missing inodes, inodes without names).
#include <algorithm>
#include <cstring>
#include <map>

#include "engine/items.h"
#include "engine/journal.h"
#include "engine/node.h"
#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

// Disjoint closed key intervals, merged as they are added.
class Claims {
 public:
  bool covers(const Key& key) const {
    auto it = spans_.upper_bound(key);
    if (it == spans_.begin()) return false;
    --it;
    return !(it->second < key);
  }
  void add(Key lo, Key hi) {
    auto it = spans_.upper_bound(lo);
    if (it != spans_.begin() && !(std::prev(it)->second < lo)) --it;
    while (it != spans_.end() && !(hi < it->first)) {
      lo = std::min(lo, it->first);
      hi = std::max(hi, it->second);
      it = spans_.erase(it);
    }
    spans_[lo] = hi;
  }

 private:
  std::map<Key, Key> spans_;  // first key -> last key
};

}  // namespace

// A copy of a leaf found outside the intact tree.
struct Checker::Candidate {
  uint64_t lsn = 0;
  uint64_t page = 0;
  std::vector<Item> items;  // only those in damaged ranges, in key order
};

bool Checker::in_damaged_range(const Key& key) const {
  for (const KeyRange& r : plan_.damaged) {
    if (r.contains(key)) return true;
  }
  return false;
}

// Whether a key can belong to the filesystem: inode numbers stay below
// next_inode, in every copy of a leaf, old or new. A key past it was damaged
// under a valid checksum, and if its copy were allowed to claim the key range
// up to it, that copy would hide the newer leaves of every key in between.
// The bound is the larger next_inode of the two superblock copies, so that
// one copy's damaged counter does not refuse good keys; a superblock rebuilt
// from the layout has next_inode 2, which says nothing (nor does a fresh
// filesystem's).
bool Checker::possible_inode(const Key& key) const {
  const uint64_t ino = key.kind == uint8_t(KeyKind::kOrphan) ? key.off : key.ino;
  return inode_bound_ <= 2 || ino < inode_bound_;
}

// Takes the items of a page that holds a valid leaf; false if it does not.
bool Checker::read_candidate(const uint8_t* page, uint64_t page_no, Candidate* out) const {
  std::string why;
  if (!check_meta_header(page, page_no, PageType::kTreeNode, &why)) return false;
  auto* bytes = const_cast<std::byte*>(reinterpret_cast<const std::byte*>(page));
  Node node(bytes, page_size_);
  const char* reason = nullptr;
  if (!node.is_leaf() || node.count() == 0 || !node.check(&reason)) return false;
  PageHeader h;
  memcpy(&h, page, sizeof h);
  out->lsn = h.lsn;
  out->page = page_no;
  for (uint16_t i = 0; i < node.count(); i++) {
    const Key key = node.key_at(i);
    if (!in_damaged_range(key) || !possible_inode(key)) continue;
    auto value = node.value_at(i);
    out->items.push_back(
        Item{key, std::string(reinterpret_cast<const char*>(value.data()), value.size())});
  }
  return !out->items.empty();
}

bool Checker::salvage() {
  std::vector<Candidate> candidates;
  if (!scan_data_region(&candidates)) return false;
  if (!scan_journal(&candidates)) return false;
  take_candidates(candidates);
  return true;
}

// Reads the pages of the data region that could hold a lost leaf: not in
// the intact tree, and not marked free by a readable bitmap page.
bool Checker::scan_data_region(std::vector<Candidate>* out) {
  uint64_t pages[kBatchPages];
  size_t n = 0;
  auto read_batch = [&]() {
    if (n == 0) return true;
    if (!read_pages(pages, n, *node_buf_)) return false;
    for (size_t i = 0; i < n; i++) {
      Candidate c;
      if (read_candidate(node_buf_->data() + i * page_size_, pages[i], &c)) {
        out->push_back(std::move(c));
      }
    }
    n = 0;
    return true;
  };
  for (uint64_t p = sb_.data_start; p < sb_.page_count; p++) {
    const bool damaged = damaged_pages_.count(p) > 0;
    if (referenced_.test(p) && !damaged) continue;
    if (!damaged && !bitmap_bad_[p / bits_per_bitmap_page_] && !disk_bitmap_.test(p)) continue;
    pages[n++] = p;
    if (n == kBatchPages && !read_batch()) return false;
  }
  return read_batch();
}

// Images of tree pages in every whole transaction left in the journal region.
bool Checker::scan_journal(std::vector<Candidate>* out) {
  auto scanned = Journal::scan_region(
      device_, sb_, [&](uint64_t /*lsn*/, PageNo page, const std::byte* image) -> Status {
        if (page.value < sb_.data_start || page.value >= sb_.page_count) return ok_status();
        Candidate c;
        if (read_candidate(reinterpret_cast<const uint8_t*>(image), page.value, &c)) {
          out->push_back(std::move(c));
        }
        return ok_status();
      });
  if (!scanned.ok()) {
    return fatal("%s: cannot read the journal region: %s", name_.c_str(),
                 strerror(scanned.error()));
  }
  return true;
}

// Newest first, each candidate takes what no newer one has claimed.
void Checker::take_candidates(std::vector<Candidate>& candidates) {
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.lsn != b.lsn ? a.lsn > b.lsn : a.page > b.page;
  });
  Claims claims;
  std::vector<Item> taken;
  for (Candidate& c : candidates) {
    for (Item& item : c.items) {
      if (claims.covers(item.key)) continue;
      std::string why;
      if (!engine_accepts(item.key, item.value, &why)) {
        salvage_refused_++;
        continue;
      }
      taken.push_back(std::move(item));
    }
    claims.add(c.items.front().key, c.items.back().key);
    if (c.page >= sb_.data_start && c.page < sb_.page_count) referenced_.set(c.page);
  }
  std::sort(taken.begin(), taken.end(), [](const Item& a, const Item& b) { return a.key < b.key; });
  for (const Item& item : taken) note_salvaged_extent(item);
  plan_.salvaged = std::move(taken);
}

// The pages of a recovered extent or xattr value must not be handed out by
// the repair.
void Checker::note_salvaged_extent(const Item& item) {
  for_each_item_page(item.key, item.value, [&](uint64_t page) { referenced_.set(page); });
}

// ---- reporting the damage ----------------------------------------------------

void Checker::report_damage() {
  for (const DamagedNode& d : damaged_nodes_) {
    std::string what = d.why + "; " + describe_range(d.range);
    if (options_.mode != Mode::kCheck) {
      size_t found = 0;
      for (const Item& item : plan_.salvaged) found += d.range.contains(item.key);
      what += "; " + std::to_string(found) + " items found in other copies";
    }
    report_.at(Fix::kRepair, "tree node " + std::to_string(d.page),
               "rebuild the tree from the pages that survive", "%s", what.c_str());
  }
  if (salvage_refused_ > 0) {
    report_.at(Fix::kRepair, "tree", "leave them out",
               "%llu items found in copies of tree pages are malformed", ull(salvage_refused_));
  }
  plan_.rewrite_tree = true;
}

// "the items of inodes 45 to 52 cannot be read (/a, /b/c, ...)": the first
// names of the inodes in the range, in inode order.
std::string Checker::describe_range(const KeyRange& range) {
  constexpr size_t kNames = 8;
  std::string text = "the items of ";
  const uint64_t first = range.has_lo ? range.lo.ino : 0;
  const uint64_t last = range.has_hi ? range.hi.ino : UINT64_MAX;
  if (!range.has_lo && !range.has_hi) {
    text += "every inode";
  } else {
    text += "inodes " + (range.has_lo ? std::to_string(first) : "1") + " to " +
            (range.has_hi ? std::to_string(last) : "the last");
  }
  text += " cannot be read";
  std::map<uint64_t, std::string> names;  // inode -> one of its paths
  for (const DirentRef& d : dirents_) {
    if (d.target < first || d.target > last || names.count(d.target) > 0) continue;
    names[d.target] = subject_of(d.dir, d.name);
  }
  if (names.empty()) return text;
  std::string list;
  size_t listed = 0;
  for (const auto& [ino, path] : names) {
    if (listed++ == kNames) {
      list += ", and " + std::to_string(names.size() - kNames) + " more";
      break;
    }
    list += (list.empty() ? "" : ", ") + path;
  }
  return text + " (" + list + ")";
}

// ---- extents that share pages --------------------------------------------------

// Names the owner of the pages each relocated extent shares: another file's
// extent, an xattr value kept in pages, or the tree. Rare, so the leaves are
// simply read again.
void Checker::report_shared() {
  if (shared_extents_.empty()) return;
  std::map<uint64_t, std::string> owner;  // shared page -> an earlier owner
  for (const SharedExtent& s : shared_extents_) {
    for (uint32_t i = 0; i < s.pages; i++) owner[s.phys + i] = "";
  }
  for_each_leaf_item([&](const Key& key, const uint8_t* value, uint16_t len) {
    const bool extent = key.kind == uint8_t(KeyKind::kExtent);
    if ((!extent && key.kind != uint8_t(KeyKind::kXattr)) || is_shared_extent(key)) return;
    const std::string item(reinterpret_cast<const char*>(value), len);
    std::string why;
    if (!engine_accepts(key, item, &why)) return;  // removed, and claimed nothing
    for_each_item_page(key, item, [&](uint64_t page) {
      auto it = owner.find(page);
      if (it == owner.end() || !it->second.empty()) return;
      it->second =
          extent ? subject_of(key.ino, "") : "an extended attribute of " + subject_of(key.ino, "");
    });
  });
  for (const SharedExtent& s : shared_extents_) {
    std::string with;
    for (uint32_t i = 0; i < s.pages && with.empty(); i++) with = owner[s.phys + i];
    if (with.empty()) with = "the tree's own pages";
    report_.inode(Fix::kRepair, s.key.ino, "give it a copy of them",
                  "extent at file offset %llu (pages %llu..%llu) shares pages with %s",
                  ull(s.key.off * page_size_), ull(s.phys), ull(s.phys + s.pages - 1),
                  with.c_str());
  }
}

bool Checker::is_shared_extent(const Key& key) const {
  for (const SharedExtent& s : shared_extents_) {
    if (s.key == key) return true;
  }
  return false;
}

// Calls fn(key, value, length) for every cell of the intact leaves.
template <class Fn>
void Checker::for_each_leaf_item(Fn&& fn) {
  uint64_t pages[kBatchPages];
  for (size_t first = 0; first < plan_.leaves.size(); first += kBatchPages) {
    const size_t n = std::min(kBatchPages, plan_.leaves.size() - first);
    for (size_t i = 0; i < n; i++) pages[i] = plan_.leaves[first + i].page;
    if (!read_pages(pages, n, *node_buf_)) return;
    for (size_t i = 0; i < n; i++) {
      const uint8_t* page = node_buf_->data() + i * page_size_;
      NodeHeader nh;
      memcpy(&nh, page + kNodeHeaderOffset, sizeof nh);
      std::vector<Cell> cells;
      std::string why;
      if (!parse_cells(page, nh.count, nh.cell_start, &cells, &why)) continue;
      for (const Cell& c : cells) fn(c.key, c.value, c.value_len);
    }
  }
}

}  // namespace pagefs::fsck
