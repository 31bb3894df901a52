// Scrubber::Walk (engine/scrub_walk.h): a failed page checked again under
// the filesystem lock, its repair from the cache or the journal, and the
// names of what owns the damage.
#include <dirent.h>

#include <cstring>
#include <map>
#include <set>

#include "engine/crc32c.h"
#include "engine/log.h"
#include "engine/scrub_walk.h"
#include "engine/superblock.h"
#include "engine/xattr_item.h"

namespace pagefs {
namespace {

using ull = unsigned long long;

}  // namespace

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
  const bool heal_later = !damage.repaired && writable() && type != PageType::kSuperblock &&
                          unhealed_.size() < kMaxUnhealed;
  const size_t index = report(damage, /*settled=*/!heal_later);
  if (heal_later) {
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
  if (type != PageType::kTreeNode) return !meta_ok(ref, page, type, page_.get());
  const char* why = nullptr;
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
  return !meta_ok(ref, page, type, page_.get());
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
  // The cached copy holds the bytes the device had when they were read; if
  // they fail too (a node where its parent should not put it), the damage is
  // not in this page and rewriting it would change nothing.
  uint32_t crc = 0;
  if (fs_.pool_->cached_copy(PageNo{page}, copy_.get(), &crc) != BufferPool::Cached::kClean ||
      !meta_ok(ref, page, type, copy_.get())) {
    return false;
  }
  return rewrite_meta(page, copy_.get()).ok();
}

bool Scrubber::Walk::meta_ok(const NodeRef* ref, uint64_t page, PageType type,
                             const std::byte* bytes) const {
  const char* why = nullptr;
  if (type != PageType::kTreeNode) return verify_meta_page(bytes, ps_, PageNo{page}, type, &why);
  if (!node_ok(*ref, bytes, &why)) return false;
  Node node(const_cast<std::byte*>(bytes), ps_);
  for (uint16_t i = 0; node.is_leaf() && i < node.count(); i++) {
    if (!check_item(node.key_at(i), node.value_at(i), limits_, &why)) return false;
  }
  return true;
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
  // Not settled until name_owners has found the file's path.
  const size_t index = report(damage, /*settled=*/false);
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

size_t Scrubber::Walk::report(ScrubDamage damage, bool settled) {
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
  s_.settled_.push_back(settled);
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
    // The image must pass what the page failed: the same bytes where the
    // parent should not put them are no repair.
    std::memcpy(copy_.get(), image, ps_);
    if (!meta_ok(ref, u.page, u.type, copy_.get())) return;
    st = rewrite_meta(u.page, copy_.get());
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
    (void)once_each(&next);
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

}  // namespace pagefs
