// FileSystem::Impl: the engine's filesystem state, shared by the files that
// implement its operations (filesystem.cc, dir_ops.cc, file_ops.cc,
// xattr_ops.cc). Not part of the public API.
//
// Locking: mu_ is the filesystem lock. Operations that only read take it
// shared; every operation that changes a page takes it exclusively. Lock order:
// mu_, then the buffer pool's internal mutex.
#pragma once

#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "engine/btree.h"
#include "engine/buffer_pool.h"
#include "engine/filesystem.h"
#include "engine/format.h"
#include "engine/space_map.h"

namespace pagefs {

// An extent record in memory: `pages` file pages from `file_page` on, stored
// at device pages phys..phys+pages-1.
struct Extent {
  uint64_t file_page = 0;
  uint64_t phys = 0;
  uint32_t pages = 0;
  uint32_t unwritten = 0;  // bit i: page i allocated but reads as zeros
  uint32_t crc[kMaxExtentPages] = {};

  uint64_t end() const { return file_page + pages; }
  bool is_unwritten(uint32_t i) const { return (unwritten >> i) & 1; }
  std::string encode() const;
  static bool decode(uint64_t file_page, std::span<const std::byte> v, Extent* out);
};

timespec now_timespec();

class FileSystem::Impl {
 public:
  Impl(std::unique_ptr<Device> device, const MountOptions& options);
  ~Impl();

  Status open(std::string* message);
  Status sync_locked();  // mu_ held exclusively
  void start_committer();
  void stop_committer();

  // ---- inodes (filesystem.cc) ----
  Result<InodeRecord> get_inode(InodeNo ino);
  Status put_inode(InodeNo ino, const InodeRecord& rec);
  Result<InodeNo> new_inode(uint32_t mode, uint64_t rdev, const Caller& caller,
                            const InodeRecord& parent, InodeRecord* out);
  Status free_inode(InodeNo ino, const InodeRecord& rec);
  Status add_orphan(InodeNo ino);
  Status remove_orphan(InodeNo ino);
  Status purge_orphans();
  static Attr to_attr(InodeNo ino, const InodeRecord& rec);
  static void touch(InodeRecord& rec, bool mtime, bool ctime);
  Status check_writable() const;

  // ---- directories (dir_ops.cc) ----
  struct FoundEntry {
    uint64_t cookie = 0;
    uint64_t ino = 0;
    uint8_t type = 0;
  };
  Result<bool> dir_find(InodeNo dir, std::string_view name, FoundEntry* out);
  Result<uint64_t> dir_add(InodeNo dir, std::string_view name, uint64_t ino, uint8_t type);
  Status dir_remove(InodeNo dir, uint64_t cookie);
  Result<InodeRecord> get_dir(InodeNo dir);
  Result<Attr> create_node(InodeNo parent, std::string_view name, uint32_t mode, uint64_t rdev,
                           const Caller& caller, std::string_view symlink_target);
  Status drop_link(InodeNo ino, InodeRecord& rec);
  static bool sticky_denies(const InodeRecord& dir, const InodeRecord& target,
                            const Caller& caller);
  Result<bool> is_ancestor(InodeNo ancestor, InodeNo dir);

  // ---- file data (file_ops.cc) ----
  Status find_extent(InodeNo ino, uint64_t file_page, Extent* out, bool* found);
  Status put_extent(InodeNo ino, const Extent& e);
  Status erase_extent(InodeNo ino, uint64_t file_page);
  Status collect_extents(InodeNo ino, uint64_t first_page, uint64_t last_page,
                         std::vector<Extent>* out);
  Result<size_t> write_locked(InodeNo ino, InodeRecord& rec, uint64_t off, const char* buf,
                              size_t len);
  Result<size_t> read_locked(InodeNo ino, const InodeRecord& rec, uint64_t off, size_t len,
                             char* buf);
  Status write_page(InodeNo ino, InodeRecord& rec, uint64_t file_page, uint32_t in_page,
                    const char* buf, uint32_t len, Extent& cur, bool& cur_valid,
                    bool& cur_dirty);
  Status remove_pages(InodeNo ino, InodeRecord& rec, uint64_t first_page, uint64_t end_page);
  Status zero_bytes(InodeNo ino, uint64_t off, uint32_t len);
  Status truncate_locked(InodeNo ino, InodeRecord& rec, uint64_t size);
  Status allocate_unwritten(InodeNo ino, InodeRecord& rec, uint64_t first_page,
                            uint64_t end_page);

  // ---- state ----
  std::unique_ptr<Device> device_;
  MountOptions options_;
  uint32_t page_size_ = 0;
  std::unique_ptr<BufferPool> pool_;
  std::unique_ptr<SpaceMap> space_;
  std::unique_ptr<Btree> tree_;
  TreeRoot root_;
  Superblock* sb_ = nullptr;  // in-memory copy, guarded by mu_
  std::string sb_storage_;
  bool read_only_ = false;
  bool dirty_ = false;  // anything changed since the last sync; guarded by mu_

  mutable std::shared_mutex mu_;

  std::mutex committer_mu_;
  std::condition_variable committer_cv_;
  bool committer_stop_ = false;
  std::thread committer_;
};

}  // namespace pagefs
