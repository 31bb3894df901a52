// Pass 4: inodes and directories, once every item has been seen.
//
// In this order, so that each step counts what the steps before it kept:
//   1. the root directory, broken symlinks, inodes that have items but no
//      record (recreated from what their items say they were);
//   2. directory entries against their targets: entries pointing nowhere are
//      removed, link counts are counted;
//   3. inodes without a name: freed when unlinked, else reconnected;
//   4. directories that do not lead up to the root (cycles), reconnected;
//   5. /lost+found, found or created, receives what was reconnected;
//   6. every inode's link count, size, parent and block count.
// When the tree walk could not read part of the tree, what the passes would
// conclude is not trustworthy: only the damage is reported, and the repair
// rewrites the tree first; the next check then does the rest.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

constexpr uint64_t kRoot = 1;

InodeRecord new_record(uint32_t mode) {
  InodeRecord rec{};
  rec.mode = mode;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  rec.atime_sec = rec.mtime_sec = rec.ctime_sec = rec.crtime_sec = now.tv_sec;
  rec.atime_nsec = rec.mtime_nsec = rec.ctime_nsec = rec.crtime_nsec = uint32_t(now.tv_nsec);
  rec.nlink = S_ISDIR(mode) ? 2 : 1;
  return rec;
}

}  // namespace

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

void Checker::check_inodes() {
  if (!damaged_nodes_.empty()) {
    for (uint32_t i = 0; i < dirents_.size(); i++) note_entry(i);
    report_damage();
    return;
  }
  check_root();
  check_symlinks();
  recreate_missing();
  for (uint32_t i = 0; i < dirents_.size(); i++) resolve_dirent(i);
  check_unlinked();
  check_reachability();
  connect_lost_found();
  for (uint64_t ino : sorted_inodes()) {
    InodeInfo& info = inodes_[ino];
    if (info.has_record && !info.dropped) check_inode(ino, info);
    advance(1);
  }
  report_shared();
  emit_records();
}

// The first entry naming an inode gives it its path in messages.
void Checker::note_entry(uint32_t index) {
  auto it = inodes_.find(dirents_[index].target);
  if (it != inodes_.end() && it->second.entry == kNoEntry) it->second.entry = index;
}

std::vector<uint64_t> Checker::sorted_inodes() const {
  std::vector<uint64_t> inos;
  inos.reserve(inodes_.size());
  for (const auto& [ino, info] : inodes_) inos.push_back(ino);
  std::sort(inos.begin(), inos.end());  // problems in a stable order
  return inos;
}

// The root must be a directory; anything else stands in its place is replaced.
void Checker::check_root() {
  InodeInfo& root = inodes_[kRoot];
  if (root.has_record && S_ISDIR(root.rec.mode)) return;
  if (root.has_record) {
    report_.at(Fix::kRepair, "/ (inode 1)", "replace it with an empty directory",
               "the root inode is not a directory (mode 0%o)", root.rec.mode);
    plan_.dropped.insert(kRoot);  // its items go; the new record is an edit
  } else {
    report_.at(Fix::kRepair, "/ (inode 1)", "recreate it", "the root directory is missing");
  }
  root.has_record = root.recreated = root.changed = true;
  root.rec = new_record(S_IFDIR | 0755);
  root.rec.parent = kRoot;
}

// A symlink whose target cannot be read back whole is removed with its names.
void Checker::check_symlinks() {
  for (auto& [ino, info] : inodes_) {
    if (!info.has_record || !S_ISLNK(info.rec.mode)) continue;
    const uint64_t pages = (info.rec.size + page_size_ - 1) / page_size_;
    if (!info.broken_link && info.extent_pages == pages) continue;
    report_.inode(Fix::kRepair, ino, "remove it",
                  "symlink's target cannot be read back (%llu bytes)", ull(info.rec.size));
    drop_inode(ino, info);
  }
}

