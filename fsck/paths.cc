// Paths for messages: an inode is named by the entries that lead to it from
// the root, as pass 4 resolved them ("/docs/a.txt"), so that a person can
// find what a problem is about. An inode no entry leads to is named by its
// number.
#include <sys/stat.h>

#include <algorithm>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

constexpr uint64_t kRoot = 1;
constexpr int kMaxDepth = 4096;  // PATH_MAX / 2: deeper chains are cycles

}  // namespace

// "" when no chain of entries leads from the root to `ino`.
std::string Checker::path_of(uint64_t ino) const {
  if (ino == kRoot) return "/";
  std::vector<const std::string*> names;
  for (uint64_t cur = ino; cur != kRoot;) {
    auto it = inodes_.find(cur);
    if (it == inodes_.end() || it->second.entry == kNoEntry || names.size() >= kMaxDepth) {
      return "";
    }
    const DirentRef& d = dirents_[it->second.entry];
    names.push_back(&d.name);
    cur = d.dir;
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) path += "/" + printable(**it);
  return path;
}

// "/docs/a.txt (inode 12)"; without a path, what the inode is instead:
// "inode 12 (a file of 13 bytes)".
std::string Checker::subject_of(uint64_t ino, const std::string& entry) const {
  const std::string path = path_of(ino);
  if (!entry.empty()) {
    const std::string dir = path.empty() ? "inode " + std::to_string(ino) : path;
    return (dir == "/" ? "" : dir) + "/" + printable(entry);
  }
  if (!path.empty()) return path + " (inode " + std::to_string(ino) + ")";
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || !it->second.has_record || it->second.recreated) {
    return "inode " + std::to_string(ino);
  }
  const InodeRecord& r = it->second.rec;
  char what[96];
  if (S_ISDIR(r.mode)) {
    snprintf(what, sizeof what, "a directory of %llu entries", (unsigned long long)r.size);
  } else {
    snprintf(what, sizeof what, "%s of %llu bytes", S_ISLNK(r.mode) ? "a symlink" : "a file",
             (unsigned long long)r.size);
  }
  return "inode " + std::to_string(ino) + " (" + what + ")";
}

}  // namespace pagefs::fsck
