// Pass 4, reconnection: inodes that no directory names go to /lost+found as
// "#INO", as e2fsck does. /lost+found is created (mode 0700, in the root)
// when it is needed and missing. Every entry the repair adds is also listed
// in dirents_, so that the counts of pass 4 and the paths in messages
// include it.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

constexpr uint64_t kRoot = 1;

}  // namespace

std::string dirent_value(uint64_t target, uint8_t type, const std::string& name) {
  DirentValue dv{target, type, uint8_t(name.size())};
  std::string value(sizeof(dv) + name.size(), '\0');
  memcpy(value.data(), &dv, sizeof(dv));
  memcpy(value.data() + sizeof(dv), name.data(), name.size());
  return value;
}

std::string Checker::dirent_value(const DirentRef& d) {
  return fsck::dirent_value(d.target, d.type, d.name);
}

void Checker::reconnect(uint64_t ino, const char* why) {
  InodeInfo& info = inodes_[ino];
  report_.inode(Fix::kRepair, ino, "reconnect it in /lost+found as #" + std::to_string(ino), "%s",
                why);
  info.reconnect = true;
  to_reconnect_.push_back(ino);
}

void Checker::connect_lost_found() {
  if (to_reconnect_.empty()) return;
  const uint64_t lf = lost_found();
  if (lf == 0) return;  // no inode number left for it: they stay unconnected
  for (uint64_t ino : to_reconnect_) {
    std::string name = "#" + std::to_string(ino);
    for (int n = 1; entry_named(lf, name) != kNoEntry; n++) {
      name = "#" + std::to_string(ino) + "." + std::to_string(n);
    }
    add_entry(lf, name, ino, dtype_of(inodes_[ino].rec.mode));
  }
}

// The directory /lost+found, found in the root or created there; 0 if it
// is missing and cannot be made.
uint64_t Checker::lost_found() {
  std::string name = "lost+found";
  for (int n = 1;; n++) {
    const uint32_t index = entry_named(kRoot, name);
    if (index == kNoEntry) break;
    const InodeInfo& info = inodes_[dirents_[index].target];
    if (info.has_record && !info.dropped && S_ISDIR(info.rec.mode) && !info.reconnect) {
      return dirents_[index].target;
    }
    name = "lost+found." + std::to_string(n);
  }
  // The repair's superblock takes next_inode past it (repair.cc).
  const uint64_t ino = plan_next_inode();
  if (ino >= kMaxInodeNumber) {
    report_.at(Fix::kNone, "/" + name, "", "does not exist, and no inode number is left for it");
    return 0;
  }
  report_.at(Fix::kRepair, "/" + name, "create it", "does not exist");
  InodeInfo& info = inodes_[ino];
  info.has_record = info.recreated = info.changed = true;
  info.rec.mode = S_IFDIR | 0700;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  info.rec.atime_sec = info.rec.mtime_sec = info.rec.ctime_sec = info.rec.crtime_sec = now.tv_sec;
  info.rec.nlink = 2;
  info.rec.parent = kRoot;
  info.rec.generation = new_generation();
  info.reach = kReachable;
  add_entry(kRoot, name, ino, DT_DIR);
  return ino;
}

// The next inode number the repair may hand out: past every number in use
// and the superblock's counter.
uint64_t Checker::plan_next_inode() const {
  return std::max(sb_.next_inode, max_ino_ + 1);
}

uint32_t Checker::new_generation() {
  plan_.bump_mount_count = true;
  return inode_generation(sb_.mount_count + 1);
}

// Index in dirents_ of the kept entry `name` of `dir`, or kNoEntry. Names
// with one hash have adjacent cookies, so only the 256 cookies of the hash
// are looked at.
uint32_t Checker::entry_named(uint64_t dir, const std::string& name) {
  index_entries(dir);
  const uint64_t first = name_hash(name.data(), name.size()) << kCookieCollisionBits;
  const auto& entries = entry_index_[dir];
  for (auto it = entries.lower_bound(first); it != entries.end() && it->first < first + 256; ++it) {
    if (dirents_[it->second].name == name) return it->second;
  }
  return kNoEntry;
}

// Builds the cookie index of one directory's kept entries, once.
void Checker::index_entries(uint64_t dir) {
  if (entry_index_.count(dir) > 0) return;
  auto& entries = entry_index_[dir];
  for (uint32_t i = 0; i < dirents_.size(); i++) {
    if (dirents_[i].dir == dir && !dirents_[i].removed) entries[dirents_[i].cookie] = i;
  }
}

// Adds the entry `name` -> target to `dir` under the first free cookie of
// its hash, and counts it as pass 4 counts the entries it found.
void Checker::add_entry(uint64_t dir, const std::string& name, uint64_t target, uint8_t type) {
  index_entries(dir);
  auto& entries = entry_index_[dir];
  const uint64_t first = name_hash(name.data(), name.size()) << kCookieCollisionBits;
  uint64_t cookie = first;
  while (entries.count(cookie) > 0 && cookie < first + 255) cookie++;
  const uint32_t index = uint32_t(dirents_.size());
  dirents_.push_back(DirentRef{dir, target, cookie, type, false, name});
  entries[cookie] = index;
  plan_.edits[Key::of(dir, KeyKind::kDirent, cookie)] = dirent_value(dirents_.back());
  InodeInfo& d = inodes_[dir];
  InodeInfo& t = inodes_[target];
  d.entries++;
  if (type == DT_DIR) d.subdirs++;
  t.links++;
  t.kept = index;
}

}  // namespace pagefs::fsck
