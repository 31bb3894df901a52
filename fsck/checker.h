// Checker: the consistency check of fsck.pagefs, and the repair plan it implies.
//
// An independent reader of the on-disk format (engine/format.h): it parses the
// bytes itself and shares no code with the engine's trees or buffer manager, so
// that it can serve as an oracle for the engine. It shares only the rules for
// what a valid superblock and a valid leaf item are (engine/superblock.h,
// engine/items.h), so that fsck and mount agree on what counts as damage. It
// only reads the device; what it would change goes into a RepairPlan (plan.h).
//
// Passes, in order:
//   1. superblock  pick the valid copy with the highest generation, check geometry
//   2. bitmap      load and verify the free-space bitmap pages
//   3. tree        walk the B+tree level by level (one batched read per 256 nodes),
//                  verify every node, and check every leaf item as it is met; items
//                  arrive in key order, so an inode's record precedes its other items.
//                  Data pages are read in batches and verified against extent CRCs.
//                  Key ranges under a node that cannot be read are recovered, when
//                  repairing, from other copies of tree pages (salvage.cc).
//   4. inodes      link counts, directory sizes and parents, reachability from root,
//                  reconnection in /lost+found
//   5. space       referenced pages == pages marked in use; superblock counters
//
// A pass that finds the structure too damaged to go on stops the check (exit 4);
// an operational failure (I/O error, not pagefs, unsupported version) is fatal
// (exit 8). Every inconsistency goes to the Report, and its fix to the plan.
//
// Memory: one bit per device page three times (bitmap, referenced set, pages
// the repair must avoid), one InodeInfo per inode, one DirentRef per directory
// entry, one tree level of NodeRefs, the leaf list, and fixed batch buffers.
// Thread-safety: none; one Checker runs on one thread.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/key.h"
#include "fsck/aligned_buffer.h"
#include "fsck/page_set.h"
#include "fsck/plan.h"
#include "fsck/progress.h"
#include "fsck/report.h"

namespace pagefs::fsck {

enum ExitCode : int {
  kExitClean = 0,
  kExitFixed = 1,
  kExitUncorrected = 4,
  kExitOperational = 8,
  kExitUsage = 16,
};

// What the caller will do with the plan; it decides how problems are printed.
enum class Mode {
  kCheck,   // -n: change nothing
  kPreen,   // -p: fix what is safe and certain, unless something needs judgement
  kRepair,  // -y: fix everything
};

struct CheckOptions {
  bool verbose = false;
  Mode mode = Mode::kCheck;
  bool zero_bad_data = false;  // -E zero_bad_data: plan to zero data pages that fail
  Progress* progress = nullptr;
  FILE* err = stderr;  // where operational failures are reported
};

// What a check counted, for the summary line.
struct CheckSummary {
  uint64_t files = 0;        // inodes that are not directories
  uint64_t directories = 0;  //
  uint64_t pages_used = 0;
  uint64_t page_count = 0;
};

inline constexpr uint64_t kSymlinkMax = 4095;  // PATH_MAX minus the terminator

// "(ino, kind, off)" for messages.
std::string to_string(const Key& key);
// A name with unprintable bytes escaped, for messages.
std::string printable(std::string_view name);
// The DT_* type of a file mode.
uint8_t dtype_of(uint32_t mode);
// The value of a directory entry item.
std::string dirent_value(uint64_t target, uint8_t type, const std::string& name);

class Checker {
 public:
  Checker(Device& device, std::string device_name, CheckOptions options, Report& report);
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Runs every pass and prints the problems. Returns kExitClean, or
  // kExitUncorrected if problems were found, or kExitOperational.
  int run();

