#include "engine/scrub.h"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "engine/crc32c.h"
#include "engine/fs_impl.h"
#include "engine/log.h"
#include "engine/superblock.h"
#include "engine/xattr_item.h"

namespace pagefs {
namespace {

using Clock = std::chrono::steady_clock;
using ull = unsigned long long;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

Buffer aligned_pages(size_t pages, uint32_t page_size) {
  return Buffer(static_cast<std::byte*>(std::aligned_alloc(4096, pages * page_size)));
}

int64_t now_seconds() {
  return int64_t(time(nullptr));
}

}  // namespace

// One scrub, from start to end, on the scrub thread.
class Scrubber::Walk {
 public:
  Walk(Scrubber& owner, const ScrubOptions& options);
  // False if the scrub was cancelled or the device failed (status says which).
  bool run();

 private:
  // A tree node to read, with the range and level its parent gives it.
  struct NodeRef {
    uint64_t page;
    uint16_t level;
    bool has_lo, has_hi;
    Key lo, hi;
    uint64_t parent;  // 0 for the root
    uint16_t slot;
  };
  // A written data page and the CRC its extent holds; or a page of an xattr
  // value and the CRC its item holds (`file_page` is then its index in the
  // value, and `cookie` the item's key offset).
  struct DataRef {
    uint64_t phys;
    uint32_t crc;
    uint64_t ino;
    uint64_t file_page;
    bool xattr = false;
    uint64_t cookie = 0;
  };
  // A damaged page no cached copy could repair; the journal may. One scrub
  // looks for at most kMaxUnhealed of them (their images are held until the
  // region has been read); a device worse off than that is fsck's.
  static constexpr size_t kMaxUnhealed = 1024;
  struct Unhealed {
    size_t report;  // index in the status's damage list, or SIZE_MAX
    uint64_t page;
    PageType type;  // meta pages
    bool meta;
    uint64_t header_lsn;  // meta: the LSN the damaged page still states
    bool header_ok;
    NodeRef node;  // tree nodes: where the walk found it
    DataRef data;
  };

  bool read_pages(const uint64_t* pages, size_t n, std::byte* buf);
  void pace(Clock::duration took, size_t pages);
  bool cancelled() const { return s_.cancel_.load(); }
  void checked(uint64_t pages);
  bool check_fixed();
  bool walk_tree();
  bool load_nodes(const NodeRef* refs, size_t n);
  void check_node(const NodeRef& ref, size_t i, std::vector<NodeRef>* next);
  bool node_ok(const NodeRef& ref, const std::byte* page, const char** why) const;
  void check_items(const NodeRef& ref, const Node& node);
  bool flush_data();
  void confirm_meta(const NodeRef* ref, uint64_t page, PageType type, const char* why);
  bool still_bad(const NodeRef* ref, uint64_t page, PageType type);
  bool read_superblock_copy(uint64_t page);
  bool repair_meta(const NodeRef* ref, uint64_t page, PageType type);
  Status rewrite_meta(uint64_t page, const std::byte* image);
  void confirm_data(const DataRef& d);
  bool data_still_bad(const DataRef& d);
  bool data_current(const DataRef& d, std::string* xattr_name = nullptr);
  bool queue_data(const DataRef& d);
  Status write_home(uint64_t page, const std::byte* bytes);
  bool writable() const { return !fs_.read_only_ && !fs_.failed_; }
  size_t report(ScrubDamage damage);
  void heal_from_journal();
  void heal(const Unhealed& u, const std::byte* image);
  void name_owners();
  void collect_names(const std::byte* page, uint64_t page_no, const std::set<uint64_t>& wanted,
                     std::map<uint64_t, std::pair<uint64_t, std::string>>* names,
                     std::vector<NodeRef>* next) const;
  std::string path_of(uint64_t ino,
                      const std::map<uint64_t, std::pair<uint64_t, std::string>>& names) const;
  std::string owner_of(const NodeRef& ref) const;

