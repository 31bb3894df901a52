// Directory operations: names, links, rename and readdir.
//
// A directory entry is the item (dir, kDirent, cookie) with cookie =
// name_hash(name) << 8 | n, n telling colliding names apart (format.h). Lookup
// scans the 256 cookies of one hash; readdir walks cookies in order, so its
// offsets stay valid while other entries come and go.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cstring>

#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

Status check_name(std::string_view name) {
  if (name.empty()) return Err{ENOENT};
  if (name.size() > kNameMax) return Err{ENAMETOOLONG};
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Err{EINVAL};
  }
  return ok_status();
}

bool is_dot_or_dotdot(std::string_view name) {
  return name == "." || name == "..";
}

uint8_t dirent_type(uint32_t mode) {
  return static_cast<uint8_t>(IFTODT(mode));
}

uint64_t cookie_base(std::string_view name) {
  return name_hash(name.data(), name.size()) << kCookieCollisionBits;
}

}  // namespace

// ---- Impl helpers -----------------------------------------------------------

Result<InodeRecord> FileSystem::Impl::get_dir(InodeNo dir) {
  PAGEFS_ASSIGN(InodeRecord rec, get_inode(dir));
  if (!S_ISDIR(rec.mode)) return Err{ENOTDIR};
  return rec;
}

Result<bool> FileSystem::Impl::dir_find(InodeNo dir, std::string_view name, FoundEntry* out) {
  uint64_t base = cookie_base(name);
  bool found = false;
  PAGEFS_TRY(tree_->scan(
      Key::of(dir.value, KeyKind::kDirent, base), Key::of(dir.value, KeyKind::kDirent, base | 0xff),
      [&](const Key& k, std::span<const std::byte> v) {
        DirentValue d;  // the tree checked its shape (items.h)
        std::memcpy(&d, v.data(), sizeof d);
        std::string_view n(reinterpret_cast<const char*>(v.data()) + sizeof d, v.size() - sizeof d);
        if (n != name) return true;
        *out = FoundEntry{k.off, d.ino, d.type};
        found = true;
        return false;
      }));
  return found;
}

Result<uint64_t> FileSystem::Impl::dir_add(InodeNo dir, std::string_view name, uint64_t ino,
                                           uint8_t type) {
  uint64_t base = cookie_base(name);
  uint64_t next = base;
  PAGEFS_TRY(tree_->scan(Key::of(dir.value, KeyKind::kDirent, base),
                         Key::of(dir.value, KeyKind::kDirent, base | 0xff),
                         [&](const Key& k, std::span<const std::byte>) {
                           if (k.off != next) return false;
                           next++;
                           return true;
                         }));
  if (next > (base | 0xff)) return Err{ENOSPC};  // 256 names with one hash
  std::string value(sizeof(DirentValue) + name.size(), '\0');
  DirentValue d{ino, type, static_cast<uint8_t>(name.size())};
  std::memcpy(value.data(), &d, sizeof d);
  std::memcpy(value.data() + sizeof d, name.data(), name.size());
  PAGEFS_TRY(
      tree_->insert(Key::of(dir.value, KeyKind::kDirent, next),
                    std::span(reinterpret_cast<const std::byte*>(value.data()), value.size())));
  dirty_ = true;
  return next;
}

Status FileSystem::Impl::dir_remove(InodeNo dir, uint64_t cookie) {
  PAGEFS_ASSIGN(bool erased, tree_->erase(Key::of(dir.value, KeyKind::kDirent, cookie)));
  dirty_ = true;
  return erased ? ok_status() : Status(Err{EIO});
}

bool FileSystem::Impl::sticky_denies(const InodeRecord& dir, const InodeRecord& target,
                                     const Caller& caller) {
  if (!(dir.mode & S_ISVTX) || caller.uid == 0) return false;
  return caller.uid != dir.uid && caller.uid != target.uid;
}

// True if `ancestor` is `dir` or one of its ancestors (walks the parent links).
Result<bool> FileSystem::Impl::is_ancestor(InodeNo ancestor, InodeNo dir) {
  InodeNo cur = dir;
  for (int depth = 0; depth < 1 << 20; depth++) {
    if (cur == ancestor) return true;
    if (cur == kRootInode) return false;
    PAGEFS_ASSIGN(InodeRecord rec, get_inode(cur));
    cur = InodeNo{rec.parent};
  }
  return Err{ELOOP};
}