void Checker::drop_inode(uint64_t ino, InodeInfo& info) {
  info.dropped = true;
  plan_.dropped.insert(ino);
  if (info.has_orphan) plan_.edits[Key::of(0, KeyKind::kOrphan, ino)] = std::nullopt;
}

// An inode whose record is gone but whose entries or extents survived is
// recreated: a directory if it holds entries, else a regular file of the
// size its extents reach. One with only xattrs left is removed.
void Checker::recreate_missing() {
  for (uint64_t ino : sorted_inodes()) {
    InodeInfo& info = inodes_[ino];
    if (info.has_record || (info.entries == 0 && info.other_items == 0)) continue;
    if (info.entries == 0 && info.extent_pages == 0) {
      report_.inode(Fix::kRepair, ino, "remove them", "has extended attributes but no record");
      drop_inode(ino, info);
      continue;
    }
    recreate(ino, info);
  }
}

void Checker::recreate(uint64_t ino, InodeInfo& info) {
  const bool dir = info.entries > 0;
  report_.inode(Fix::kRepair, ino, dir ? "recreate it as a directory" : "recreate it as a file",
                "has no inode record, but %llu %s", ull(dir ? info.entries : info.extent_pages),
                dir ? "directory entries" : "data pages (its size is set to the last one's end)");
  info.has_record = info.recreated = info.changed = true;
  info.rec = new_record(dir ? S_IFDIR | 0700 : S_IFREG | 0600);
  // Handles the kernel gave out for the lost record name another inode now.
  info.rec.generation = new_generation();
  max_ino_ = std::max(max_ino_, ino);
}

// Counts one directory entry towards its target, or removes it.
void Checker::resolve_dirent(uint32_t index) {
  DirentRef& d = dirents_[index];
  InodeInfo& dir = inodes_[d.dir];
  if (dir.dropped) return;  // goes with its directory
  auto it = inodes_.find(d.target);
  if (it == inodes_.end() || !it->second.has_record) {
    return remove_entry(index, Fix::kRepair, "points to inode %llu, which does not exist");
  }
  InodeInfo& target = it->second;
  note_entry(index);
  if (target.dropped) return remove_entry(index, Fix::kNone, nullptr);
  if (d.target == kRoot) return remove_entry(index, Fix::kRepair, "points to the root directory");
  if (S_ISDIR(target.rec.mode) && target.links > 0) return second_directory_entry(index);
  if (d.type != dtype_of(target.rec.mode)) fix_entry_type(index, target);
  target.links++;
  if (target.links == 1) target.kept = index;
  if (S_ISDIR(target.rec.mode)) dir.subdirs++;
}

// A directory has exactly one name: the entry in the directory its parent
// field names is kept, else the first one met.
void Checker::second_directory_entry(uint32_t index) {
  InodeInfo& target = inodes_[dirents_[index].target];
  const uint32_t kept = target.kept;
  const bool prefer_new =
      dirents_[index].dir == target.rec.parent && dirents_[kept].dir != target.rec.parent;
  const uint32_t loser = prefer_new ? kept : index;
  const char* why = "is a second name of directory inode %llu";
  if (prefer_new) {
    remove_entry(kept, Fix::kRepair, why);
    inodes_[dirents_[kept].dir].subdirs--;
    target.kept = index;
    inodes_[dirents_[index].dir].subdirs++;
  } else {
    remove_entry(loser, Fix::kRepair, why);
  }
}

void Checker::fix_entry_type(uint32_t index, const InodeInfo& target) {
  DirentRef& d = dirents_[index];
  report_.entry(Fix::kPreen, d.dir, d.name, "set its type",
                "entry has type %u, but inode %llu has mode 0%o", d.type, ull(d.target),
                target.rec.mode);
  d.type = dtype_of(target.rec.mode);
  plan_.edits[Key::of(d.dir, KeyKind::kDirent, d.cookie)] = dirent_value(d);
}