  Scrubber& s_;
  FileSystem::Impl& fs_;
  const ScrubOptions options_;
  Superblock sb_{};
  uint32_t ps_ = 0;
  ItemLimits limits_;
  Buffer batch_, data_batch_, device_, page_, copy_;
  BufferPool::Cached state_[kBatchPages] = {};
  std::vector<DataRef> data_;
  std::vector<Unhealed> unhealed_;
};

Scrubber::Walk::Walk(Scrubber& owner, const ScrubOptions& options)
    : s_(owner), fs_(owner.fs_), options_(options) {
  std::shared_lock lock(fs_.mu_);
  sb_ = *fs_.sb_;
  ps_ = fs_.page_size_;
  limits_ = fs_.limits_;
  const uint64_t in_use = sb_.page_count - fs_.space_->free_pages_after_commit();
  std::lock_guard status(s_.mu_);
  s_.status_.pages_total = in_use > sb_.journal_pages ? in_use - sb_.journal_pages : in_use;
}

bool Scrubber::Walk::run() {
  batch_ = aligned_pages(kBatchPages, ps_);
  data_batch_ = aligned_pages(kBatchPages, ps_);
  device_ = aligned_pages(kBatchPages, ps_);
  page_ = aligned_pages(1, ps_);
  copy_ = aligned_pages(1, ps_);
  if (!batch_ || !data_batch_ || !device_ || !page_ || !copy_) return false;
  if (!check_fixed() || !walk_tree() || !flush_data() || cancelled()) return false;
  heal_from_journal();
  name_owners();
  return !cancelled();
}

// Reads with the engine's device (O_DIRECT, io_uring), never the pool; runs
// of consecutive pages are one request. Paced after every batch.
bool Scrubber::Walk::read_pages(const uint64_t* pages, size_t n, std::byte* buf) {
  const auto start = Clock::now();
  std::vector<iovec> iov;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && pages[i] == pages[i - 1] + 1) {
      iov.back().iov_len += ps_;
      continue;
    }
    iov.push_back(iovec{buf + i * ps_, ps_});
    offsets.push_back(pages[i] * ps_);
  }
  std::vector<IoRequest> requests(iov.size());
  for (size_t i = 0; i < iov.size(); i++) {
    requests[i] = IoRequest{offsets[i], std::span<const iovec>(&iov[i], 1)};
  }
  Status st = fs_.device_->read(requests);
  if (!st.ok()) {
    std::lock_guard status(s_.mu_);
    s_.status_.failure = std::string("device read failed: ") + strerror(st.error());
    return false;
  }
  pace(Clock::now() - start, n);
  return !cancelled();
}

// With a rate, sleeps what keeps the reads to it; without, three times what
// the batch took: about a quarter of the device's time.
void Scrubber::Walk::pace(Clock::duration took, size_t pages) {
  Clock::duration pause = 3 * took;
  if (options_.rate_mbps > 0) {
    const double seconds = double(pages) * ps_ / (double(options_.rate_mbps) * 1e6);
    pause =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)) - took;
  }
  const auto until = Clock::now() + pause;
  while (!cancelled() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
}

void Scrubber::Walk::checked(uint64_t pages) {
  std::lock_guard status(s_.mu_);
  s_.status_.pages_checked += pages;
}

// ---- superblocks and bitmap -----------------------------------------------------

bool Scrubber::Walk::check_fixed() {
  for (uint64_t copy = 0; copy < 2; copy++) {
    if (!read_pages(&copy, 1, batch_.get())) return false;
    const char* why = nullptr;
    Superblock sb;
    std::memcpy(&sb, batch_.get(), sizeof sb);
    if (!verify_meta_page(batch_.get(), ps_, PageNo{copy}, PageType::kSuperblock, &why) ||
        !superblock_valid(sb, &why) || !same_geometry(sb, sb_)) {
      confirm_meta(nullptr, copy, PageType::kSuperblock, why != nullptr ? why : "wrong layout");
    }
  }
  checked(2);
  uint64_t pages[kBatchPages];
  for (uint64_t first = 0; first < sb_.bitmap_pages; first += kBatchPages) {
    const size_t n = std::min<uint64_t>(kBatchPages, sb_.bitmap_pages - first);
    for (size_t i = 0; i < n; i++) pages[i] = sb_.bitmap_start + first + i;
    if (!read_pages(pages, n, batch_.get())) return false;
    for (size_t i = 0; i < n; i++) {
      const char* why = nullptr;
      if (!verify_meta_page(batch_.get() + i * ps_, ps_, PageNo{pages[i]}, PageType::kBitmap,
                            &why)) {
        confirm_meta(nullptr, pages[i], PageType::kBitmap, why);
      }
    }
    checked(n);
  }
  return true;
}

// ---- the tree ---------------------------------------------------------------------