// Takes one link away from `ino`; at zero links the inode becomes an orphan,
// freed when the kernel lets go of it (release_inode) or at the next mount.
Status FileSystem::Impl::drop_link(InodeNo ino, InodeRecord& rec) {
  if (S_ISDIR(rec.mode)) {
    rec.nlink = 0;
  } else if (rec.nlink > 0) {
    rec.nlink--;
  }
  touch(rec, false, true);
  PAGEFS_TRY(put_inode(ino, rec));
  if (rec.nlink == 0) PAGEFS_TRY(add_orphan(ino));
  return ok_status();
}

Result<Attr> FileSystem::Impl::create_node(InodeNo parent, std::string_view name, uint32_t mode,
                                           uint64_t rdev, const Caller& caller,
                                           std::string_view symlink_target, Hold hold) {
  PAGEFS_TRY(check_name(name));
  Inheritance inherited;
  PAGEFS_TRY(inherit(parent, mode, caller, &inherited));
  PAGEFS_TRY(begin_op(64 + inherited.pages, inherited.data_pages));
  if (is_dot_or_dotdot(name)) return Err{EEXIST};
  PAGEFS_ASSIGN(InodeRecord dir, get_dir(parent));
  if (dir.nlink == 0) return Err{ENOENT};  // directory was removed
  PAGEFS_TRY(may_add_entry(dir));
  FoundEntry existing;
  PAGEFS_ASSIGN(bool exists, dir_find(parent, name, &existing));
  if (exists) return Err{EEXIST};
  if (S_ISDIR(mode) && dir.nlink >= kLinkMax) return Err{EMLINK};
  if (space_->free_pages() < 8) return Err{ENOSPC};

  InodeRecord rec;
  PAGEFS_ASSIGN(InodeNo ino, new_inode(inherited.mode, rdev, caller, dir, &rec));
  PAGEFS_TRY(store_inherited(ino, inherited));
  if (S_ISDIR(mode)) rec.parent = parent.value;
  if (S_ISLNK(mode)) {
    PAGEFS_TRY(write_locked(ino, rec, 0, symlink_target.data(), symlink_target.size()));
  }
  PAGEFS_TRY(put_inode(ino, rec));
  PAGEFS_TRY(dir_add(parent, name, ino.value, dirent_type(mode)));
  dir.size++;
  if (S_ISDIR(mode)) dir.nlink++;
  touch(dir, true, true);
  PAGEFS_TRY(put_inode(parent, dir));
  Attr a = to_attr(ino, rec);
  a.blocks_512 = rec.blocks * (page_size_ / 512);
  if (hold == Hold::kYes) refs_.add(ino.value);  // the last step: nothing can fail after it
  return a;
}

// ---- FileSystem: directory operations -----------------------------------------

// The name is found and its inode read (and held) under one shared lock, so
// the inode cannot be freed in between.
Result<Attr> FileSystem::lookup(InodeNo parent, std::string_view name, Hold hold) {
  if (name.size() > kNameMax) return Err{ENAMETOOLONG};
  return impl_->read_op([&]() -> Result<Attr> {
    if (is_dot_or_dotdot(name)) return impl_->lookup_dots(parent, name, hold);
    PAGEFS_TRY(impl_->get_dir(parent));
    Impl::FoundEntry e;
    PAGEFS_ASSIGN(bool found, impl_->dir_find(parent, name, &e));
    if (!found) return Err{ENOENT};
    return impl_->attr_of(InodeNo{e.ino}, hold);
  });
}

// The kernel resolves "." and ".." of a path itself; it asks for them only
// to turn a file handle back into a file (export support): "." is `ino`
// itself, of any type, and ".." a directory's parent. An inode without links
// is gone for a handle: ENOENT, which the kernel reports as ESTALE.
Result<Attr> FileSystem::Impl::lookup_dots(InodeNo ino, std::string_view name, Hold hold) {
  PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
  if (rec.nlink == 0) return Err{ENOENT};
  if (name == ".") {
    Attr a = to_attr(ino, rec);
    a.blocks_512 = rec.blocks * (page_size_ / 512);
    if (hold == Hold::kYes) refs_.add(ino.value);
    return a;
  }
  if (!S_ISDIR(rec.mode)) return Err{ENOTDIR};
  InodeNo up = ino == kRootInode ? ino : InodeNo{rec.parent};
  PAGEFS_TRY(get_dir(up));  // a parent that is not a directory is damage
  return attr_of(up, hold);
}