// Removes entry `index`; `why` (printf with the target's number) says why,
// or is null when the removal goes with a problem reported elsewhere.
void Checker::remove_entry(uint32_t index, Fix fix, const char* why) {
  DirentRef& d = dirents_[index];
  if (why != nullptr) {
    char what[160];
    snprintf(what, sizeof what, why, ull(d.target));
    report_.entry(fix, d.dir, d.name, "remove the entry", "%s", what);
  }
  d.removed = true;
  inodes_[d.dir].entries--;
  plan_.edits[Key::of(d.dir, KeyKind::kDirent, d.cookie)] = std::nullopt;
}

// Inodes that no entry names: freed if they were unlinked (their orphan
// record is all that was missing), reconnected otherwise. Orphan records
// that name no unlinked inode are removed.
void Checker::check_unlinked() {
  for (uint64_t ino : sorted_inodes()) {
    InodeInfo& info = inodes_[ino];
    if (!info.has_record) {
      if (info.has_orphan) {
        report_.at(Fix::kPreen, "orphan list", "remove it from the list",
                   "names inode %llu, which does not exist", ull(ino));
        plan_.edits[Key::of(0, KeyKind::kOrphan, ino)] = std::nullopt;
      }
      continue;
    }
    if (info.dropped || ino == kRoot) continue;
    if (info.has_orphan && (info.rec.nlink > 0 || info.links > 0)) {
      report_.inode(Fix::kPreen, ino, "take it off the list",
                    "is on the orphan list but has %llu names", ull(info.links));
      plan_.edits[Key::of(0, KeyKind::kOrphan, ino)] = std::nullopt;
      info.has_orphan = false;
    }
    if (info.links > 0 || (info.has_orphan && info.rec.nlink == 0)) continue;
    const bool empty = !S_ISDIR(info.rec.mode) || info.entries == 0;
    if (info.rec.nlink == 0 && empty) {
      report_.inode(Fix::kPreen, ino, "free it", "has no links and is not on the orphan list");
      drop_inode(ino, info);
    } else {
      reconnect(ino, "is not in any directory");
    }
  }
}

// Every directory must lead up to the root through the entries naming it.
void Checker::check_reachability() {
  for (uint64_t ino : sorted_inodes()) {
    InodeInfo& info = inodes_[ino];
    if (!info.has_record || info.dropped || !S_ISDIR(info.rec.mode)) continue;
    if (info.reach == kUnknown) resolve_reach(ino);
  }
}

// Follows the entries up from `dir` until the root, a directory of known
// reachability, or a directory met twice (a cycle), which is cut out and
// reconnected; then labels the whole path. Bounded by the number of
// directories, since each is marked kVisiting once.
Checker::Reach Checker::resolve_reach(uint64_t dir) {
  std::vector<InodeInfo*> path;
  Reach result = kUnreachable;
  for (uint64_t cur = dir;;) {
    InodeInfo& info = inodes_[cur];
    if (cur == kRoot || info.reconnect) {
      result = kReachable;
      break;
    }
    if (info.reach == kVisiting) {
      remove_entry(info.kept, Fix::kRepair, "closes a cycle of directories");
      inodes_[dirents_[info.kept].dir].subdirs--;
      info.links--;
      reconnect(cur, "is in a cycle of directories that does not reach the root");
      result = kReachable;
      break;
    }
    if (info.reach != kUnknown || info.links == 0) {
      result = info.links == 0 ? kUnreachable : Reach(info.reach);
      break;
    }
    info.reach = kVisiting;
    path.push_back(&info);
    cur = dirents_[info.kept].dir;
  }
  for (InodeInfo* info : path) info->reach = result;
  return result;
}