// Level by level from the current root. A node the cache holds changed is
// walked as the cache has it (its home copy is about to be replaced, so there
// is nothing on the device to verify); every other node is read from the
// device, verified, and walked as read. The tree changes between batches:
// what looks wrong is checked again under the lock before it counts.
bool Scrubber::Walk::walk_tree() {
  std::vector<NodeRef> level;
  {
    std::shared_lock lock(fs_.mu_);
    level.push_back(
        NodeRef{fs_.root_.page, uint16_t(fs_.root_.height - 1), false, false, Key{}, Key{}, 0, 0});
  }
  for (uint32_t depth = 0; !level.empty() && depth < kMaxTreeHeight; depth++) {
    std::vector<NodeRef> next;
    for (size_t first = 0; first < level.size(); first += kBatchPages) {
      const size_t n = std::min(kBatchPages, level.size() - first);
      if (!load_nodes(&level[first], n)) return false;
      for (size_t i = 0; i < n; i++) check_node(level[first + i], i, &next);
      checked(n);
      if (cancelled()) return false;
    }
    level.swap(next);
  }
  return true;
}

// The cached state and bytes of n nodes (batch_), and the device's bytes of
// every node the cache does not hold changed (device_). The shared lock keeps
// cached nodes still while they are copied; a frame under I/O is not waited
// for with it held, its node is read from the device like an uncached one.
bool Scrubber::Walk::load_nodes(const NodeRef* refs, size_t n) {
  uint64_t pages[kBatchPages];
  size_t reads = 0;
  {
    std::shared_lock lock(fs_.mu_);
    for (size_t i = 0; i < n; i++) {
      uint32_t crc = 0;
      state_[i] = fs_.pool_->cached_copy(PageNo{refs[i].page}, batch_.get() + i * ps_, &crc,
                                         /*wait=*/false);
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (state_[i] != BufferPool::Cached::kChanging) pages[reads++] = refs[i].page;
  }
  if (reads == 0) return true;
  if (!read_pages(pages, reads, data_batch_.get())) return false;
  for (size_t i = 0, r = 0; i < n; i++) {
    if (state_[i] != BufferPool::Cached::kChanging) {
      std::memcpy(device_.get() + i * ps_, data_batch_.get() + r++ * ps_, ps_);
    }
  }
  return true;
}

void Scrubber::Walk::check_node(const NodeRef& ref, size_t i, std::vector<NodeRef>* next) {
  const std::byte* content = batch_.get() + i * ps_;
  if (state_[i] != BufferPool::Cached::kChanging) {
    const std::byte* device = device_.get() + i * ps_;
    const char* why = nullptr;
    if (node_ok(ref, device, &why)) {
      content = device;
    } else {
      confirm_meta(&ref, ref.page, PageType::kTreeNode, why);
      // Only a clean cached copy is left to walk; without one the subtree
      // cannot be read (a node under I/O is met again by the next scrub).
      if (state_[i] != BufferPool::Cached::kClean) return;
    }
  }
  Node node(const_cast<std::byte*>(content), ps_);
  const char* why = nullptr;
  if (!node.check(&why)) return;  // a changing node read mid-change: the next scrub sees it
  if (node.is_leaf()) return check_items(ref, node);
  for (uint16_t c = 0; c < node.count(); c++) {
    const uint64_t child = node.child_at(c);
    if (child < sb_.data_start || child >= sb_.page_count) {
      confirm_meta(&ref, ref.page, PageType::kTreeNode, "child pointer outside the data region");
      continue;
    }
    NodeRef r{child, uint16_t(ref.level - 1), ref.has_lo, ref.has_hi, ref.lo, ref.hi, ref.page, c};
    if (c > 0) r.has_lo = true, r.lo = node.key_at(c);
    if (c + 1 < node.count()) r.has_hi = true, r.hi = node.key_at(c + 1);
    next->push_back(r);
  }
}

// Header, checksum, layout, level and keys against the parent's range.
bool Scrubber::Walk::node_ok(const NodeRef& ref, const std::byte* page, const char** why) const {
  if (!verify_meta_page(page, ps_, PageNo{ref.page}, PageType::kTreeNode, why)) return false;
  Node node(const_cast<std::byte*>(page), ps_);
  if (!node.check(why)) return false;
  if (node.level() != ref.level) {
    *why = "level differs from its parent's";
    return false;
  }
  for (uint16_t i = 0; i < node.count(); i++) {
    const Key key = node.key_at(i);
    const bool first_internal = i == 0 && !node.is_leaf();
    if ((ref.has_lo && key < ref.lo && !first_internal) || (ref.has_hi && !(key < ref.hi))) {
      *why = "key outside the range its parent gives it";
      return false;
    }
  }
  return true;
}

// Every item as the tree hands it out must pass the engine's item checks;
// each written page of an extent, and each page of an xattr value kept in
// pages, is queued for its CRC.
void Scrubber::Walk::check_items(const NodeRef& ref, const Node& node) {
  for (uint16_t i = 0; i < node.count(); i++) {
    const Key key = node.key_at(i);
    const auto value = node.value_at(i);
    const char* why = nullptr;
    if (!check_item(key, value, limits_, &why)) {
      confirm_meta(&ref, ref.page, PageType::kTreeNode, why);
      return;
    }
    if (key.kind == uint8_t(KeyKind::kExtent)) {
      Extent e;
      (void)Extent::decode(key.off, value, limits_, &e, &why);  // check_item passed
      for (uint32_t p = 0; p < e.pages; p++) {
        if (!e.is_unwritten(p) &&
            !queue_data(DataRef{e.phys + p, e.crc[p], key.ino, e.file_page + p})) {
          return;
        }
      }
    } else if (key.kind == uint8_t(KeyKind::kXattr)) {
      XattrItem x;
      if (!XattrItem::decode(value, limits_, &x, &why)) continue;  // check_item passed
      for (uint32_t p = 0; p < x.pages.size(); p++) {
        if (!queue_data(DataRef{x.pages[p].phys, x.pages[p].crc, key.ino, p, true, key.off}))
          return;
      }
    }
  }
}

// Queues a page for flush_data, which runs when a batch is full.
bool Scrubber::Walk::queue_data(const DataRef& d) {
  data_.push_back(d);
  return data_.size() < kBatchPages || flush_data();
}

// Data pages whose home copy is current are read and held to their CRC;
// those the cache holds changed (written since, not yet home) are skipped.
bool Scrubber::Walk::flush_data() {
  const size_t n = data_.size();
  if (n == 0) return true;
  {
    std::shared_lock lock(fs_.mu_);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
      uint32_t crc = 0;
      if (fs_.pool_->cached_copy(PageNo{data_[i].phys}, nullptr, &crc, /*wait=*/false) !=
          BufferPool::Cached::kChanging) {
        data_[kept++] = data_[i];
      }
    }
    data_.resize(kept);
  }
  uint64_t pages[kBatchPages];
  for (size_t i = 0; i < data_.size(); i++) pages[i] = data_[i].phys;
  if (!data_.empty() && !read_pages(pages, data_.size(), data_batch_.get())) return false;
  for (size_t i = 0; i < data_.size(); i++) {
    if (crc32c(data_batch_.get() + i * ps_, ps_) != data_[i].crc) confirm_data(data_[i]);
  }
  checked(n);
  data_.clear();
  return true;
}