Result<Attr> FileSystem::mknod(InodeNo parent, std::string_view name, uint32_t mode, uint64_t rdev,
                               const Caller& caller, Hold hold) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG, type = S_IFREG;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    return Err{EINVAL};
  }
  if (type != S_IFCHR && type != S_IFBLK) rdev = 0;
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op(
      [&] { return impl_->create_node(parent, name, mode, rdev, caller, {}, hold); });
}

Result<Attr> FileSystem::mkdir(InodeNo parent, std::string_view name, uint32_t mode,
                               const Caller& caller, Hold hold) {
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&] {
    return impl_->create_node(parent, name, S_IFDIR | (mode & 07777), 0, caller, {}, hold);
  });
}

Result<Attr> FileSystem::symlink(InodeNo parent, std::string_view name, std::string_view target,
                                 const Caller& caller, Hold hold) {
  if (target.empty()) return Err{ENOENT};
  if (target.size() >= PATH_MAX) return Err{ENAMETOOLONG};
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op(
      [&] { return impl_->create_node(parent, name, S_IFLNK | 0777, 0, caller, target, hold); });
}

Result<std::string> FileSystem::readlink(InodeNo ino) {
  return impl_->read_op([&]() -> Result<std::string> {
    PAGEFS_ASSIGN(InodeRecord rec, impl_->get_inode(ino));
    if (!S_ISLNK(rec.mode)) return Err{EINVAL};
    std::string target(rec.size, '\0');
    std::vector<Extent> extents;
    PAGEFS_TRY(impl_->read_extents(ino, 0, rec.size, &extents));
    PAGEFS_ASSIGN(size_t n, impl_->read_copy(rec, extents, 0, rec.size, target.data()));
    target.resize(n);
    return target;
  });
}

Result<Attr> FileSystem::link(InodeNo ino, InodeNo new_parent, std::string_view new_name,
                              Hold hold) {
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Result<Attr> {
    PAGEFS_TRY(impl_->begin_op(64));
    PAGEFS_TRY(check_name(new_name));
    if (is_dot_or_dotdot(new_name)) return Err{EEXIST};
    PAGEFS_ASSIGN(InodeRecord rec, impl_->get_inode(ino));
    if (S_ISDIR(rec.mode)) return Err{EPERM};
    if (rec.nlink >= kLinkMax) return Err{EMLINK};
    bool first_link = rec.nlink == 0;
    if (first_link && !impl_->linkable_.contains(ino.value)) return Err{ENOENT};
    PAGEFS_TRY(Impl::may_change_inode(rec));
    PAGEFS_ASSIGN(InodeRecord dir, impl_->get_dir(new_parent));
    if (dir.nlink == 0) return Err{ENOENT};
    PAGEFS_TRY(Impl::may_add_entry(dir));
    Impl::FoundEntry existing;
    PAGEFS_ASSIGN(bool exists, impl_->dir_find(new_parent, new_name, &existing));
    if (exists) return Err{EEXIST};
    PAGEFS_TRY(impl_->dir_add(new_parent, new_name, ino.value, dirent_type(rec.mode)));
    rec.nlink++;
    Impl::touch(rec, false, true);
    PAGEFS_TRY(impl_->put_inode(ino, rec));
    if (first_link) PAGEFS_TRY(impl_->remove_orphan(ino));
    dir.size++;
    Impl::touch(dir, true, true);
    PAGEFS_TRY(impl_->put_inode(new_parent, dir));
    Attr a = Impl::to_attr(ino, rec);
    a.blocks_512 = rec.blocks * (impl_->page_size_ / 512);
    if (hold == Hold::kYes) impl_->refs_.add(ino.value);
    if (first_link) impl_->linkable_.erase(ino.value);  // nothing can fail after this
    return a;
  });
}

Result<Attr> FileSystem::tmpfile(InodeNo dir, uint32_t mode, const Caller& caller, Hold hold) {
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Result<Attr> {
    Impl& fs = *impl_;
    PAGEFS_TRY(fs.begin_op(32));
    PAGEFS_ASSIGN(InodeRecord dir_rec, fs.get_dir(dir));
    if (dir_rec.nlink == 0) return Err{ENOENT};
    PAGEFS_TRY(Impl::may_add_entry(dir_rec));
    if (fs.space_->free_pages() < 8) return Err{ENOSPC};
    InodeRecord rec;
    PAGEFS_ASSIGN(InodeNo ino, fs.new_inode(S_IFREG | (mode & 07777), 0, caller, dir_rec, &rec));
    rec.nlink = 0;
    PAGEFS_TRY(fs.put_inode(ino, rec));
    PAGEFS_TRY(fs.add_orphan(ino));
    Attr a = Impl::to_attr(ino, rec);
    // The last steps: nothing can fail after them.
    fs.linkable_.insert(ino.value);
    if (hold == Hold::kYes) fs.refs_.add(ino.value);
    return a;
  });
}