// The counters of one inode against what was counted.
void Checker::check_inode(uint64_t ino, InodeInfo& info) {
  if (info.rec.blocks > info.extent_pages && S_ISREG(info.rec.mode) && !info.recreated) {
    // Extents went missing (with a damaged tree page): say what that means.
    report_.inode(Fix::kPreen, ino, "set the block count to " + std::to_string(info.extent_pages),
                  "has lost %llu of its %llu data pages; the missing parts read as zeros",
                  ull(info.rec.blocks - info.extent_pages), ull(info.rec.blocks));
    info.changed = true;
    info.rec.blocks = info.extent_pages;
  } else if (info.rec.blocks != info.extent_pages) {
    change(ino, info, Fix::kPreen, "block count", info.rec.blocks, info.extent_pages);
    info.rec.blocks = info.extent_pages;
  }
  if (S_ISDIR(info.rec.mode)) return check_directory(ino, info);
  check_nondirectory(ino, info);
}

void Checker::check_directory(uint64_t ino, InodeInfo& info) {
  if (info.rec.size != info.entries) {
    change(ino, info, Fix::kPreen, "size (entries)", info.rec.size, info.entries);
    info.rec.size = info.entries;
  }
  if (info.has_orphan && info.links == 0 && info.rec.nlink == 0) return;  // removed, still open
  if (info.rec.nlink != 2 + info.subdirs) {
    change(ino, info, Fix::kPreen, "link count", info.rec.nlink, 2 + info.subdirs);
    info.rec.nlink = uint32_t(2 + info.subdirs);
  }
  if (ino != kRoot && info.kept == kNoEntry) return;  // freed or reconnected elsewhere
  const uint64_t parent = ino == kRoot ? kRoot : dirents_[info.kept].dir;
  if (info.rec.parent != parent) {
    change(ino, info, Fix::kPreen, "parent", info.rec.parent, parent);
    info.rec.parent = parent;
  }
}

void Checker::check_nondirectory(uint64_t ino, InodeInfo& info) {
  if (info.rec.parent != 0) {
    change(ino, info, Fix::kPreen, "parent", info.rec.parent, 0);
    info.rec.parent = 0;
  }
  if (info.links > 0 && info.rec.nlink != info.links) {
    change(ino, info, Fix::kPreen, "link count", info.rec.nlink, info.links);
    info.rec.nlink = uint32_t(info.links);
  }
  // A size past the largest file (of any type: the engine refuses it) is
  // set to where the extents reach.
  const uint64_t reach = info.extent_end * page_size_;
  if ((S_ISREG(info.rec.mode) && info.recreated) || info.rec.size > kMaxFileBytes) {
    change(ino, info, Fix::kRepair, "size", info.rec.size, reach);
    info.rec.size = reach;
  }
}

// Records a field's new value; a recreated inode's fields are set silently.
void Checker::change(uint64_t ino, InodeInfo& info, Fix fix, const char* field, uint64_t from,
                     uint64_t to) {
  info.changed = true;
  if (info.recreated) return;
  char action[64];
  snprintf(action, sizeof action, "set it to %llu", ull(to));
  report_.inode(fix, ino, action, "%s is %llu, should be %llu", field, ull(from), ull(to));
}

// Every record the repair writes, and every one it keeps, must be one a
// mount accepts.
void Checker::emit_records() {
  for (uint64_t ino : sorted_inodes()) {
    InodeInfo& info = inodes_[ino];
    if (!info.has_record || info.dropped) continue;
    std::string value(reinterpret_cast<const char*>(&info.rec), sizeof(info.rec));
    const Key key = Key::of(ino, KeyKind::kInode, 0);
    std::string why;
    const bool accepted = engine_accepts(key, value, &why);
    if (accepted && !info.changed) continue;
    if (!accepted) {
      report_.inode(Fix::kRepair, ino, "remove it", "inode record cannot be repaired: %s",
                    why.c_str());
      drop_inode(ino, info);
      continue;
    }
    plan_.edits[key] = value;
  }
}

}  // namespace pagefs::fsck