// ---- re-checks and repairs ------------------------------------------------------

// A metadata page failed as the device holds it. It is read again under the
// filesystem lock, shared: a page the cache holds changed, or one freed since,
// is not damage; one the device returns intact now is not either (the first
// read met a write). Damage is confirmed once more under the lock held
// exclusively, and then repaired from the cache's clean copy if there is one.
void Scrubber::Walk::confirm_meta(const NodeRef* ref, uint64_t page, PageType type,
                                  const char* why) {
  {
    std::shared_lock lock(fs_.mu_);
    if (!still_bad(ref, page, type)) return;
  }
  std::unique_lock lock(fs_.mu_);
  if (!still_bad(ref, page, type)) return;  // changed while the lock was free
  ScrubDamage damage{page, true, false, 0, 0, "", why};
  damage.owner = type == PageType::kSuperblock ? "superblock copy " + std::to_string(page)
                 : type == PageType::kBitmap   ? "free-space bitmap page " + std::to_string(page)
                                               : owner_of(*ref);
  PageHeader h;  // of the damaged page, as still_bad read it
  std::memcpy(&h, page_.get(), sizeof h);
  const bool header_ok = h.magic == kPageMagic && h.type == uint16_t(type) && h.page_no == page;
  damage.repaired = writable() && repair_meta(ref, page, type);
  const size_t index = report(damage);
  if (!damage.repaired && writable() && type != PageType::kSuperblock &&
      unhealed_.size() < kMaxUnhealed) {
    unhealed_.push_back(
        Unhealed{index, page, type, true, h.lsn, header_ok, ref != nullptr ? *ref : NodeRef{}, {}});
  }
}

