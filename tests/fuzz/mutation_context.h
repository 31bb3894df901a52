// What every mutation family works with (internal to the mutator): the image
// being damaged, the map of the base it was copied from, the random source,
// and helpers to reach pages and re-stamp their checksums.
#pragma once

#include <cstdint>
#include <string>

#include "engine/buffer_pool.h"
#include "engine/mem_device.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/image_map.h"
#include "tests/fuzz/mutator.h"

namespace pagefs::fuzz {

struct MutationContext {
  MemDevice& dev;
  const ImageMap& map;
  Rng& rng;

  uint32_t ps() const { return map.page_size(); }
  uint64_t page_count() const { return map.sb.page_count; }
  std::byte* page(uint64_t p) const { return page_bytes(dev, ps(), p); }
  // Recomputes the CRC of metadata page p, so only validation can tell.
  void restamp(uint64_t p) const { stamp_meta_page(page(p), ps()); }
  uint64_t any_page() { return rng.below(page_count()); }
  uint64_t node_page() { return rng.pick(map.nodes).page; }
  uint64_t data_page() { return map.data_pages.empty() ? any_page() : rng.pick(map.data_pages); }
  uint64_t bitmap_page() { return map.sb.bitmap_start + rng.below(map.sb.bitmap_pages); }
  // A page of a live journal record if there is one, else any journal page.
  uint64_t journal_page();
};

// One mutation of each family; each returns what it did. A family that finds
// its target already changed past recognition by an earlier mutation flips
// bits instead (mutate_raw), and says so.
Mutation mutate_raw(MutationContext& ctx);      // mutator.cc
Mutation mutate_node(MutationContext& ctx);     // tree_mutations.cc
Mutation mutate_item(MutationContext& ctx);     // item_mutations.cc
Mutation damage_journal(MutationContext& ctx);  // journal_mutations.cc
Mutation forge_journal(MutationContext& ctx);   // journal_forgery.cc

}  // namespace pagefs::fuzz
