// Transactions of the filesystem: operations, commit points, commit,
// checkpoint and the sticky failure state. The journal protocol itself is in
// journal.cc.
//
// THE RULE: every changing operation happens whole or not at all.
//
//   1. An operation runs under the filesystem lock held exclusively, inside
//      run_op(), which opens a *segment*: the buffer pool and the space map
//      open savepoints, and the in-memory superblock and tree root are saved.
//   2. It checks what it can before changing anything (names, types, link
//      counts, emptiness, free space) and returns ordinary errors from there
//      with nothing changed.
//   3. It calls begin_op() with a bound on the pages it will change; begin_op
//      commits or checkpoints first if the running transaction could not
//      otherwise take them (journal staging, pool room, free space).
//   4. It changes pages through the pool, calling mark_dirty() before the
//      first change to each page, so the pool can keep its before-image.
//   5. If anything fails from there on (ENOSPC from an allocation, EIO from a
//      tree page, a bucket found full), run_op() rolls the segment back:
//      every page, bitmap counter, pending free, the superblock copy and the
//      tree root are as they were, and the error is returned.
//   6. Long operations (write, truncate, fallocate, freeing a large file)
//      call begin_op() again at *commit points*, between chunks whose end is
//      a consistent state. A commit point keeps the segment before it and
//      opens the next one; a failure undoes only the current chunk. write()
//      then returns the bytes of the chunks it kept, never an error after
//      data landed.
//   7. If a segment cannot be undone (it outgrew the pool's undo area), or
//      a journal write or flush fails, the filesystem turns read-only and
//      says why once (fail()): nothing after the last durable commit is
//      ever committed.
//   8. A commit happens only at a commit point or between operations, so
//      every committed transaction is a consistent filesystem.
//
// One kind of change runs beside others, under the lock held shared: a write
// into pages a file already has allocated (file_overwrite.cc). It
// changes no item's size and allocates nothing, checks and pins everything
// before its first change, and from there cannot fail but by running out of
// frames between pages, which leaves whole pages and a short write. It
// reserves its journal room as credits that the other overwrites count; no
// overwrite is in flight while admit() runs, under the lock held exclusively.
#include <cstring>

#include "engine/fs_impl.h"
#include "engine/log.h"

namespace pagefs {
namespace {

constexpr size_t kMaxPendingRuns = 16384;

}  // namespace

// ---- segments -----------------------------------------------------------------

void FileSystem::Impl::open_segment() {
  assert(!segment_open_);
  pool_->begin_savepoint();
  space_->begin_savepoint();
  segment_sb_ = *sb_;
  segment_root_ = root_;
  segment_open_ = true;
}

void FileSystem::Impl::keep_segment() {
  assert(segment_open_);
  pool_->release_savepoint();
  space_->release_savepoint();
  segment_open_ = false;
}

// Puts every page, counter and root the segment changed back. If the pool
// could not (a segment larger than its undo area), the half-done changes stay
// in memory, so the filesystem stops taking changes and never commits them.
bool FileSystem::Impl::rollback_segment() {
  assert(segment_open_);
  segment_open_ = false;
  if (!pool_->rollback_savepoint()) {
    space_->release_savepoint();
    fail("undoing a failed operation", ENOSPC);
    return false;
  }
  space_->rollback_savepoint();
  *sb_ = segment_sb_;
  root_ = segment_root_;
  return true;
}

void FileSystem::Impl::undo_segment() {
  if (rollback_segment()) open_segment();
}

class FileSystem::Impl::SegmentBoundary {
 public:
  explicit SegmentBoundary(Impl& fs) : fs_(fs), reopen_(fs.segment_open_) {
    if (reopen_) fs_.keep_segment();
  }
  ~SegmentBoundary() {
    if (reopen_) fs_.open_segment();
  }
  SegmentBoundary(const SegmentBoundary&) = delete;
  SegmentBoundary& operator=(const SegmentBoundary&) = delete;