// Reads the page again (into page_) with the filesystem lock held: true if
// it still fails and the failure is the device's.
bool Scrubber::Walk::still_bad(const NodeRef* ref, uint64_t page, PageType type) {
  uint32_t crc = 0;
  if (type == PageType::kSuperblock) return read_superblock_copy(page);
  if (fs_.pool_->cached_copy(PageNo{page}, copy_.get(), &crc) == BufferPool::Cached::kChanging) {
    return false;  // the cache holds a newer version, on its way home
  }
  if (type == PageType::kTreeNode) {
    auto used = fs_.space_->is_used(PageNo{page});
    if (!used.ok() || !*used) return false;  // freed since the walk read its parent
    if (ref->parent == 0 && fs_.root_.page != page) return false;  // no longer the root
  }
  if (!fs_.device_->read_at(page * ps_, page_.get(), ps_).ok()) return true;
  const char* why = nullptr;
  if (type != PageType::kTreeNode) {
    return !verify_meta_page(page_.get(), ps_, PageNo{page}, type, &why);
  }
  if (ref->parent != 0) {
    // The parent as the tree has it now (the cache's, else the device's)
    // must still point here.
    if (fs_.pool_->cached_copy(PageNo{ref->parent}, copy_.get(), &crc) ==
            BufferPool::Cached::kAbsent &&
        !fs_.device_->read_at(ref->parent * ps_, copy_.get(), ps_).ok()) {
      return true;
    }
    Node parent(copy_.get(), ps_);
    if (!verify_meta_page(copy_.get(), ps_, PageNo{ref->parent}, PageType::kTreeNode, &why) ||
        !parent.check(&why) || ref->slot >= parent.count() || parent.is_leaf() ||
        parent.child_at(ref->slot) != page) {
      return false;
    }
  }
  if (!node_ok(*ref, page_.get(), &why)) return true;
  Node node(page_.get(), ps_);
  for (uint16_t i = 0; node.is_leaf() && i < node.count(); i++) {
    if (!check_item(node.key_at(i), node.value_at(i), limits_, &why)) return true;
  }
  return false;
}

// A superblock copy read again (into page_): true if it still fails. The
// checkpointer writes both copies without the filesystem lock, but under its
// own mutex, which this read holds so as not to meet one of those writes.
bool Scrubber::Walk::read_superblock_copy(uint64_t page) {
  std::unique_lock<std::mutex> checkpoints;
  if (fs_.checkpointer_) checkpoints = std::unique_lock(fs_.checkpointer_->mutex());
  if (!fs_.device_->read_at(page * ps_, page_.get(), ps_).ok()) return true;
  const char* why = nullptr;
  Superblock sb;
  std::memcpy(&sb, page_.get(), sizeof sb);
  return !verify_meta_page(page_.get(), ps_, PageNo{page}, PageType::kSuperblock, &why) ||
         !superblock_valid(sb, &why) || !same_geometry(sb, sb_);
}

// Repairs a confirmed damaged page from what the engine holds: a superblock
// copy by a full checkpoint (which writes both copies from the superblock in
// memory, as unmount does), any other page from the cache's clean copy,
// which was verified when it was read. The filesystem lock is held
// exclusively.
bool Scrubber::Walk::repair_meta(const NodeRef* ref, uint64_t page, PageType type) {
  if (type == PageType::kSuperblock) {
    return fs_.checkpoint_locked().ok() && !still_bad(ref, page, type);
  }
  uint32_t crc = 0;
  if (fs_.pool_->cached_copy(PageNo{page}, copy_.get(), &crc) != BufferPool::Cached::kClean) {
    return false;
  }
  return rewrite_meta(page, copy_.get()).ok();
}

// Puts `image` in place of a damaged metadata page the way every operation
// changes a page: as a change of the running transaction (all or nothing,
// within its journal admission), which the committer then journals and a
// checkpoint writes home. Until then the cache holds the good copy, pinned.
// The filesystem lock is held exclusively.
Status Scrubber::Walk::rewrite_meta(uint64_t page, const std::byte* image) {
  Status st = fs_.run_op([&]() -> Status {
    PAGEFS_TRY(fs_.begin_op(1));
    // The device's copy is damaged: the frame is made, not read.
    PAGEFS_ASSIGN(PageRef ref, fs_.pool_->create(PageNo{page}, /*meta=*/true, /*fresh=*/false,
                                                 /*zero=*/false));
    ref.mark_dirty();
    std::memcpy(ref.data(), image, ps_);
    return ok_status();
  });
  if (st.ok()) (void)fs_.close_txn_locked();  // on its way to the journal now
  return st;
}