Status FileSystem::unlink(InodeNo parent, std::string_view name, const Caller& caller) {
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    PAGEFS_TRY(impl_->begin_op(64));
    if (name.size() > kNameMax) return Err{ENAMETOOLONG};
    PAGEFS_ASSIGN(InodeRecord dir, impl_->get_dir(parent));
    Impl::FoundEntry e;
    PAGEFS_ASSIGN(bool found, impl_->dir_find(parent, name, &e));
    if (!found) return Err{ENOENT};
    PAGEFS_ASSIGN(InodeRecord rec, impl_->get_inode(InodeNo{e.ino}));
    if (S_ISDIR(rec.mode)) return Err{EISDIR};
    if (Impl::sticky_denies(dir, rec, caller)) return Err{EPERM};
    PAGEFS_TRY(Impl::may_remove_entry(dir, rec));
    PAGEFS_TRY(impl_->dir_remove(parent, e.cookie));
    PAGEFS_TRY(impl_->drop_link(InodeNo{e.ino}, rec));
    dir.size--;
    Impl::touch(dir, true, true);
    return impl_->put_inode(parent, dir);
  });
}

Status FileSystem::rmdir(InodeNo parent, std::string_view name, const Caller& caller) {
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    PAGEFS_TRY(impl_->begin_op(64));
    if (name == ".") return Err{EINVAL};
    if (name == "..") return Err{ENOTEMPTY};
    if (name.size() > kNameMax) return Err{ENAMETOOLONG};
    PAGEFS_ASSIGN(InodeRecord dir, impl_->get_dir(parent));
    Impl::FoundEntry e;
    PAGEFS_ASSIGN(bool found, impl_->dir_find(parent, name, &e));
    if (!found) return Err{ENOENT};
    PAGEFS_ASSIGN(InodeRecord rec, impl_->get_inode(InodeNo{e.ino}));
    if (!S_ISDIR(rec.mode)) return Err{ENOTDIR};
    PAGEFS_TRY(Impl::may_remove_entry(dir, rec));
    if (rec.size != 0) return Err{ENOTEMPTY};
    if (Impl::sticky_denies(dir, rec, caller)) return Err{EPERM};
    PAGEFS_TRY(impl_->dir_remove(parent, e.cookie));
    PAGEFS_TRY(impl_->drop_link(InodeNo{e.ino}, rec));
    dir.size--;
    dir.nlink--;
    Impl::touch(dir, true, true);
    return impl_->put_inode(parent, dir);
  });
}

Status FileSystem::readdir(InodeNo dir, uint64_t cookie,
                           const std::function<bool(const DirEntry&)>& emit) {
  // Entries are copied out under the lock in bounded batches and handed to
  // `emit` without it, so `emit` may call back into the filesystem.
  constexpr size_t kBatch = 128;
  struct Item {
    std::string name;
    uint64_t ino;
    uint8_t type;
    uint64_t cookie;
  };
  std::vector<Item> items;
  items.reserve(kBatch);
  for (;;) {
    PAGEFS_TRY(impl_->read_op([&]() -> Status {
      items.clear();
      PAGEFS_TRY(impl_->get_dir(dir));
      return impl_->tree_->scan(
          Key::of(dir.value, KeyKind::kDirent, cookie + 1),
          Key::of(dir.value, KeyKind::kDirent, UINT64_MAX),
          [&](const Key& k, std::span<const std::byte> v) {
            DirentValue d;  // the tree checked its shape (items.h)
            std::memcpy(&d, v.data(), sizeof d);
            items.push_back(Item{std::string(reinterpret_cast<const char*>(v.data()) + sizeof d,
                                             v.size() - sizeof d),
                                 d.ino, d.type, k.off});
            return items.size() < kBatch;
          });
    }));
    for (const Item& it : items) {
      if (!emit(DirEntry{it.name, it.ino, it.type, it.cookie})) return ok_status();
      cookie = it.cookie;
    }
    if (items.size() < kBatch) return ok_status();
  }
}

}  // namespace pagefs
