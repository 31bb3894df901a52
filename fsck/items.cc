// Pass 3, the items: every leaf cell, checked as the walk meets it.
//
// Items arrive in key order (ino, kind, off), and kInode is the lowest kind, so
// an inode's record has always been seen before its xattrs, entries and extents.
// Only the targets of directory entries and orphan items can lie ahead; they are
// left to pass 4.
//
// Whatever fsck's own checks let through is held to the engine's rules too
// (engine/items.h): an item a mount would refuse is never called clean. An
// item that cannot be used is removed; one whose fault is a field with a
// known right value is rewritten.
#include "engine/items.h"

#include <linux/limits.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdarg>
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

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

// The name with unprintable bytes escaped, for messages.
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

bool Checker::engine_accepts(const Key& key, const std::string& value, std::string* why) const {
  const ItemLimits limits{sb_.data_start, sb_.page_count, page_size_,
                          (sb_.features_incompat & kIncompatXattrCrc) != 0};
  const char* reason = nullptr;
  if (pagefs::check_item(key, bytes_of(value), limits, &reason)) return true;
  *why = reason;
  return false;
}

void Checker::check_item(const Cell& cell) {
  item_count_++;
  const Key& key = cell.key;
  if (key.ino == 0 && key.kind != uint8_t(KeyKind::kOrphan)) {
    return drop_item(key, Fix::kRepair, 0, "item %s belongs to inode 0", to_string(key).c_str());
  }
  // No inode number reaches kMaxInodeNumber (next_inode stays at or below
  // it): an item past it could only be kept by a superblock no mount accepts.
  if (key.ino >= kMaxInodeNumber) {
    return drop_item(key, Fix::kRepair, 0, "item %s belongs to an inode past the largest number",
                     to_string(key).c_str());
  }
  switch (KeyKind(key.kind)) {
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
  drop_item(key, Fix::kRepair, key.ino, "item %s has an unknown kind %u", to_string(key).c_str(),
            key.kind);
}

// Removes one item the repair cannot keep.
void Checker::drop_item(const Key& key, Fix fix, uint64_t ino, const char* fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (ino != 0) {
    report_.inode(fix, ino, "remove it", "%s", what);
  } else {
    report_.at(fix, "", "remove it", "%s", what);
  }
  plan_.edits[key] = std::nullopt;
}

// The inode an item belongs to. Pass 4 deals with inodes that turn out to
// have items but no record.
Checker::InodeInfo& Checker::owner_of(const Key& key) {
  return inodes_[key.ino];
}

void Checker::check_inode_item(const Cell& cell) {
  const Key& key = cell.key;
  if (key.off != 0 || cell.value_len != sizeof(InodeRecord)) {
    return drop_item(key, Fix::kRepair, key.ino, "inode record is malformed (%u bytes)",
                     cell.value_len);
  }
  InodeRecord r;
  memcpy(&r, cell.value, sizeof(r));
  if (!valid_file_type(r.mode)) {
    return drop_item(key, Fix::kRepair, key.ino, "inode record has an unknown file type (mode 0%o)",
                     r.mode);
  }
  InodeInfo& info = inodes_[key.ino];
  info.has_record = true;
  info.rec = r;
  inode_records_++;
  max_ino_ = std::max(max_ino_, key.ino);
  check_inode_fields(key, info.rec);
}

// Fields with a known right value are fixed in place; link counts and sizes
// are recounted in pass 4. The limits the engine holds every record to
// (engine/items.cc) are each met here or there: a size past kMaxFileBytes is
// set from the entries or extents (check_directory, check_nondirectory), a
// symlink longer than a path cannot be read back and goes (check_symlinks),
// and a link count past kLinkMax is counted anew. emit_records() makes sure
// no record a mount would refuse is left.
void Checker::check_inode_fields(const Key& key, InodeRecord& r) {
  InodeInfo& info = inodes_[key.ino];
  // Attribute flags the format defines, and a generation no later mount than
  // the superblock's last could have given (format.h, inode_generation).
  if (r.flags & ~kKnownInodeFlags) {
    report_.inode(Fix::kRepair, key.ino, "clear them",
                  "inode record has unknown attribute flags 0x%x", r.flags & ~kKnownInodeFlags);
    r.flags &= kKnownInodeFlags;
    info.changed = true;
  }
  if (key.ino == 1 && r.generation != 0) {
    report_.inode(Fix::kPreen, key.ino, "set it to 0", "the root directory has generation %u",
                  r.generation);
    r.generation = 0;
    info.changed = true;
  } else if (sb_.mount_count <= UINT32_MAX && r.generation > sb_.mount_count) {
    // A later mount may give the next new inode this generation; the handles of
    // this one would then reach it, and the other way round. The mount count
    // is the newest generation that is certainly not a future one.
    report_.inode(Fix::kRepair, key.ino, "set it to the mount count",
                  "inode record has generation %u, after the superblock's mount_count %llu",
                  r.generation, ull(sb_.mount_count));
    r.generation = uint32_t(sb_.mount_count);
    info.changed = true;
  }
  static_assert(kSymlinkMax < PATH_MAX);  // the engine's limit: size < PATH_MAX
  if (S_ISLNK(r.mode) && (r.size == 0 || r.size > kSymlinkMax)) info.broken_link = true;
}

void Checker::check_dirent_item(const Cell& cell) {
  const Key& key = cell.key;
  InodeInfo& dir = owner_of(key);
  DirentValue dv;
  if (cell.value_len < sizeof(dv)) {
    return drop_item(key, Fix::kRepair, key.ino, "directory entry %s is malformed",
                     to_string(key).c_str());
  }
  memcpy(&dv, cell.value, sizeof(dv));
  if (cell.value_len != sizeof(dv) + dv.name_len || dv.name_len == 0) {
    return drop_item(key, Fix::kRepair, key.ino, "directory entry %s is malformed",
                     to_string(key).c_str());
  }
  const std::string_view name(reinterpret_cast<const char*>(cell.value) + sizeof(dv), dv.name_len);
  const char* wrong = nullptr;
  if (!valid_entry_name(name)) {
    wrong = "is not a valid name";
  } else if (key.off >> kCookieCollisionBits != name_hash(name.data(), name.size())) {
    wrong = "has the wrong hash in its key";
  } else if (dv.ino == 0) {
    wrong = "points to inode 0";
  } else if (dv.ino >= kMaxInodeNumber) {
    wrong = "points past the largest inode number";
  } else if (!check_duplicate_name(key, name)) {
    wrong = "appears twice";
  } else if (dir.has_record && !S_ISDIR(dir.rec.mode)) {
    wrong = "is an entry of an inode that is not a directory";
  }
  if (wrong != nullptr) {
    return drop_item(key, Fix::kRepair, key.ino, "entry '%s' %s", printable(name).c_str(), wrong);
  }
  dir.entries++;
  dirents_.push_back(DirentRef{key.ino, dv.ino, key.off, dv.type, false, std::string(name)});
}

// Equal names have equal hashes, and items with one (ino, kind, hash) are
// adjacent in key order, so only the current run of names needs remembering.
// False if `name` was seen already.
bool Checker::check_duplicate_name(const Key& key, std::string_view name) {
  const Key group{key.ino, key.kind, key.off >> kCookieCollisionBits};
  if (group != dup_key_) {
    dup_key_ = group;
    dup_names_.clear();
  }
  if (std::find(dup_names_.begin(), dup_names_.end(), name) != dup_names_.end()) return false;
  dup_names_.emplace_back(name);
  return true;
}

void Checker::check_orphan_item(const Cell& cell) {
  const Key& key = cell.key;
  if (key.ino != 0 || cell.value_len != 0 || key.off == 0 || key.off >= kMaxInodeNumber) {
    return drop_item(key, Fix::kRepair, 0, "orphan item %s is malformed", to_string(key).c_str());
  }
  inodes_[key.off].has_orphan = true;
}

}  // namespace pagefs::fsck