// A data page failed its extent's CRC: damage if, under the lock, the
// extent still maps it with that CRC and the device still returns bad bytes
// (checked with the lock shared, then again held exclusively to repair it).
void Scrubber::Walk::confirm_data(const DataRef& d) {
  {
    std::shared_lock lock(fs_.mu_);
    if (!data_still_bad(d)) return;
  }
  std::unique_lock lock(fs_.mu_);
  if (!data_still_bad(d)) return;
  ScrubDamage damage{d.phys, false, false, d.ino, d.file_page * ps_, "", "checksum mismatch"};
  std::string name;
  if (d.xattr && data_current(d, &name))
    damage.what = "checksum mismatch in the value of xattr " + name;
  uint32_t crc = 0;
  if (writable() &&
      fs_.pool_->cached_copy(PageNo{d.phys}, copy_.get(), &crc) == BufferPool::Cached::kClean &&
      crc32c(copy_.get(), ps_) == d.crc) {
    damage.repaired = write_home(d.phys, copy_.get()).ok();
  }
  const size_t index = report(damage);
  if (!damage.repaired && writable() && unhealed_.size() < kMaxUnhealed) {
    unhealed_.push_back(Unhealed{index, d.phys, PageType::kTreeNode, false, 0, false, {}, d});
  }
}

// Reads the page again (into page_) with the filesystem lock held: true if
// the file still maps it with that CRC, the cache holds no newer version, and
// the device returns bytes that fail it (or fails the read).
bool Scrubber::Walk::data_still_bad(const DataRef& d) {
  uint32_t crc = 0;
  if (fs_.pool_->cached_copy(PageNo{d.phys}, nullptr, &crc) == BufferPool::Cached::kChanging ||
      !data_current(d)) {
    return false;
  }
  if (!fs_.device_->read_at(d.phys * ps_, page_.get(), ps_).ok()) return true;
  return crc32c(page_.get(), ps_) != d.crc;
}

// Whether the file's extent maps the page with that CRC now; for a page of
// an xattr value, whether the item still names it with that CRC (and its
// name, if asked).
bool Scrubber::Walk::data_current(const DataRef& d, std::string* xattr_name) {
  if (d.xattr) {
    std::string item;
    auto found = fs_.tree_->get(Key::of(d.ino, KeyKind::kXattr, d.cookie), &item);
    if (!found.ok() || !*found) return false;
    XattrItem x;
    const char* why = nullptr;
    if (!XattrItem::decode(std::as_bytes(std::span(item)), limits_, &x, &why) ||
        d.file_page >= x.pages.size() || x.pages[d.file_page].phys != d.phys ||
        x.pages[d.file_page].crc != d.crc) {
      return false;
    }
    if (xattr_name != nullptr) xattr_name->assign(x.name);
    return true;
  }
  Extent e;
  bool found = false;
  if (!fs_.find_extent(InodeNo{d.ino}, d.file_page, &e, &found).ok() || !found) return false;
  const uint64_t i = d.file_page - e.file_page;
  return i < e.pages && e.phys + i == d.phys && !e.is_unwritten(uint32_t(i)) && e.crc[i] == d.crc;
}

// A data page gets back exactly the bytes its extent's CRC names, written
// home directly: nothing the filesystem states changes, so there is nothing
// to journal, and the cache does not hold the page changed (the caller
// checked, with the lock held exclusively), so no other write of it is on
// its way.
Status Scrubber::Walk::write_home(uint64_t page, const std::byte* bytes) {
  PAGEFS_TRY(fs_.device_->write_at(page * ps_, bytes, ps_));
  return fs_.device_->flush();
}

size_t Scrubber::Walk::report(ScrubDamage damage) {
  // Pages 0 and 1 are the superblock copies; every other repair here uses the cache.
  const char* repaired = !damage.repaired ? ""
                         : damage.metadata && damage.page < 2
                             ? "; rewritten from the superblock in memory"
                             : "; repaired from the cache";
  PAGEFS_LOG_ERROR("scrub: damaged %s page %llu (%s%s): %s%s",
                   damage.metadata ? "metadata" : "data", ull(damage.page),
                   damage.metadata ? "" : "inode ",
                   damage.metadata ? damage.owner.c_str() : std::to_string(damage.ino).c_str(),
                   damage.what.c_str(), repaired);
  std::lock_guard status(s_.mu_);
  s_.status_.errors++;
  s_.status_.repaired += damage.repaired;
  if (s_.status_.damage.size() >= kMaxReported) return SIZE_MAX;
  s_.status_.damage.push_back(std::move(damage));
  return s_.status_.damage.size() - 1;
}

// "tree node (level 0) holding the items of inodes 45..52".
std::string Scrubber::Walk::owner_of(const NodeRef& ref) const {
  std::string owner = "tree node (level " + std::to_string(ref.level) + ") holding the items of ";
  if (!ref.has_lo && !ref.has_hi) return owner + "every inode";
  return owner + "inodes " + (ref.has_lo ? std::to_string(ref.lo.ino) : "1") + ".." +
         (ref.has_hi ? std::to_string(ref.hi.ino) : "the last");
}