  // After run(): the changes that fix what was found.
  RepairPlan& plan() { return plan_; }
  const Superblock& superblock() const { return sb_; }
  // Whether any problem needs judgement, which fsck -p stops at: one only -y
  // fixes, or one no repair can fix (a data page that fails its checksum,
  // which only a person can decide to zero or to restore from a backup).
  bool needs_judgement() const {
    return report_.count(Fix::kRepair) > 0 || report_.count(Fix::kNone) > 0;
  }
  // Problems found that a repair would fix, and that no repair can.
  uint64_t fixable() const { return report_.count(Fix::kPreen) + report_.count(Fix::kRepair); }
  uint64_t unfixable() const { return report_.count(Fix::kNone); }
  // No valid superblock copy was found (the device may still be pagefs).
  bool superblock_lost() const { return superblock_lost_; }
  CheckSummary summary() const;

 private:
  static constexpr uint32_t kNoEntry = UINT32_MAX;
  // What fsck learns about one inode, from its record and from the items that
  // refer to it.
  struct InodeInfo {
    bool has_record = false;   // its kInode item was found and is usable
    bool has_orphan = false;   // a kOrphan item names it
    bool dropped = false;      // removed with all its items by the repair
    bool recreated = false;    // its record is made anew by the repair
    bool changed = false;      // `rec` differs from the record on the device
    bool broken_link = false;  // a symlink whose target cannot be read back
    bool reconnect = false;    // goes to /lost+found
    InodeRecord rec{};
    uint64_t extent_pages = 0;  // pages in its extents
    uint64_t extent_end = 0;    // file page after its last extent
    uint64_t entries = 0;       // directory entries inside it
    uint64_t other_items = 0;   // xattrs and extents, for inodes without a record
    uint64_t subdirs = 0;       // of its entries, those that point at directories
    uint64_t links = 0;         // directory entries pointing at it
    uint32_t entry = kNoEntry;  // in dirents_: the first entry found naming it (its path)
    uint32_t kept = kNoEntry;   // in dirents_: the entry counted as its name
    uint8_t reach = 0;          // directories: a Reach value, for check_reachability
  };
  enum Reach : uint8_t { kUnknown, kVisiting, kReachable, kUnreachable };
  // A directory entry whose target is checked once every inode is known.
  struct DirentRef {
    uint64_t dir;
    uint64_t target;
    uint64_t cookie;
    uint8_t type;
    bool removed = false;
    std::string name;
  };
  // A tree node still to be read, with the key range its parent allows it.
  struct NodeRef {
    uint64_t page;
    uint16_t level;
    KeyRange range;
  };
  // One cell of a node, parsed.
  struct Cell {
    Key key;
    uint16_t offset;
    uint16_t value_len;
    const uint8_t* value;
  };
  // A written data page to verify against its extent CRC.
  struct DataCheck {
    uint64_t phys;
    uint32_t crc;
    uint64_t ino;
    Key extent;              // the extent's key; for an xattr value, the xattr's
    uint32_t index;          // page of the extent, or of the xattr value
    uint32_t symlink_bytes;  // symlinks: bytes of target in this page, else 0
    // Pages of an xattr value: the bytes from `zero_from` to the end of the
    // page must be zero.
    bool xattr = false;
    uint32_t zero_from = 0;
  };
  // An extent whose pages another owner claimed first.
  struct SharedExtent {
    Key key;
    uint64_t phys;
    uint32_t pages;
  };
  struct Candidate;
  // A node the walk could not use.
  struct DamagedNode {
    uint64_t page;
    KeyRange range;
    std::string why;
  };

  // One of the two superblock copies as found on the device.
  struct SuperCopy {
    enum State { kAbsent, kCorrupt, kOtherVersion, kValid } state = kAbsent;
    int slot = 0;
    Superblock sb{};
    const char* why = nullptr;  // kCorrupt: what superblock_valid() refused
  };

  static constexpr size_t kBatchPages = 256;