 private:
  Impl& fs_;
  bool reopen_;
};

// ---- transactions ---------------------------------------------------------------

// Room a transaction keeps beyond what its operations declare: the superblock
// page and the pages an operation may change beyond its estimate.
constexpr uint64_t kSlackImages = 16;

Status FileSystem::Impl::begin_op(uint64_t pages, uint64_t data_pages) {
  SegmentBoundary boundary(*this);
  if (failed_) return Err{EIO};
  if (read_only_) return Err{EROFS};
  if (int error = pool_->write_error()) {
    fail("page write-back", error);
    return Err{EIO};
  }
  space_->release_retired(checkpointer_->retired_txn());
  // Freed space comes back as the journal's tail moves: when it is needed
  // now, move the tail all the way.
  bool short_of_space = data_pages > space_->data_free_pages() ||
                        space_->free_pages() < pages + SpaceMap::kMetadataReserve;
  if (space_->pending_runs() > kMaxPendingRuns || (short_of_space && space_->pending_pages() > 0)) {
    return checkpoint_locked();
  }
  return admit(pages);
}

// A transaction is admitted only with the journal room it can need: the
// running one, grown by this operation's pages, must fit in the room no closed
// transaction was promised. If it might not, it is closed first (it fits: it
// was admitted), and the operation waits, if it must, for checkpoints to make
// room for what it adds. Nothing then pins old records but transactions on
// their way to the journal, so the checkpoints can always make that room.
Status FileSystem::Impl::admit(uint64_t pages) {
  uint64_t images = pool_->txn_images() + pages;
  bool close = images > journal_->max_images() || images > pool_->frame_count() / 4 ||
               pool_->txn_frames() > pool_->frame_count() ||
               journal_->available_bytes() < journal_->record_bound(images + kSlackImages);
  if (!close) return ok_status();
  PAGEFS_TRY(close_txn_locked());
  uint64_t room = journal_->record_bound(pages + kSlackImages);
  if (journal_->available_bytes() >= room) return ok_status();
  Status st = checkpointer_->wait_for_room(room);
  if (!st.ok()) fail("waiting for journal room", st.error());
  return st;
}

bool FileSystem::Impl::has_changes() const {
  return dirty_ || pool_->txn_frames() > 0;
}

// Step 1 of the commit protocol (committer.h): the superblock is copied into
// page 0, the running transaction ends and the bytes of its journaled pages
// are copied into a slot for the committer. Returns the transaction that
// holds every change made so far, closed now or before.
Result<uint64_t> FileSystem::Impl::close_txn_locked() {
  SegmentBoundary boundary(*this);
  if (failed_) return Err{EIO};
  if (read_only_ || !has_changes()) return committer_->closed_txn();
  wait_for_copies();  // no write may be half copied into a page we take
  Committer::Slot* slot = committer_->acquire_slot();
  if (slot == nullptr) return Err{EIO};
  sb_->tree_root = root_.page;
  sb_->tree_height = root_.height;
  sb_->free_pages = space_->free_pages_after_commit();
  sb_->journal_tail = journal_->tail();
  sb_->journal_sequence = journal_->tail_sequence();
  // The values between two commits' generations are for background
  // checkpoints (kGenerationStep).
  sb_->generation += kGenerationStep;
  {
    PAGEFS_ASSIGN(PageRef ref, pool_->create(PageNo{0}, true));
    ref.mark_dirty();
    std::memcpy(ref.data(), sb_, sizeof(Superblock));
    auto* h = ref.as<PageHeader>();
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kSuperblock);
    h->page_no = 0;
  }
  uint64_t txn = 0;
  bool fresh_written = false;
  std::vector<TxnPage> pages = pool_->begin_commit(&txn, &fresh_written);
  if (Status filled = committer_->fill(*slot, txn, std::move(pages), fresh_written); !filled.ok()) {
    committer_->abandon(*slot);
    fail("closing a transaction", filled.error());
    return Err{EIO};
  }
  committer_->submit(*slot);
  dirty_ = false;
  return txn;
}

// Closes the running transaction and waits until it is durable. Holding the
// filesystem lock while waiting is safe: the committer never takes it.
Status FileSystem::Impl::commit_locked() {
  PAGEFS_ASSIGN(uint64_t txn, close_txn_locked());
  if (read_only_) return ok_status();
  return committer_->wait_durable(txn);
}

// A full checkpoint: every change committed and written home, the journal's
// tail at its head, so recovery has nothing to replay and every pending free
// is reusable.
Status FileSystem::Impl::checkpoint_locked() {
  SegmentBoundary boundary(*this);
  LatencyTimer timer(stats_.checkpoint_ns);
  PAGEFS_TRY(commit_locked());
  std::lock_guard checkpoint_lock(checkpointer_->mutex());
  Status st = pool_->flush_all(/*superblocks=*/false);
  if (!st.ok()) {
    fail("checkpoint write-back", st.error());
    return Err{EIO};
  }
  journal_->set_tail(journal_->head(), journal_->next_sequence());
  PAGEFS_TRY(write_superblocks());
  space_->checkpoint_done();
  checkpointer_->note_full_checkpoint(committer_->durable_txn());
  return ok_status();
}

// Writes page 0, flushes, then page 1, flushes: one copy is always whole.
Status FileSystem::Impl::write_superblocks() {
  sb_->tree_root = root_.page;
  sb_->tree_height = root_.height;
  sb_->free_pages = space_->free_pages_after_commit();
  sb_->journal_tail = journal_->tail();
  sb_->journal_sequence = journal_->tail_sequence();
  sb_->write_time = now_timespec().tv_sec;
  sb_->generation += kGenerationStep;
  for (uint64_t copy = 0; copy < 2; copy++) {
    PAGEFS_ASSIGN(PageRef ref, pool_->create(PageNo{copy}, true));
    std::memcpy(ref.data(), sb_, sizeof(Superblock));
    auto* h = ref.as<PageHeader>();
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kSuperblock);
    h->page_no = copy;
    Status st = pool_->write_through(ref);
    if (!st.ok()) {
      fail("superblock write", st.error());
      return Err{EIO};
    }
  }
  return ok_status();
}

// Any thread may fail the filesystem (the committer, the checkpointer, an
// operation). The line is logged before the flag is set, so whoever sees the
// filesystem failed also finds it in the log.
void FileSystem::Impl::fail(const char* what, int error) {
  std::lock_guard lock(fail_mu_);
  if (failed_) return;
  PAGEFS_LOG_ERROR(
      "%s failed (%s): the filesystem is now read-only; every change since the "
      "last durable commit is lost. Unmount it and run fsck.pagefs.",
      what, strerror(error));
  failed_ = true;
}

}  // namespace pagefs