// Every damaged page not yet repaired is looked for in the journal region.
// For a metadata page the image must be of the very version the damaged page
// names: its header intact but for the checksum, with the LSN the image
// carries (the cache does not hold the page, so the device's copy was the
// newest, and an image older or newer than it would turn the page back or
// forward). For a data page the image must have the CRC its extent records.
//
// The region is read without a lock while the committer writes new records
// over old ones: a record read while it is overwritten fails the checks of
// its header, payload and commit record, all made on the one copy read, so
// only whole records are used. Each repair checks again, under the lock held
// exclusively, that the page is still damaged and still the same.
void Scrubber::Walk::heal_from_journal() {
  if (unhealed_.empty() || cancelled()) return;
  std::map<uint64_t, size_t> wanted;  // page -> index in unhealed_
  for (size_t i = 0; i < unhealed_.size(); i++) wanted[unhealed_[i].page] = i;
  std::map<uint64_t, std::vector<std::byte>> found;  // page -> image
  // Paced as the walk's reads are (the records a header leads to are read
  // again, whole, which the pace leaves out).
  auto batch_start = Clock::now();
  const auto after_read = [&](uint64_t pages) {
    pace(Clock::now() - batch_start, pages);
    batch_start = Clock::now();
    return !cancelled();
  };
  auto scanned = Journal::scan_region(
      *fs_.device_, sb_,
      [&](uint64_t, PageNo page, const std::byte* image) -> Status {
        auto it = wanted.find(page.value);
        if (it == wanted.end()) return ok_status();
        const Unhealed& u = unhealed_[it->second];
        if (u.meta) {
          const char* why = nullptr;
          PageHeader h;
          std::memcpy(&h, image, sizeof h);
          if (!u.header_ok || h.lsn != u.header_lsn ||
              !verify_meta_page(image, ps_, page, u.type, &why)) {
            return ok_status();
          }
        } else if (crc32c(image, ps_) != u.data.crc) {
          return ok_status();
        }
        found[page.value].assign(image, image + ps_);
        return ok_status();
      },
      after_read);
  if (!scanned.ok()) return;
  for (auto& [page, image] : found) heal(unhealed_[wanted[page]], image.data());
}

// Puts a journal image in place if, under the lock, the page is still
// damaged as it was found.
void Scrubber::Walk::heal(const Unhealed& u, const std::byte* image) {
  std::unique_lock lock(fs_.mu_);
  if (!writable() || cancelled()) return;
  Status st = ok_status();
  if (u.meta) {
    const NodeRef* ref = u.type == PageType::kTreeNode ? &u.node : nullptr;
    if (!still_bad(ref, u.page, u.type)) return;
    PageHeader h;
    std::memcpy(&h, page_.get(), sizeof h);
    if (h.lsn != u.header_lsn) return;  // overwritten since, with another version
    st = rewrite_meta(u.page, image);
  } else {
    if (!data_still_bad(u.data)) return;
    std::memcpy(copy_.get(), image, ps_);  // the device wants an aligned buffer
    st = write_home(u.page, copy_.get());
  }
  if (!st.ok()) return;
  PAGEFS_LOG_INFO("scrub: page %llu repaired from its copy in the journal", ull(u.page));
  std::lock_guard status(s_.mu_);
  s_.status_.repaired++;
  if (u.report < s_.status_.damage.size()) s_.status_.damage[u.report].repaired = true;
}

// Names the files whose data is damaged: their paths come from a second
// walk of the current tree (nodes only), as the first one reads it, that
// keeps every directory's name and the entries of the damaged files.
void Scrubber::Walk::name_owners() {
  std::set<uint64_t> wanted;  // inodes of damaged data
  {
    std::lock_guard status(s_.mu_);
    for (const ScrubDamage& d : s_.status_.damage) {
      if (!d.metadata) wanted.insert(d.ino);
    }
  }
  if (wanted.empty() || cancelled()) return;
  std::map<uint64_t, std::pair<uint64_t, std::string>> names;  // inode -> (dir, name)
  std::vector<NodeRef> level;
  {
    std::shared_lock lock(fs_.mu_);
    level.push_back(NodeRef{fs_.root_.page, 0, false, false, Key{}, Key{}, 0, 0});
  }
  for (uint32_t depth = 0; !level.empty() && depth < kMaxTreeHeight; depth++) {
    std::vector<NodeRef> next;
    for (size_t first = 0; first < level.size(); first += kBatchPages) {
      const size_t n = std::min(kBatchPages, level.size() - first);
      if (!load_nodes(&level[first], n)) return;
      for (size_t i = 0; i < n; i++) {
        const std::byte* page = state_[i] == BufferPool::Cached::kChanging
                                    ? batch_.get() + i * ps_
                                    : device_.get() + i * ps_;
        collect_names(page, level[first + i].page, wanted, &names, &next);
      }
    }
    level.swap(next);
  }
  std::lock_guard status(s_.mu_);
  for (ScrubDamage& d : s_.status_.damage) {
    if (!d.metadata) d.owner = path_of(d.ino, names);
  }
}