  // checker.cc: orchestration, I/O, superblock, geometry, bitmap.
  void start_pass(int pass, const char* label, uint64_t units);
  void advance(uint64_t units);
  bool fatal(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  bool read_pages(const uint64_t* pages, size_t n, AlignedBuffer& buf);
  bool check_superblock();
  std::unique_ptr<AlignedBuffer> read_superblock_area(size_t* area_bytes);
  static SuperCopy classify_super_copy(const uint8_t* area, size_t area_bytes, uint64_t offset,
                                       int slot);
  static SuperCopy find_second_copy(const uint8_t* area, size_t area_bytes,
                                    uint32_t page_size_hint);
  bool choose_superblock(const SuperCopy& copy0, const SuperCopy& copy1);
  void compare_superblock_copies(const SuperCopy& best, const SuperCopy& other);
  bool check_geometry();
  bool check_regions();
  bool check_meta_header(const uint8_t* page, uint64_t page_no, PageType type,
                         std::string* why) const;
  static bool header_reserved_set(const uint8_t* page);
  bool load_bitmap();
  // Marks a page referenced; false if it already was (the caller reports it).
  bool claim(uint64_t page);
  Fix applied_fixes() const;
  void finish_plan();
  int finish();

  // tree_walk.cc: nodes.
  bool walk_tree();
  void check_node(const NodeRef& ref, const uint8_t* page, std::vector<NodeRef>* next);
  bool parse_cells(const uint8_t* page, uint16_t count, uint16_t cell_start,
                   std::vector<Cell>* cells, std::string* why) const;
  static bool check_cell_overlap(std::vector<Cell> cells, std::string* why);
  static bool check_key_order(const NodeRef& ref, const std::vector<Cell>& cells, bool internal,
                              std::string* why);
  void add_children(const NodeRef& ref, const std::vector<Cell>& cells, std::vector<NodeRef>* next);
  void mark_damaged(uint64_t page, const KeyRange& range, std::string why);

  // salvage.cc: items of the damaged ranges, from other copies of tree pages.
  bool salvage();
  bool in_damaged_range(const Key& key) const;
  void drop_impossible_keys(std::vector<Candidate>& candidates);
  bool read_candidate(const uint8_t* page, uint64_t page_no, Candidate* out) const;
  bool scan_data_region(std::vector<Candidate>* out);
  bool scan_journal(std::vector<Candidate>* out);
  void take_candidates(std::vector<Candidate>& candidates);
  void note_salvaged_extent(const Item& item);
  void report_damage();
  std::string describe_range(const KeyRange& range);
  void report_shared();
  bool is_shared_extent(const Key& key) const;
  template <class Fn>
  void for_each_leaf_item(Fn&& fn);

  // items.cc: leaf items; extents.cc: extents and data pages.
  bool engine_accepts(const Key& key, const std::string& value, std::string* why) const;
  void check_item(const Cell& cell);
  void drop_item(const Key& key, Fix fix, uint64_t ino, const char* fmt, ...)
      __attribute__((format(printf, 5, 6)));
  InodeInfo& owner_of(const Key& key);
  void check_inode_item(const Cell& cell);
  void check_inode_fields(const Key& key, InodeRecord& r);
  void check_dirent_item(const Cell& cell);
  // xattrs.cc: xattr items and the pages of large values.
  void check_xattr_item(const Cell& cell);
  bool check_xattr_pages(const Key& key, const std::string& shown, const uint8_t* record,
                         uint16_t record_len);
  void verify_xattr_page(const DataCheck& check, const uint8_t* data);
  void check_xattr_value_crc(const Key& key, const std::string& shown, const uint8_t* record,
                             uint32_t value_crc);
  void decide_xattr_crc(const std::string& value);
  void check_extent_item(const Cell& cell);
  bool check_extent_place(const Key& key, const ExtentValue& ev, InodeInfo& owner);
  void check_extent_pages(const Key& key, ExtentValue& ev, const uint8_t* crcs, InodeInfo& owner);
  void check_orphan_item(const Cell& cell);
  bool check_duplicate_name(const Key& key, std::string_view name);
  void queue_data_check(const DataCheck& check);
  bool flush_data_checks();
  void verify_data_page(const DataCheck& check, const uint8_t* data);

  // inodes.cc: link counts, directories, reachability.
  void check_inodes();
  void note_entry(uint32_t index);
  std::vector<uint64_t> sorted_inodes() const;
  void check_root();
  void check_symlinks();
  void drop_inode(uint64_t ino, InodeInfo& info);
  void recreate_missing();
  void recreate(uint64_t ino, InodeInfo& info);
  void resolve_dirent(uint32_t index);
  void second_directory_entry(uint32_t index);
  void fix_entry_type(uint32_t index, const InodeInfo& target);
  void remove_entry(uint32_t index, Fix fix, const char* why);
  void check_unlinked();
  void check_reachability();
  Reach resolve_reach(uint64_t dir);
  void check_inode(uint64_t ino, InodeInfo& info);
  void check_directory(uint64_t ino, InodeInfo& info);
  void check_nondirectory(uint64_t ino, InodeInfo& info);
  void change(uint64_t ino, InodeInfo& info, Fix fix, const char* field, uint64_t from,
              uint64_t to);
  void emit_records();

  // connect.cc: /lost+found.
  static std::string dirent_value(const DirentRef& d);
  void reconnect(uint64_t ino, const char* why);
  void connect_lost_found();
  uint64_t lost_found();
  uint64_t plan_next_inode() const;
  // The generation of an inode the repair makes: the repair counts as one
  // more mount, as the format asks of any program that makes inodes outside
  // a mount (docs/format.md, Generations), so the superblock's mount_count
  // goes up with it.
  uint32_t new_generation();
  uint32_t entry_named(uint64_t dir, const std::string& name);
  void index_entries(uint64_t dir);
  void add_entry(uint64_t dir, const std::string& name, uint64_t target, uint8_t type);

  // paths.cc: names for messages.
  std::string path_of(uint64_t ino) const;
  std::string subject_of(uint64_t ino, const std::string& entry) const;

  // space.cc: bitmap against references, superblock counters.
  void check_space();
  void report_page_list(const std::vector<uint64_t>& pages, uint64_t total, const char* what);
  void check_counters();

  Device& device_;
  const std::string name_;
  const CheckOptions options_;
  Report& report_;
  bool fatal_ = false;
  bool superblock_lost_ = false;
  bool xattr_crc_decided_ = false;  // decide_xattr_crc looked at the first xattr
  RepairPlan plan_;

  Superblock sb_{};
  uint32_t page_size_ = 0;
  uint64_t bits_per_bitmap_page_ = 0;
  PageSet disk_bitmap_;           // as read from the device
  std::vector<bool> bitmap_bad_;  // per bitmap page: unreadable, its bits unknown
  uint64_t free_tail_bits_ = 0;   // clear bits in bitmap pages wholly past page_count
  PageSet referenced_;            // pages found in use

  std::unordered_map<uint64_t, InodeInfo> inodes_;
  std::vector<DirentRef> dirents_;
  std::vector<DamagedNode> damaged_nodes_;
  std::set<uint64_t> damaged_pages_;  // pages of damaged nodes: salvage may read them
  uint64_t inode_records_ = 0;
  uint64_t tree_nodes_ = 0;
  uint64_t item_count_ = 0;
  uint64_t max_ino_ = 0;
  uint64_t inode_bound_ = 0;            // the largest next_inode of the valid superblock copies
  uint64_t salvage_refused_ = 0;        // salvaged items the engine's checks refuse
  std::vector<uint64_t> to_reconnect_;  // inodes to link into /lost+found
  // Kept entries by cookie, of the directories the repair adds entries to.
  std::unordered_map<uint64_t, std::map<uint64_t, uint32_t>> entry_index_;
  std::vector<SharedExtent> shared_extents_;

  // Extents of one inode arrive in file-page order: the end of the last one seen.
  uint64_t extent_ino_ = 0;
  uint64_t extent_end_ = 0;
  // Names sharing one (ino, kind, hash) arrive together: the run seen so far.
  Key dup_key_{};
  std::vector<std::string> dup_names_;

  std::vector<DataCheck> data_checks_;
  // kBatchPages pages each, allocated once the page size is known.
  std::unique_ptr<AlignedBuffer> node_buf_;  // tree nodes, bitmap pages
  std::unique_ptr<AlignedBuffer> data_buf_;  // data pages (filled while nodes are in node_buf_)
  uint64_t data_pages_verified_ = 0;
};

}  // namespace pagefs::fsck
