// Pass 5: space accounting.
//
// The pages found referenced (reserved regions, tree nodes, extents) must be
// exactly the pages the bitmap marks in use, bits past page_count must be set,
// and the superblock's counters must match what was counted. All of it is
// derived from the tree, so -p rewrites what disagrees.
#include <algorithm>
#include <string>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

constexpr size_t kListedPages = 10;

}  // namespace

void Checker::check_space() {
  if (!damaged_nodes_.empty()) return;  // the repair rebuilds the map with the tree
  std::vector<uint64_t> unmarked, leaked;
  uint64_t unmarked_total = 0, leaked_total = 0;
  for (uint64_t p = 0; p < sb_.page_count; p++) {
    if (p % 64 == 0 && referenced_.word(p / 64) == disk_bitmap_.word(p / 64)) {
      p += 63;  // the whole word agrees
      continue;
    }
    if (bitmap_bad_[p / bits_per_bitmap_page_]) continue;  // reported with the bitmap page
    const bool used = referenced_.test(p);
    if (used == disk_bitmap_.test(p)) continue;
    std::vector<uint64_t>& list = used ? unmarked : leaked;
    uint64_t& total = used ? unmarked_total : leaked_total;
    if (list.size() < kListedPages) list.push_back(p);
    total++;
  }
  advance(sb_.page_count);
  report_page_list(unmarked, unmarked_total, "in use but marked free");
  report_page_list(leaked, leaked_total, "marked in use but unreferenced (leaked)");
  uint64_t free_tail = free_tail_bits_;
  for (uint64_t p = sb_.page_count; p < disk_bitmap_.size(); p++) {
    if (!bitmap_bad_[p / bits_per_bitmap_page_] && !disk_bitmap_.test(p)) free_tail++;
  }
  if (free_tail > 0) {
    report_.at(Fix::kPreen, "free-space bitmap", "mark them in use",
               "marks %llu page%s past the end of the filesystem free", ull(free_tail),
               free_tail == 1 ? "" : "s");
    plan_.rewrite_bitmap = true;
  }
}

void Checker::report_page_list(const std::vector<uint64_t>& pages, uint64_t total,
                               const char* what) {
  if (total == 0) return;
  std::string list;
  for (uint64_t p : pages) list += (list.empty() ? "" : ", ") + std::to_string(p);
  if (total > pages.size()) list += ", ...";
  report_.at(Fix::kPreen, "free-space bitmap", "correct the bitmap", "%llu page%s %s: %s",
             ull(total), total == 1 ? "" : "s", what, list.c_str());
  plan_.rewrite_bitmap = true;
}

// Every commit writes the superblock with the counters of that same
// transaction, so they are exact whether or not the filesystem was unmounted
// cleanly (after a crash the journal, replayed, brings them along).
void Checker::check_counters() {
  // Inode numbers are never reused: the counter must be past every one.
  if (max_ino_ >= sb_.next_inode) {
    report_.at(Fix::kPreen, "superblock", "raise it to " + std::to_string(max_ino_ + 1),
               "next_inode is %llu, but inode %llu exists", ull(sb_.next_inode), ull(max_ino_));
    plan_.rewrite_superblock = true;
  }
  if (!damaged_nodes_.empty()) return;
  const uint64_t free_pages = sb_.page_count - referenced_.count();
  if (sb_.free_pages != free_pages) {
    report_.at(Fix::kPreen, "superblock", "set it", "free_pages is %llu, counted %llu",
               ull(sb_.free_pages), ull(free_pages));
    plan_.rewrite_superblock = true;
  }
  if (sb_.inode_count != inode_records_) {
    report_.at(Fix::kPreen, "superblock", "set it", "inode_count is %llu, counted %llu",
               ull(sb_.inode_count), ull(inode_records_));
    plan_.rewrite_superblock = true;
  }
}

}  // namespace pagefs::fsck