// From one node: its children, or the entries of directories and of the
// inodes named in `wanted`.
void Scrubber::Walk::collect_names(const std::byte* page, uint64_t page_no,
                                   const std::set<uint64_t>& wanted,
                                   std::map<uint64_t, std::pair<uint64_t, std::string>>* names,
                                   std::vector<NodeRef>* next) const {
  const char* why = nullptr;
  if (!verify_meta_page(page, ps_, PageNo{page_no}, PageType::kTreeNode, &why)) return;
  Node node(const_cast<std::byte*>(page), ps_);
  if (!node.check(&why)) return;
  for (uint16_t i = 0; i < node.count(); i++) {
    if (!node.is_leaf()) {
      next->push_back(NodeRef{node.child_at(i), 0, false, false, Key{}, Key{}, page_no, i});
      continue;
    }
    const Key key = node.key_at(i);
    const auto value = node.value_at(i);
    if (key.kind != uint8_t(KeyKind::kDirent) || !check_item(key, value, limits_, &why)) continue;
    DirentValue dv;
    std::memcpy(&dv, value.data(), sizeof dv);
    const uint64_t target = dv.ino;
    if (dv.type != DT_DIR && wanted.count(target) == 0) continue;
    std::string name(reinterpret_cast<const char*>(value.data()) + sizeof dv, dv.name_len);
    names->emplace(target, std::make_pair(key.ino, std::move(name)));
  }
}

std::string Scrubber::Walk::path_of(
    uint64_t ino, const std::map<uint64_t, std::pair<uint64_t, std::string>>& names) const {
  std::string path;
  for (uint64_t cur = ino, depth = 0; cur != kRootInode.value; depth++) {
    auto it = names.find(cur);
    if (it == names.end() || depth > 4096) return "inode " + std::to_string(ino);
    path = "/" + it->second.second + path;
    cur = it->second.first;
  }
  return path.empty() ? "/" : path;
}

// ---- Scrubber -------------------------------------------------------------------------

const char* scrub_state_name(ScrubStatus::State state) {
  switch (state) {
    case ScrubStatus::State::kNever:
      return "never";
    case ScrubStatus::State::kRunning:
      return "running";
    case ScrubStatus::State::kDone:
      return "done";
    case ScrubStatus::State::kCancelled:
      return "cancelled";
    case ScrubStatus::State::kFailed:
      return "failed";
  }
  return "unknown";
}

Scrubber::Scrubber(FileSystem::Impl& fs) : fs_(fs) {}

Scrubber::~Scrubber() {
  cancel_ = true;
  if (thread_.joinable()) thread_.join();
}

Status Scrubber::start(const ScrubOptions& options) {
  std::lock_guard lock(mu_);
  if (status_.state == ScrubStatus::State::kRunning) return Err{EBUSY};
  if (thread_.joinable()) thread_.join();  // the last scrub's, finished
  cancel_ = false;
  status_ = ScrubStatus{};
  status_.state = ScrubStatus::State::kRunning;
  status_.started = now_seconds();
  status_.rate_mbps = options.rate_mbps;
  thread_ = std::thread([this, options] { run(options); });
  return ok_status();
}

void Scrubber::cancel() {
  cancel_ = true;
}

ScrubStatus Scrubber::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Scrubber::run(ScrubOptions options) {
  PAGEFS_LOG_INFO("scrub started");
  Walk walk(*this, options);
  const bool done = walk.run();
  std::lock_guard lock(mu_);
  status_.finished = now_seconds();
  if (done) {
    status_.state = ScrubStatus::State::kDone;
  } else {
    status_.state = cancel_ ? ScrubStatus::State::kCancelled : ScrubStatus::State::kFailed;
  }
  PAGEFS_LOG_INFO("scrub %s: %llu pages checked, %llu damaged, %llu repaired",
                  done      ? "finished"
                  : cancel_ ? "cancelled"
                            : "failed",
                  ull(status_.pages_checked), ull(status_.errors), ull(status_.repaired));
}

}  // namespace pagefs
