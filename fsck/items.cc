// Pass 3, the items: every leaf cell, checked as the walk meets it, and the data
// pages its extents point at.
//
// Items arrive in key order (ino, kind, off), and kInode is the lowest kind, so
// an inode's record has always been seen before its xattrs, entries and extents.
// Only the targets of directory entries and orphan items can lie ahead; they are
// left to pass 4.
#include <linux/limits.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

bool valid_file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      return true;
    default:
      return false;
  }
}

bool valid_entry_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace

std::string printable(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += char(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void Checker::check_item(const Cell& cell) {
  item_count_++;
  switch (KeyKind(cell.key.kind)) {
    case KeyKind::kInode:
      return check_inode_item(cell);
    case KeyKind::kXattr:
      return check_xattr_item(cell);
    case KeyKind::kDirent:
      return check_dirent_item(cell);
    case KeyKind::kExtent:
      return check_extent_item(cell);
    case KeyKind::kOrphan:
      return check_orphan_item(cell);
  }
  report_.error("item %s has an unknown kind %u", to_string(cell.key).c_str(), cell.key.kind);
}

// The inode an item belongs to, or null (reported) if it has no inode record.
Checker::InodeInfo* Checker::owner_of(const Key& key, const char* what) {
  auto it = inodes_.find(key.ino);
  if (it == inodes_.end() || !it->second.has_record) {
    report_.error("%s item %s belongs to inode %llu, which has no inode record", what,
                  to_string(key).c_str(), ull(key.ino));
    return nullptr;
  }
  return &it->second;
}

void Checker::check_inode_item(const Cell& cell) {
  const Key& key = cell.key;
  if (key.off != 0 || cell.value_len != sizeof(InodeRecord)) {
    report_.error("inode item %s is malformed (%u value bytes)", to_string(key).c_str(),
                  cell.value_len);
    return;
  }
  if (key.ino == 0 || key.ino >= sb_.next_inode) {
    report_.error("inode %llu is out of range (next_inode is %llu)", ull(key.ino),
                  ull(sb_.next_inode));
  }
  InodeRecord r;
  memcpy(&r, cell.value, sizeof(r));
  if (!valid_file_type(r.mode)) {
    report_.error("inode %llu has an invalid file type (mode 0%o)", ull(key.ino), r.mode);
  }
  check_inode_identity(key.ino, r);
  // The limits the engine holds every inode to (engine/items.cc).
  if (r.size > kMaxFileBytes) {
    report_.error("inode %llu has an impossible size %llu", ull(key.ino), ull(r.size));
  }
  if (S_ISLNK(r.mode) && r.size >= PATH_MAX) {
    report_.error("symlink %llu is longer than a path (%llu bytes)", ull(key.ino), ull(r.size));
  }
  if (r.nlink > kLinkMax) {
    report_.error("inode %llu has an impossible link count %u", ull(key.ino), r.nlink);
  }
  InodeInfo& info = inodes_[key.ino];
  info.has_record = true;
  info.mode = r.mode;
  info.nlink = r.nlink;
  info.size = r.size;
  info.parent = r.parent;
  info.blocks = r.blocks;
  inode_records_++;
}

// Attribute flags the format defines, and a generation no later mount than
// the superblock's last could have given (format.h, inode_generation).
void Checker::check_inode_identity(uint64_t ino, const InodeRecord& r) {
  if (r.flags & ~kKnownInodeFlags) {
    report_.error("inode %llu has unknown attribute flags 0x%x", ull(ino),
                  r.flags & ~kKnownInodeFlags);
  }
  if (ino == 1 && r.generation != 0) {
    report_.error("the root directory has generation %u (it must be 0)", r.generation);
  } else if (sb_.mount_count <= UINT32_MAX && r.generation > sb_.mount_count) {
    report_.error("inode %llu has generation %u, after the superblock's mount_count %llu", ull(ino),
                  r.generation, ull(sb_.mount_count));
  }
}

void Checker::check_dirent_item(const Cell& cell) {
  const Key& key = cell.key;
  InodeInfo* dir = owner_of(key, "directory entry");
  if (dir != nullptr && !S_ISDIR(dir->mode)) {
    report_.error("inode %llu is not a directory but has directory entries", ull(key.ino));
    dir = nullptr;
  }
  DirentValue dv;
  if (cell.value_len < sizeof(dv)) {
    report_.error("directory entry %s is malformed", to_string(key).c_str());
    return;
  }
  memcpy(&dv, cell.value, sizeof(dv));
  if (cell.value_len != sizeof(dv) + dv.name_len) {
    report_.error("directory entry %s is malformed", to_string(key).c_str());
    return;
  }
  const std::string_view name(reinterpret_cast<const char*>(cell.value) + sizeof(dv), dv.name_len);
  if (!valid_entry_name(name)) {
    report_.error("directory %llu has an entry with an invalid name '%s'", ull(key.ino),
                  printable(name).c_str());
  }
  if (key.off >> kCookieCollisionBits != name_hash(name.data(), name.size())) {
    report_.error("entry '%s' in directory %llu has the wrong hash in its key %s",
                  printable(name).c_str(), ull(key.ino), to_string(key).c_str());
  }
  check_duplicate_name(key, name, "entry");
  if (dir != nullptr) dir->entries++;
  dirents_.push_back(DirentRef{key.ino, dv.ino, dv.type, std::string(name)});
}

// Equal names have equal hashes, and items with one (ino, kind, hash) are
// adjacent in key order, so only the current run of names needs remembering.
void Checker::check_duplicate_name(const Key& key, std::string_view name, const char* what) {
  const Key group{key.ino, key.kind, key.off >> kCookieCollisionBits};
  if (group != dup_key_) {
    dup_key_ = group;
    dup_names_.clear();
  }
  if (std::find(dup_names_.begin(), dup_names_.end(), name) != dup_names_.end()) {
    report_.error("%s '%s' appears twice in inode %llu", what, printable(name).c_str(),
                  ull(key.ino));
    return;
  }
  dup_names_.emplace_back(name);
}

void Checker::check_orphan_item(const Cell& cell) {
  const Key& key = cell.key;
  if (key.ino != 0 || cell.value_len != 0 || key.off == 0) {
    report_.error("orphan item %s is malformed", to_string(key).c_str());
    return;
  }
  inodes_[key.off].has_orphan = true;
}

}  // namespace pagefs::fsck
