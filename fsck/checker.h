// Checker: the consistency check of fsck.pagefs.
//
// An independent reader of the on-disk format (engine/format.h): it parses the
// bytes itself and shares no code with the engine's trees or buffer manager, so
// that it can serve as an oracle for the engine. It only reads the device.
//
// Passes, in order:
//   1. superblock  pick the valid copy with the highest generation, check geometry
//   2. bitmap      load and verify the free-space bitmap pages
//   3. tree        walk the B+tree level by level (one batched read per 256 nodes),
//                  verify every node, and check every leaf item as it is met; items
//                  arrive in key order, so an inode's record precedes its other items.
//                  Data pages are read in batches and verified against extent CRCs.
//   4. inodes      link counts, directory sizes and parents, reachability from root
//   5. space       referenced pages == pages marked in use; superblock counters
//
// A pass that finds the structure too damaged to go on stops the check (exit 4);
// an operational failure (I/O error, not pagefs, unsupported version) is fatal
// (exit 8). Every inconsistency goes to the Report.
//
// Memory: one bit per device page twice (bitmap and referenced set), one
// InodeInfo per inode, one DirentRef per directory entry, one tree level of
// NodeRefs, and fixed batch buffers.
// Thread-safety: none; one Checker runs on one thread.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "fsck/aligned_buffer.h"
#include "fsck/page_set.h"
#include "fsck/report.h"

namespace pagefs::fsck {

enum ExitCode : int {
  kExitClean = 0,
  kExitUncorrected = 4,
  kExitOperational = 8,
  kExitUsage = 16,
};

struct CheckOptions {
  bool verbose = false;
};

// A tree key; the defaulted comparison is the on-disk order (ino, kind, off).
struct Key {
  uint64_t ino = 0;
  uint8_t kind = 0;
  uint64_t off = 0;
  auto operator<=>(const Key&) const = default;
};

// "(ino, kind, off)" for messages.
std::string to_string(const Key& key);
// A name with unprintable bytes escaped, for messages.
std::string printable(std::string_view name);

class Checker {
 public:
  Checker(Device& device, std::string device_name, CheckOptions options, Report& report);
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Runs every pass and prints the summary line. Returns the exit code.
  int run();

 private:
  // What fsck learns about one inode, from its record and from the items that
  // refer to it.
  struct InodeInfo {
    bool has_record = false;  // its kInode item was found
    bool has_orphan = false;  // a kOrphan item names it
    uint32_t mode = 0;
    uint32_t nlink = 0;
    uint64_t size = 0;
    uint64_t parent = 0;
    uint64_t blocks = 0;
    uint64_t extent_pages = 0;  // pages in its extents
    uint64_t entries = 0;       // directory entries inside it
    uint64_t subdirs = 0;       // of which point at directories
    uint64_t links = 0;         // directory entries pointing at it
    uint64_t entry_dir = 0;     // the directory holding (one of) those entries
    uint8_t reach = 0;          // directories: a Reach value, for check_reachability
  };
  enum Reach : uint8_t { kUnknown, kVisiting, kReachable, kUnreachable };
  // A directory entry whose target is checked once every inode is known.
  struct DirentRef {
    uint64_t dir;
    uint64_t target;
    uint8_t type;
    std::string name;
  };
  // A tree node still to be read, with the key range its parent allows it.
  struct NodeRef {
    uint64_t page;
    uint16_t level;
    bool has_lo, has_hi;
    Key lo, hi;  // lo <= key < hi
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
    uint64_t file_page;
    uint32_t symlink_bytes;  // symlinks: bytes of target in this page, else 0
    // Pages of an xattr value: `file_page` is the page's index in the value,
    // and the bytes from `zero_from` to the end of the page must be zero.
    bool xattr = false;
    uint32_t zero_from = 0;
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
  bool check_meta_header(const uint8_t* page, uint64_t page_no, PageType type, const char* what);
  bool load_bitmap();
  // Marks a page referenced; false if it already was (the caller reports it).
  bool claim(uint64_t page);
  int finish();

  // tree_walk.cc: nodes.
  bool walk_tree();
  void check_node(const NodeRef& ref, const uint8_t* page, std::vector<NodeRef>* next);
  bool parse_cells(uint64_t page_no, const uint8_t* page, uint16_t count, uint16_t cell_start,
                   std::vector<Cell>* cells);
  bool check_cell_overlap(uint64_t page_no, std::vector<Cell> cells);
  void check_key_order(const NodeRef& ref, const std::vector<Cell>& cells, bool internal);
  void add_children(const NodeRef& ref, const std::vector<Cell>& cells, std::vector<NodeRef>* next);

  // items.cc: leaf items; extents.cc: extents and data pages.
  void check_item(const Cell& cell);
  InodeInfo* owner_of(const Key& key, const char* what);
  void check_inode_item(const Cell& cell);
  void check_inode_identity(uint64_t ino, const InodeRecord& r);
  void check_dirent_item(const Cell& cell);
  // xattrs.cc: xattr items and the pages of large values.
  void check_xattr_item(const Cell& cell);
  void check_xattr_pages(const Key& key, std::string_view name, const uint8_t* record,
                         uint16_t record_len);
  void check_extent_item(const Cell& cell);
  void check_extent_pages(const Key& key, const ExtentValue& ev, const uint8_t* crcs,
                          InodeInfo* owner);
  void check_orphan_item(const Cell& cell);
  void check_duplicate_name(const Key& key, std::string_view name, const char* what);
  void queue_data_check(const DataCheck& check);
  bool flush_data_checks();
  void verify_data_page(const DataCheck& check, const uint8_t* data);

  // inodes.cc: link counts, directories, reachability.
  void check_inodes();
  void resolve_dirents();
  void check_inode(uint64_t ino, const InodeInfo& info);
  void check_directory(uint64_t ino, const InodeInfo& info);
  void check_nondirectory(uint64_t ino, const InodeInfo& info);
  void check_reachability();
  Reach resolve_reach(uint64_t dir);

  // space.cc: bitmap against references, superblock counters.
  void check_space();
  void report_page_list(const std::vector<uint64_t>& pages, uint64_t total, const char* what);
  void check_counters();

  Device& device_;
  const std::string name_;
  const CheckOptions options_;
  Report& report_;
  bool fatal_ = false;

  Superblock sb_{};
  uint32_t page_size_ = 0;
  uint64_t bits_per_bitmap_page_ = 0;
  PageSet disk_bitmap_;           // as read from the device
  std::vector<bool> bitmap_bad_;  // per bitmap page: unreadable, its bits unknown
  uint64_t free_tail_bits_ = 0;   // clear bits in bitmap pages wholly past page_count
  PageSet referenced_;            // pages found in use

  std::unordered_map<uint64_t, InodeInfo> inodes_;
  std::vector<DirentRef> dirents_;
  uint64_t inode_records_ = 0;
  uint64_t tree_nodes_ = 0;
  uint64_t item_count_ = 0;

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
