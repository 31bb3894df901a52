#include "engine/scrub.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include "engine/crc32c.h"
#include "engine/log.h"
#include "engine/scrub_walk.h"
#include "engine/superblock.h"
#include "engine/threads.h"
#include "engine/xattr_item.h"

namespace pagefs {
namespace {

using ull = unsigned long long;

scrub_internal::Buffer aligned_pages(size_t pages, uint32_t page_size) {
  return scrub_internal::Buffer(
      static_cast<std::byte*>(std::aligned_alloc(4096, pages * page_size)));
}

int64_t now_seconds() {
  return int64_t(time(nullptr));
}

}  // namespace

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
    // A second slot pointing to a node is damage unless the tree changed
    // between the batches that read the two parents (confirm_meta checks).
    for (const NodeRef& ref : once_each(&next)) {
      confirm_meta(&ref, ref.page, PageType::kTreeNode, "a second slot points to this node");
    }
    level.swap(next);
  }
  return true;
}

std::vector<Scrubber::Walk::NodeRef> Scrubber::Walk::once_each(std::vector<NodeRef>* level) {
  std::stable_sort(level->begin(), level->end(),
                   [](const NodeRef& a, const NodeRef& b) { return a.page < b.page; });
  std::vector<NodeRef> again;
  size_t kept = 0;
  for (size_t i = 0; i < level->size(); i++) {
    if (kept > 0 && (*level)[kept - 1].page == (*level)[i].page) {
      again.push_back((*level)[i]);
    } else {
      (*level)[kept++] = (*level)[i];
    }
  }
  level->resize(kept);
  return again;
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
      // It holds the device's bytes as they were read: it is walked only if
      // it belongs where the parent puts it.
      if (state_[i] != BufferPool::Cached::kClean) return;
      const Node cached(const_cast<std::byte*>(content), ps_);
      if (!cached.check(&why) || !fits(ref, cached, &why)) return;
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
  return node.check(why) && fits(ref, node, why);
}

// The level and keys a node's parent gives it (its layout checked).
bool Scrubber::Walk::fits(const NodeRef& ref, const Node& node, const char** why) {
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
  settled_.clear();
  status_.state = ScrubStatus::State::kRunning;
  status_.started = now_seconds();
  status_.rate_mbps = options.rate_mbps;
  thread_ = std::thread([this, options] {
    name_this_thread("pagefs-scrub");
    run(options);
  });
  return ok_status();
}

void Scrubber::cancel() {
  cancel_ = true;
}

ScrubStatus Scrubber::status() const {
  std::lock_guard lock(mu_);
  ScrubStatus s = status_;
  if (s.state == ScrubStatus::State::kRunning) {
    size_t listed = 0;
    while (listed < settled_.size() && settled_[listed]) listed++;
    s.damage.resize(listed);
  }
  return s;
}

void Scrubber::run(ScrubOptions options) {
  PAGEFS_LOG_INFO("scrub started");
  Walk walk(*this, options);
  const bool done = walk.run();
  std::lock_guard lock(mu_);
  // A scrub that stopped early did not name the files of damaged data.
  for (ScrubDamage& d : status_.damage) {
    if (!d.metadata && d.owner.empty()) d.owner = "inode " + std::to_string(d.ino);
  }
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
