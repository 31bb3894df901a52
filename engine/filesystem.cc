// Mount, unmount, sync and the inode helpers of the engine. Directory, file
// and xattr operations live in dir_ops.cc, file_ops.cc and xattr_ops.cc.
#include "engine/filesystem.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cassert>
#include <cstring>
#include <ctime>

#include "engine/fs_impl.h"
#include "engine/log.h"
#include "engine/recovery.h"
#include "engine/threads.h"

namespace pagefs {

timespec now_timespec() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

struct stat Attr::to_stat(uint32_t blksize) const {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = nlink;
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_rdev = rdev;
  st.st_size = static_cast<off_t>(size);
  st.st_blocks = static_cast<blkcnt_t>(blocks_512);
  st.st_blksize = blksize;
  st.st_atim = atime;
  st.st_mtim = mtime;
  st.st_ctim = ctime;
  return st;
}

// ---- Impl: mount ------------------------------------------------------------

FileSystem::Impl::Impl(std::unique_ptr<Device> device, const MountOptions& options)
    : device_(std::make_unique<MeteredDevice>(std::move(device), stats_.device)),
      options_(options) {}

FileSystem::Impl::~Impl() {
  scrubber_.reset();
  readahead_.reset();
  stop_ticker();
  if (checkpointer_) checkpointer_->stop();
  if (committer_) committer_->stop();
  if (pool_) pool_->stop_writeback();
}

// Replays the journal onto the device before anything else reads it and
// takes the superblock that recovery brought up to date.
Status FileSystem::Impl::recover(std::string* message) {
  RecoveryResult r;
  PAGEFS_TRY(recover_device(*device_, sb_, &r, message));
  auto journal = Journal::open(*device_, *sb_, r.head_lsn, r.next_sequence);
  if (!journal.ok()) {
    *message = "cannot set up the journal: " + std::string(strerror(journal.error()));
    return Err{journal.error()};
  }
  journal_ = std::move(journal).value();
  return ok_status();
}

Status FileSystem::Impl::open(std::string* message) {
  sb_storage_.assign(sizeof(Superblock), '\0');
  sb_ = reinterpret_cast<Superblock*>(sb_storage_.data());
  PAGEFS_TRY(recover(message));
  page_size_ = sb_->page_size;
  read_only_ = options_.read_only || device_->read_only();
  if (sb_->features_ro_compat & ~kKnownRoCompat) read_only_ = true;
  auto pool = BufferPool::open(*device_, page_size_, options_.cache_bytes);
  if (!pool.ok()) {
    *message = "cannot allocate the page cache: " + std::string(strerror(pool.error()));
    return Err{pool.error()};
  }
  pool_ = std::move(pool).value();
  zero_page_ = std::make_unique<std::byte[]>(page_size_);
  auto space = SpaceMap::load(*pool_, *sb_);
  if (!space.ok()) {
    *message = "cannot read the free-space map: " + std::string(strerror(space.error()));
    return Err{space.error()};
  }
  space_ = std::move(space).value();
  root_ = TreeRoot{sb_->tree_root, sb_->tree_height};
  tree_ = std::make_unique<Btree>(*pool_, *space_, root_);
  limits_ = ItemLimits{sb_->data_start, sb_->page_count, page_size_,
                       (sb_->features_incompat & kIncompatXattrCrc) != 0};
  tree_->set_item_check(
      [limits = limits_](const Key& k, std::span<const std::byte> v, const char** why) {
        return check_item(k, v, limits, why);
      });
  auto root = get_inode(kRootInode);
  if (!root.ok() || !S_ISDIR(root->mode)) {
    *message = "root directory is missing or damaged; run fsck.pagefs";
    return Err{EIO};
  }
  if (read_only_) return ok_status();
  start_journal_threads();
  std::unique_lock lock(mu_);
  PAGEFS_TRY(purge_orphans());
  sb_->state = static_cast<uint32_t>(FsState::kMounted);
  sb_->mount_time = now_timespec().tv_sec;
  sb_->mount_count++;
  dirty_ = true;
  Status st = checkpoint_locked();
  if (!st.ok()) *message = "cannot write the superblock: " + std::string(strerror(st.error()));
  return st;
}

void FileSystem::Impl::start_journal_threads() {
  auto on_failure = [this](const char* what, int error) { fail(what, error); };
  committer_ = std::make_unique<Committer>(*pool_, *journal_, page_size_, journal_->max_images(),
                                           on_failure, &stats_.commit_ns, options_.commit_nice);
  checkpointer_ = std::make_unique<Checkpointer>(*pool_, *journal_, *committer_, *device_,
                                                 page_size_, on_failure, &stats_.checkpoint_ns);
  // A journal more than half full gets a checkpoint before anyone waits.
  committer_->set_after_commit([this] {
    if (journal_->free_bytes() < journal_->capacity_bytes() / 2) checkpointer_->kick();
  });
}

void FileSystem::Impl::start_ticker() {
  if (read_only_) return;
  ticker_ = std::thread([this] {
    name_this_thread("pagefs-ticker");
    std::unique_lock lk(ticker_mu_);
    while (!ticker_stop_) {
      ticker_cv_.wait_for(lk, std::chrono::seconds(std::max(1u, options_.commit_interval_s)));
      if (ticker_stop_) break;
      lk.unlock();
      close_if_idle();
      lk.lock();
    }
  });
}

void FileSystem::Impl::stop_ticker() {
  {
    std::lock_guard lk(ticker_mu_);
    ticker_stop_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

// The committer writes what is closed; nobody waits for it here. With both
// slots taken, the next tick (or an fsync) closes instead.
void FileSystem::Impl::close_if_idle() {
  if (!committer_->slot_free()) return;
  std::unique_lock lock(mu_);
  if (failed_ || !has_changes() || !committer_->slot_free()) return;
  (void)close_txn_locked();  // a failure is sticky and logged by fail()
}

// ---- Impl: inodes -------------------------------------------------------------

Result<InodeRecord> FileSystem::Impl::get_inode(InodeNo ino) {
  std::string v;
  std::shared_lock latch(item_latches_.of(ino));  // an overwrite may be changing it
  PAGEFS_ASSIGN(bool found, tree_->get(Key::of(ino.value, KeyKind::kInode, 0), &v));
  if (!found) return Err{ENOENT};
  InodeRecord rec;  // the tree checked its size and fields (items.h)
  assert(v.size() == sizeof rec);
  std::memcpy(&rec, v.data(), sizeof rec);
  return rec;
}

Status FileSystem::Impl::put_inode(InodeNo ino, const InodeRecord& rec) {
  dirty_ = true;
  return tree_->put(Key::of(ino.value, KeyKind::kInode, 0),
                    std::span(reinterpret_cast<const std::byte*>(&rec), sizeof rec));
}

// Inode numbers are never reused, so next_inode names no live inode. If it
// does (the superblock is damaged), overwriting that inode would corrupt a
// live file: the number is refused as metadata damage instead.
Status FileSystem::Impl::insert_inode(InodeNo ino, const InodeRecord& rec) {
  dirty_ = true;
  Status st = tree_->insert(Key::of(ino.value, KeyKind::kInode, 0),
                            std::span(reinterpret_cast<const std::byte*>(&rec), sizeof rec));
  if (st.error() != EEXIST) return st;
  return pool_->metadata_error(PageNo{0}, "next_inode %llu is already in use",
                               (unsigned long long)ino.value);
}

void FileSystem::Impl::touch(InodeRecord& rec, bool mtime, bool ctime) {
  timespec now = now_timespec();
  if (mtime) rec.mtime_sec = now.tv_sec, rec.mtime_nsec = uint32_t(now.tv_nsec);
  if (ctime) rec.ctime_sec = now.tv_sec, rec.ctime_nsec = uint32_t(now.tv_nsec);
}

Result<InodeNo> FileSystem::Impl::new_inode(uint32_t mode, uint64_t rdev, const Caller& caller,
                                            const InodeRecord& parent, InodeRecord* out) {
  InodeRecord rec{};
  rec.mode = mode;
  rec.uid = caller.uid;
  rec.gid = caller.gid;
  // BSD group semantics in a setgid directory; subdirectories inherit the bit.
  if (parent.mode & S_ISGID) {
    rec.gid = parent.gid;
    if (S_ISDIR(mode)) rec.mode |= S_ISGID;
  }
  rec.nlink = S_ISDIR(mode) ? 2 : 1;
  rec.rdev = rdev;
  rec.generation = inode_generation(sb_->mount_count);
  timespec now = now_timespec();
  rec.atime_sec = rec.mtime_sec = rec.ctime_sec = rec.crtime_sec = now.tv_sec;
  rec.atime_nsec = rec.mtime_nsec = rec.ctime_nsec = rec.crtime_nsec = uint32_t(now.tv_nsec);
  if (sb_->next_inode >= kMaxInodeNumber) return Err{ENOSPC};  // numbers are never reused
  InodeNo ino{sb_->next_inode};
  PAGEFS_TRY(insert_inode(ino, rec));
  sb_->next_inode++;
  sb_->inode_count++;
  *out = rec;
  return ino;
}

// Removes everything the tree holds for `ino` (record, xattrs, extents) and
// frees its data pages and the pages of its large xattr values. Items go in
// batches with commit points between them and the inode record last, so every
// commit point leaves an orphan inode with fewer items: a consistent state.
Status FileSystem::Impl::free_inode(InodeNo ino, const InodeRecord& rec) {
  constexpr size_t kBatch = 64;
  InodeRecord copy = rec;
  space_->streams().forget(ino.value);
  if (S_ISREG(rec.mode) || S_ISLNK(rec.mode)) {
    PAGEFS_TRY(remove_pages(ino, copy, 0, UINT64_MAX / page_size_));
  }
  const Key first = Key::of(ino.value, KeyKind::kInode, 0);
  std::vector<Key> keys;
  std::vector<XattrPage> xattr_pages;
  keys.reserve(kBatch);
  for (bool first_batch = true;; first_batch = false) {
    keys.clear();
    xattr_pages.clear();
    // The items after the record, up to a batch; then the record alone.
    PAGEFS_TRY(tree_->scan(
        Key::of(ino.value, KeyKind::kInode, 1), Key::of(ino.value, KeyKind::kOrphan, UINT64_MAX),
        [&](const Key& k, std::span<const std::byte> v) {
          keys.push_back(k);
          if (k.kind == uint8_t(KeyKind::kXattr)) {
            XattrItem x =
                decode_xattr(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
            xattr_pages.insert(xattr_pages.end(), x.pages.begin(), x.pages.end());
          }
          return keys.size() < kBatch;
        }));
    if (keys.empty()) break;
    // A commit point between batches; an inode with few items goes in one
    // segment. A batch of one inode's items lies in a few neighbouring
    // leaves: at most four items a leaf, their parents and the bitmap of
    // freed nodes and xattr pages.
    if (!first_batch) PAGEFS_TRY(begin_op(kBatch / 4 + 16));
    for (const Key& k : keys) PAGEFS_TRY(erase_item(k));
    PAGEFS_TRY(free_xattr_pages(xattr_pages));
  }
  PAGEFS_TRY(erase_item(first));
  sb_->inode_count--;
  dirty_ = true;
  return ok_status();
}

Status FileSystem::Impl::erase_item(const Key& key) {
  PAGEFS_ASSIGN(bool erased, tree_->erase(key));
  if (!erased) return Err{EIO};
  return ok_status();
}

Status FileSystem::Impl::add_orphan(InodeNo ino) {
  dirty_ = true;
  return tree_->put(Key::of(0, KeyKind::kOrphan, ino.value), {});
}

Status FileSystem::Impl::remove_orphan(InodeNo ino) {
  dirty_ = true;
  auto r = tree_->erase(Key::of(0, KeyKind::kOrphan, ino.value));
  return r.ok() ? ok_status() : Status(Err{r.error()});
}

// Frees inodes left on the orphan list by a crash or by an unmount while files
// were still open.
Status FileSystem::Impl::purge_orphans() {
  std::vector<uint64_t> orphans;
  PAGEFS_TRY(tree_->scan(Key::of(0, KeyKind::kOrphan, 0), Key::of(0, KeyKind::kOrphan, UINT64_MAX),
                         [&](const Key& k, std::span<const std::byte>) {
                           orphans.push_back(k.off);
                           return true;
                         }));
  size_t freed = 0;
  for (uint64_t ino : orphans) {
    Status st = run_op([&]() -> Status {
      PAGEFS_TRY(begin_op(64));
      return purge_orphan(InodeNo{ino});
    });
    // Damage met while freeing one orphan must not refuse the mount: the
    // orphan stays on the list, for fsck.pagefs to deal with.
    if (st.error() == EIO) {
      PAGEFS_LOG_WARN("orphaned inode %llu is left unfreed; run fsck.pagefs",
                      (unsigned long long)ino);
      continue;
    }
    PAGEFS_TRY(st);
    freed++;
  }
  if (freed > 0) PAGEFS_LOG_INFO("freed %zu orphaned inodes", freed);
  return ok_status();
}

Status FileSystem::Impl::purge_orphan(InodeNo ino) {
  auto rec = get_inode(ino);
  if (!rec.ok() && rec.error() != ENOENT) return Err{rec.error()};
  if (rec.ok() && rec->nlink == 0) PAGEFS_TRY(free_inode(ino, *rec));
  return remove_orphan(ino);
}

Attr FileSystem::Impl::to_attr(InodeNo ino, const InodeRecord& rec) {
  Attr a;
  a.ino = ino.value;
  a.mode = rec.mode;
  a.nlink = rec.nlink;
  a.uid = rec.uid;
  a.gid = rec.gid;
  a.rdev = rec.rdev;
  a.size = rec.size;
  a.atime = timespec{rec.atime_sec, long(rec.atime_nsec)};
  a.mtime = timespec{rec.mtime_sec, long(rec.mtime_nsec)};
  a.ctime = timespec{rec.ctime_sec, long(rec.ctime_nsec)};
  a.generation = rec.generation;
  a.flags = rec.flags;
  return a;
}

Status FileSystem::Impl::check_writable() const {
  if (failed_) return Err{EIO};
  if (read_only_) return Err{EROFS};
  return ok_status();
}

// ---- FileSystem: public ---------------------------------------------------------

FileSystem::FileSystem() = default;
FileSystem::~FileSystem() = default;

Result<std::unique_ptr<FileSystem>> FileSystem::mount(std::unique_ptr<Device> device,
                                                      const MountOptions& options,
                                                      std::string* error_message) {
  std::string scratch;
  std::string* message = error_message ? error_message : &scratch;
  std::unique_ptr<FileSystem> fs(new FileSystem());
  fs->impl_ = std::make_unique<Impl>(std::move(device), options);
  PAGEFS_TRY(fs->impl_->open(message));
  fs->impl_->start_ticker();
  // Read ahead at most an eighth of the pool, so a window never evicts itself.
  Impl* impl = fs->impl_.get();
  impl->readahead_ = std::make_unique<Readahead>(
      [impl](InodeNo ino, uint64_t off, uint64_t len) { impl->prefetch_range(ino, off, len); },
      std::min<uint64_t>(8ull << 20, options.cache_bytes / 8));
  impl->scrubber_ = std::make_unique<Scrubber>(*impl);
  if (!fs->impl_->read_only_) {
    WritebackOptions wb;
    wb.max_write_iops = options.max_write_iops;
    wb.max_write_mbps = options.max_write_mbps;
    fs->impl_->pool_->start_writeback(wb);
  }
  return fs;
}

// The last commit, then the background checkpoints stop before the full one
// that marks the filesystem clean, so nothing writes a superblock after it.
Status FileSystem::unmount() {
  Impl& fs = *impl_;
  fs.scrubber_.reset();
  fs.readahead_.reset();
  fs.stop_ticker();
  fs.pool_->stop_writeback();
  std::unique_lock lock(fs.mu_);
  if (fs.read_only_) return ok_status();
  Status st = fs.failed_ ? Status(Err{EIO}) : fs.commit_locked();
  fs.checkpointer_->stop();
  if (st.ok()) st = fs.checkpoint_locked();
  if (st.ok()) {
    fs.sb_->state = static_cast<uint32_t>(FsState::kClean);
    st = fs.write_superblocks();
  }
  fs.committer_->stop();
  return st;
}

Result<Attr> FileSystem::Impl::attr_of(InodeNo ino, Hold hold) {
  PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
  Attr a = to_attr(ino, rec);
  a.blocks_512 = rec.blocks * (page_size_ / 512);
  if (hold == Hold::kYes) refs_.add(ino.value);
  return a;
}

Result<Attr> FileSystem::getattr(InodeNo ino, Hold hold) {
  return impl_->read_op([&] { return impl_->attr_of(ino, hold); });
}

// Waits until every change made so far is durable. The running transaction
// is closed under the lock, and the wait for its commit happens without it.
// Group commit, as jbd2 does it: while a commit is being written, an fsync
// whose changes are still in the running transaction waits for that commit to
// end before closing, so every fsync that arrives meanwhile shares the next
// commit (one journal write, one flush): the first of them to take the lock
// closes the transaction for all, the others find nothing running and wait
// for the same commit. Commits are written one after another anyway, so the
// wait adds no latency; it only keeps transactions from closing one fsync
// each.
Status FileSystem::fsync(InodeNo ino, bool) {
  Impl& fs = *impl_;
  LatencyTimer timer(fs.stats_.fsync_ns);
  if (fs.read_only_) return ok_status();
  SyncBatch::InProgress in_progress(fs.sync_batch_);
  uint64_t txn = 0;
  bool joined = false, just_joined = false;
  for (;;) {
    if (!just_joined) fs.committer_->wait_submitted();
    just_joined = false;
    bool closed = false;
    {
      // Most often another fsync has closed the transaction already: seeing
      // that needs the lock only shared, so overwriters go on meanwhile.
      std::shared_lock shared(fs.mu_);
      if (fs.failed_) return Err{EIO};
      closed = !fs.has_changes();
      if (closed) txn = fs.committer_->closed_txn();
    }
    if (closed) break;
    if (!joined) {  // let the other syncing threads come back first (sync_batch.h)
      joined = just_joined = true;
      fs.sync_batch_.join(std::min(fs.committer_->average_commit(), Impl::kMaxSyncPatience));
      continue;
    }
    std::unique_lock lock(fs.mu_);
    if (fs.failed_) return Err{EIO};
    if (!fs.has_changes()) {  // every change so far is in a closed transaction
      txn = fs.committer_->closed_txn();
      break;
    }
    if (!fs.committer_->idle()) continue;  // another closer won; share the next
    PAGEFS_ASSIGN(txn, fs.close_txn_locked());
    break;
  }
  if (joined) fs.sync_batch_.synced(txn, ino.value);
  return fs.committer_->wait_durable(txn);
}

Status FileSystem::forget(InodeNo ino, uint64_t n) {
  if (!impl_->refs_.forget(ino.value, n)) return ok_status();
  return release_inode(ino);
}

void FileSystem::forget_all() {
  for (uint64_t ino : impl_->refs_.drain()) {
    Status released = release_inode(InodeNo{ino});
    if (!released.ok()) {
      PAGEFS_LOG_WARN("releasing inode %llu: %s", static_cast<unsigned long long>(ino),
                      strerror(released.error()));
    }
  }
}

// The count is read again under the lock held exclusively: a LOOKUP that
// found the inode before its last name went away may have taken a new
// reference since the FORGET that brought us here (references are only
// taken under the lock, so none can come in between this check and the free).
// The file's lock comes first: a read in place may still hold its pages
// pinned while its reply goes out, and the kernel can send the FORGET as soon
// as the reader has the bytes, before that reply call has returned.
Status FileSystem::release_inode(InodeNo ino) {
  std::unique_lock file_lock(impl_->inode_locks_.of(ino));
  std::unique_lock lock(impl_->mu_);
  if (impl_->read_only_ || impl_->failed_) return ok_status();
  if (impl_->refs_.count(ino.value) > 0) return ok_status();
  return impl_->run_op([&]() -> Status {
    auto rec = impl_->get_inode(ino);
    if (!rec.ok()) return rec.error() == ENOENT ? ok_status() : Status(Err{rec.error()});
    if (rec->nlink > 0) return ok_status();
    PAGEFS_TRY(impl_->begin_op(64));
    PAGEFS_TRY(impl_->free_inode(ino, *rec));
    PAGEFS_TRY(impl_->remove_orphan(ino));
    impl_->linkable_.erase(ino.value);
    return ok_status();
  });
}

FsStats FileSystem::stats() const {
  std::shared_lock lock(impl_->mu_);
  PoolStats ps = impl_->pool_->stats();
  FsStats s;
  s.page_size = impl_->page_size_;
  s.total_pages = impl_->sb_->page_count - impl_->sb_->data_start;
  // What will be free once the running transaction commits: a removed file's
  // space shows as free at once, as df users expect. Reported is the file
  // data that fits, besides the metadata reserve and the extent records
  // that would map it: a fallocate of all of it succeeds.
  uint64_t free = impl_->space_->free_pages_after_commit();
  free = free > SpaceMap::kMetadataReserve ? free - SpaceMap::kMetadataReserve : 0;
  s.free_pages = impl_->data_pages_fitting(free);
  s.inodes = impl_->sb_->inode_count;
  s.checksum_errors = ps.checksum_errors;
  s.metadata_errors = ps.metadata_errors;
  s.cache_hits = ps.hits;
  s.cache_misses = ps.misses;
  s.cache_frames = ps.frames;
  s.pages_read = ps.pages_read;
  s.pages_written = ps.pages_written;
  lock.unlock();  // the scrub's status has its own lock
  if (impl_->scrubber_) {
    ScrubStatus scrub = impl_->scrubber_->status();
    s.scrub_state = scrub.state;
    s.scrub_finished = scrub.finished;
    s.scrub_pages_checked = scrub.pages_checked;
    s.scrub_errors = scrub.errors;
    s.scrub_repaired = scrub.repaired;
  }
  return s;
}

// The scrubber lives from mount to unmount.
Status FileSystem::scrub_start(const ScrubOptions& options) {
  if (!impl_->scrubber_) return Err{EIO};
  return impl_->scrubber_->start(options);
}

void FileSystem::scrub_cancel() {
  if (impl_->scrubber_) impl_->scrubber_->cancel();
}

ScrubStatus FileSystem::scrub_status() const {
  return impl_->scrubber_ ? impl_->scrubber_->status() : ScrubStatus{};
}

uint32_t FileSystem::page_size() const {
  return impl_->page_size_;
}
bool FileSystem::read_only() const {
  return impl_->read_only_;
}

}  // namespace pagefs
