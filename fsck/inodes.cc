// Pass 4: inodes and directories, once every item has been seen.
//
// Directory entries are matched with their targets; then each inode's link
// count, size, parent and block count are compared with what points at it, and
// every directory is followed up its parent chain to the root.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

constexpr uint64_t kRoot = 1;
constexpr uint64_t kSymlinkMax = 4095;  // PATH_MAX minus the terminator

uint8_t dtype_of(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    default:
      return DT_UNKNOWN;
  }
}

}  // namespace

void Checker::check_inodes() {
  auto root = inodes_.find(kRoot);
  if (root == inodes_.end() || !root->second.has_record) {
    report_.error("the root directory (inode 1) is missing");
  } else if (!S_ISDIR(root->second.mode)) {
    report_.error("the root inode 1 is not a directory (mode 0%o)", root->second.mode);
  }
  resolve_dirents();
  std::vector<uint64_t> inos;
  inos.reserve(inodes_.size());
  for (const auto& [ino, info] : inodes_) inos.push_back(ino);
  std::sort(inos.begin(), inos.end());  // errors in a stable order
  for (uint64_t ino : inos) check_inode(ino, inodes_[ino]);
  check_reachability();
}

// Counts the entries pointing at each inode and checks each entry's type.
void Checker::resolve_dirents() {
  for (const DirentRef& d : dirents_) {
    auto it = inodes_.find(d.target);
    if (it == inodes_.end() || !it->second.has_record) {
      report_.error("entry '%s' in directory %llu points to missing inode %llu", d.name.c_str(),
                    ull(d.dir), ull(d.target));
      continue;
    }
    InodeInfo& target = it->second;
    if (d.type != dtype_of(target.mode)) {
      report_.error("entry '%s' in directory %llu has type %u, but inode %llu has mode 0%o",
                    d.name.c_str(), ull(d.dir), d.type, ull(d.target), target.mode);
    }
    if (d.target == kRoot) {
      report_.error("entry '%s' in directory %llu points to the root directory", d.name.c_str(),
                    ull(d.dir));
    }
    target.links++;
    target.entry_dir = d.dir;
    auto dir = inodes_.find(d.dir);
    if (S_ISDIR(target.mode) && dir != inodes_.end()) dir->second.subdirs++;
  }
  dirents_.clear();
  dirents_.shrink_to_fit();
}

void Checker::check_inode(uint64_t ino, const InodeInfo& info) {
  if (!info.has_record) {
    if (info.has_orphan)
      report_.error("orphan item names inode %llu, which does not exist", ull(ino));
    return;  // entries pointing at it were reported by resolve_dirents
  }
  if (info.has_orphan && info.nlink != 0) {
    report_.error("inode %llu is on the orphan list but has %u links", ull(ino), info.nlink);
  }
  if (info.blocks != info.extent_pages) {
    report_.error("inode %llu has blocks %llu but its extents hold %llu pages", ull(ino),
                  ull(info.blocks), ull(info.extent_pages));
  }
  if (S_ISDIR(info.mode)) {
    check_directory(ino, info);
  } else {
    check_nondirectory(ino, info);
  }
}

void Checker::check_directory(uint64_t ino, const InodeInfo& info) {
  if (info.size != info.entries) {
    report_.error("directory %llu has size %llu but %llu entries", ull(ino), ull(info.size),
                  ull(info.entries));
  }
  if (info.has_orphan && info.links == 0 && info.nlink == 0) return;  // removed, still open
  if (info.nlink != 2 + info.subdirs) {
    report_.error("directory %llu has nlink %u, expected %llu", ull(ino), info.nlink,
                  ull(2 + info.subdirs));
  }
  if (ino == kRoot) {
    if (info.parent != kRoot) report_.error("the root directory has parent %llu", ull(info.parent));
    return;
  }
  if (info.links == 0) {
    report_.error("directory %llu is not in any directory (disconnected)", ull(ino));
  } else if (info.links > 1) {
    report_.error("directory %llu has %llu entries pointing to it", ull(ino), ull(info.links));
  } else if (info.parent != info.entry_dir) {
    report_.error("directory %llu has parent %llu but its entry is in directory %llu", ull(ino),
                  ull(info.parent), ull(info.entry_dir));
  }
}

void Checker::check_nondirectory(uint64_t ino, const InodeInfo& info) {
  if (info.parent != 0) {
    report_.error("inode %llu is not a directory but has parent %llu", ull(ino), ull(info.parent));
  }
  if (info.links == 0 && info.nlink == 0) {
    if (!info.has_orphan) {
      report_.error("inode %llu has no links and is not on the orphan list", ull(ino));
    }
  } else if (info.links == 0) {
    report_.error("inode %llu has nlink %u but no directory entries (disconnected)", ull(ino),
                  info.nlink);
  } else if (info.nlink != info.links) {
    report_.error("inode %llu has nlink %u but %llu directory entries", ull(ino), info.nlink,
                  ull(info.links));
  }
  if (!S_ISLNK(info.mode)) return;
  if (info.size == 0 || info.size > kSymlinkMax) {
    report_.error("symlink %llu has an impossible size %llu", ull(ino), ull(info.size));
  } else if (info.extent_pages != (info.size + page_size_ - 1) / page_size_) {
    report_.error("symlink %llu of %llu bytes has %llu data pages", ull(ino), ull(info.size),
                  ull(info.extent_pages));
  }
}

// Every directory must lead up to the root through the entries pointing at it.
// Directories with no entry were reported already; here only cycles are new.
void Checker::check_reachability() {
  for (auto& [ino, info] : inodes_) {
    if (!info.has_record || !S_ISDIR(info.mode) || info.reach != kUnknown) continue;
    resolve_reach(ino);
  }
}

// Follows entry_dir links from dir until a directory of known reachability,
// the root, or a dead end; then labels the whole path. Bounded by the number of
// directories, since each is marked kVisiting once.
Checker::Reach Checker::resolve_reach(uint64_t dir) {
  std::vector<InodeInfo*> path;
  Reach result = kUnreachable;
  for (uint64_t cur = dir;;) {
    auto it = inodes_.find(cur);
    if (it == inodes_.end() || !it->second.has_record || !S_ISDIR(it->second.mode)) break;
    InodeInfo& info = it->second;
    if (cur == kRoot) {
      result = kReachable;
      break;
    }
    if (info.reach == kVisiting) {
      report_.error("directory %llu is in a cycle, not reachable from the root", ull(cur));
      break;
    }
    if (info.reach != kUnknown) {
      result = Reach(info.reach);
      break;
    }
    if (info.links == 0) break;  // disconnected, reported by check_directory
    info.reach = kVisiting;
    path.push_back(&info);
    cur = info.entry_dir;
  }
  for (InodeInfo* info : path) info->reach = result;
  return result;
}

}  // namespace pagefs::fsck
