// Transactions of the filesystem: begin_op, commit, checkpoint and the sticky
// failure state. The journal protocol itself is in journal.cc.
#include <cstring>

#include "engine/fs_impl.h"
#include "engine/log.h"

namespace pagefs {
namespace {

constexpr size_t kMaxPendingRuns = 16384;

}  // namespace

Status FileSystem::Impl::begin_op(uint64_t pages, uint64_t data_pages) {
  if (failed_) return Err{EIO};
  if (read_only_) return Err{EROFS};
  if (int error = pool_->write_error()) {
    fail("page write-back", error);
    return Err{EIO};
  }
  // Freed space comes back at checkpoints: take one when it is needed now.
  bool short_of_space = data_pages > space_->data_free_pages() ||
                        space_->free_pages() < pages + SpaceMap::kMetadataReserve;
  if (space_->pending_runs() > kMaxPendingRuns || (short_of_space && space_->pending_pages() > 0)) {
    return checkpoint_locked();
  }
  uint64_t images = pool_->txn_images() + pages;
  bool commit = images > journal_->max_images() || images > pool_->frame_count() / 4 ||
                pool_->txn_frames() > pool_->frame_count();
  if (commit) PAGEFS_TRY(commit_locked());
  return ok_status();
}

// Steps 1-2 of the journal protocol happen here under mu_: the superblock is
// copied into page 0, the running transaction's pages are gathered and their
// images staged. journal_->commit() does steps 3-5.
Status FileSystem::Impl::commit_locked() {
  if (failed_) return Err{EIO};
  if (read_only_ || (!dirty_ && pool_->txn_frames() == 0)) return ok_status();
  sb_->tree_root = root_.page;
  sb_->tree_height = root_.height;
  sb_->free_pages = space_->free_pages_after_commit();
  sb_->generation++;
  {
    PAGEFS_ASSIGN(PageRef ref, pool_->create(PageNo{0}, true));
    std::memcpy(ref.data(), sb_, sizeof(Superblock));
    auto* h = ref.as<PageHeader>();
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kSuperblock);
    h->page_no = 0;
    ref.mark_dirty();
  }
  uint64_t txn = 0;
  bool fresh_written = false;
  std::vector<TxnPage> pages = pool_->begin_commit(&txn, &fresh_written);
  Status st;
  for (const TxnPage& p : pages) {
    if (p.fresh) continue;
    if (p.meta) pool_->stamp_lsn(p, journal_->head());
    st = journal_->add_image(p.page, p.data);
    if (!st.ok()) break;
  }
  if (st.ok()) {
    std::vector<iovec> iov;
    std::vector<IoRequest> ordered;
    pool_->ordered_writes(pages, iov, ordered);
    st = journal_->commit(ordered, fresh_written);
  }
  pool_->end_commit(txn, pages, st.ok());
  if (!st.ok()) {
    fail("journal commit", st.error());
    return Err{EIO};
  }
  dirty_ = false;
  // Keep room for the next transaction, whatever it holds.
  if (journal_->free_bytes() < 2 * journal_->staging_bytes() + 4ull * page_size_) {
    return checkpoint_locked();
  }
  return ok_status();
}

// Writes every page home, flushes, and moves the journal tail to the head:
// after this, recovery has nothing to replay.
Status FileSystem::Impl::checkpoint_locked() {
  PAGEFS_TRY(commit_locked());
  Status st = pool_->flush_all();
  if (!st.ok()) {
    fail("checkpoint write-back", st.error());
    return Err{EIO};
  }
  journal_->set_tail(journal_->head(), journal_->next_sequence());
  PAGEFS_TRY(write_superblocks());
  space_->checkpoint_done();
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
  sb_->generation++;
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

void FileSystem::Impl::fail(const char* what, int error) {
  if (failed_) return;
  failed_ = true;
  PAGEFS_LOG_ERROR(
      "%s failed (%s): the filesystem is now read-only; every change since the "
      "last durable commit is lost. Unmount it and run fsck.pagefs.",
      what, strerror(error));
}

}  // namespace pagefs
