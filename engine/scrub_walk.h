// Scrubber::Walk, the scrub's work (engine/scrub.h), shared by scrub.cc and
// scrub_repair.cc; not for use elsewhere.
//
// Thread-safety: a Walk lives on the scrub thread; what it shares with the
// filesystem it reaches under the locks its methods name.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/fs_impl.h"
#include "engine/scrub.h"

namespace pagefs {
namespace scrub_internal {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

}  // namespace scrub_internal

// One scrub, from start to end, on the scrub thread. scrub.cc reads and
// checks; scrub_repair.cc checks a failure again, repairs it, looks for
// copies in the journal and names the owners of damaged data.
class Scrubber::Walk {
 public:
  using Clock = std::chrono::steady_clock;
  using Buffer = scrub_internal::Buffer;

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
  static bool fits(const NodeRef& ref, const Node& node, const char** why);
  // Sorts a level by page, keeps one reference to each node (the first met)
  // and returns the others: a damaged or hostile tree may point to one node
  // from many slots, and walking it once for each would multiply the next
  // level without bound.
  static std::vector<NodeRef> once_each(std::vector<NodeRef>* level);
  // Whether `bytes` are a sound copy of a metadata page: what still_bad
  // holds the device's copy to.
  bool meta_ok(const NodeRef* ref, uint64_t page, PageType type, const std::byte* bytes) const;
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
  // Adds a damaged page to the status. `settled`: its owner and whether it
  // was repaired are known, so it may be listed while the scrub runs.
  size_t report(ScrubDamage damage, bool settled);
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

}  // namespace pagefs
