// SpaceMap: the free-space allocator over the on-disk bitmap.
//
// One bit per device page, stored in bitmap pages that travel through the
// buffer pool like any metadata page. A per-bitmap-page free count, built at
// load and sized once, lets searches skip full pages.
//
// Allocation is next-fit from a hint: sequential writers pass the page after
// their last one, so a file grows in contiguous runs. A small reserve of pages
// is kept for metadata, so that unlink, rmdir and truncate (which may need a
// tree page) still work on a filesystem that data has filled.
//
// Frees become reusable only once the journal's tail has passed the freeing
// transaction. Until that transaction commits, a crash would bring back the
// old owner, so the pages must keep their contents; and until the tail passes
// it, the journal may still hold images of the pages that recovery would
// write over a new owner's data (jbd2 needs revoke records for this; waiting
// for the tail makes them unnecessary). free() clears the bits (the bitmap
// change is part of the transaction) and remembers the run as pending, with
// the transaction that freed it; release_retired() hands back the runs of
// transactions the tail passed, checkpoint_done() all of them.
//
// Savepoints: the space map's half of an all-or-nothing operation. Under an
// open savepoint it logs what it changes in memory (counters, pending frees),
// so that rollback_savepoint() can put them back; the bitmap pages themselves
// are restored by the buffer pool's savepoint.
//
// Thread-safety: none; the filesystem lock (held exclusively to modify)
// serializes every call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "engine/alloc_streams.h"
#include "engine/buffer_pool.h"
#include "engine/format.h"
#include "engine/result.h"
#include "engine/types.h"

namespace pagefs {

struct PageRun {
  PageNo start;
  uint32_t count = 0;
};

class SpaceMap {
 public:
  // Pages kept back from data allocation for metadata.
  static constexpr uint64_t kMetadataReserve = 64;

  static Result<std::unique_ptr<SpaceMap>> load(BufferPool& pool, const Superblock& sb);

  // Marks [start, start+count) used in freshly created bitmap pages (mkfs).
  static Status format(BufferPool& pool, const Superblock& sb);

  // Allocates a run of 1..max_pages contiguous free pages at or after `hint`
  // (wrapping around); hint 0 means after the previous allocation. Data allocations (metadata ==
  // false) fail with ENOSPC before eating into the metadata reserve. The
  // windows of sequential writers (streams()) other than `stream` (an inode
  // number; 0: none) are used only when no other page is free.
  Result<PageRun> allocate(PageNo hint, uint32_t max_pages, bool metadata, uint64_t stream = 0);
  // Where files written sequentially look for pages (alloc_streams.h).
  AllocStreams& streams() { return streams_; }
  // Allocates exactly `page` if it is free; false if it is not.
  Result<bool> allocate_at(PageNo page, bool metadata);
  Status free(PageNo start, uint32_t count);
  Result<bool> is_used(PageNo page);

  // Free pages the allocator may hand out now (pending frees excluded).
  uint64_t free_pages() const { return free_pages_ - pending_pages_; }
  // Free pages available to file data (excludes the metadata reserve).
  uint64_t data_free_pages() const {
    return free_pages() > kMetadataReserve ? free_pages() - kMetadataReserve : 0;
  }
  // Free pages once the pending frees are released.
  uint64_t free_pages_after_commit() const { return free_pages_; }
  uint64_t pending_pages() const { return pending_pages_; }
  size_t pending_runs() const { return pending_.size(); }
  // A checkpoint emptied the journal: pending frees become reusable.
  void checkpoint_done();
  // The tail passed transaction `txn`: frees it and earlier ones made are
  // reusable.
  void release_retired(uint64_t txn);

  void begin_savepoint();
  void release_savepoint();
  void rollback_savepoint();

  // Fault injection for tests: allocate() call number n from now fails with
  // ENOSPC, once (0: off). Returns how many allocate() calls were made so far.
  void fail_allocation(uint64_t n) { fail_allocation_at_ = n ? allocations_ + n : 0; }
  uint64_t allocation_count() const { return allocations_; }

  // Whether pages [page, page + count) lie in the data region
  // [data_start, page_count): the only pages tree nodes and extents may name.
  bool in_data_region(uint64_t page, uint64_t count = 1) const {
    return page >= data_start_ && page < page_count_ && count <= page_count_ - page;
  }

 private:
  SpaceMap(BufferPool& pool, const Superblock& sb);
  Result<PageRef> bitmap_page(uint64_t index);
  Status check_reserved(uint64_t index, const std::byte* bits);
  Status set_bits(uint64_t start, uint32_t count, bool used);
  Result<std::optional<PageRun>> search(uint64_t start, uint32_t max_pages, bool metadata,
                                        uint64_t stream, bool skip_windows);
  bool allowed(uint64_t count, bool metadata) const;
  bool is_pending(uint64_t page) const;

  BufferPool& pool_;
  uint64_t bitmap_start_;
  uint64_t bitmap_pages_;
  uint64_t page_count_;
  uint64_t data_start_;
  uint64_t bits_per_page_;
  uint64_t free_pages_ = 0;
  std::vector<uint32_t> free_in_page_;  // free bits per bitmap page
  struct PendingRun {
    uint32_t count;
    uint64_t txn;  // the transaction that freed it
  };
  std::map<uint64_t, PendingRun> pending_;  // start -> run, not yet reusable
  uint64_t released_txn_ = 0;               // release_retired() handed back up to here
  uint64_t pending_pages_ = 0;
  uint64_t next_fit_ = 0;  // where an allocation without a hint starts looking
  AllocStreams streams_;

  // A free() under the savepoint: the pending run it started, or the one it
  // grew (`grown_run`, the start of the run it was merged into).
  struct PendingChange {
    uint64_t start;
    uint32_t count;
    bool merged;
    uint64_t grown_run;
  };
  struct Saved {
    uint64_t free_pages = 0;
    uint64_t pending_pages = 0;
    uint64_t next_fit = 0;
    std::vector<std::pair<uint64_t, uint32_t>> free_in_page;  // first value per bitmap page
    std::vector<PendingChange> pending;
  };
  void save_free_in_page(uint64_t k);
  bool savepoint_open_ = false;
  Saved saved_;
  uint64_t allocations_ = 0;
  uint64_t fail_allocation_at_ = 0;
};

}  // namespace pagefs
