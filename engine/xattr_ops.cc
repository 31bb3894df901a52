// Extended attributes: items (ino, kXattr, cookie) holding name and value,
// with cookies built like directory-entry cookies (format.h).
#include <linux/limits.h>
#include <sys/xattr.h>

#include <cstring>

#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

// Items reach these functions checked by the tree (items.h): their name and
// value fill them exactly.
struct XattrItem {
  uint64_t cookie = 0;
  std::string value;
};

std::string_view item_name(std::span<const std::byte> v) {
  XattrValue x;
  std::memcpy(&x, v.data(), sizeof x);
  return {reinterpret_cast<const char*>(v.data()) + sizeof x, x.name_len};
}

std::string_view item_value(std::span<const std::byte> v) {
  XattrValue x;
  std::memcpy(&x, v.data(), sizeof x);
  return {reinterpret_cast<const char*>(v.data()) + sizeof x + x.name_len, x.value_len};
}

// Finds `name` among the items sharing its hash; `free_cookie` receives the
// first unused cookie of that hash.
Status find_xattr(Btree& tree, InodeNo ino, std::string_view name, XattrItem* out, bool* found,
                  uint64_t* free_cookie) {
  uint64_t base = name_hash(name.data(), name.size()) << kCookieCollisionBits;
  uint64_t next = base;
  *found = false;
  Status st = tree.scan(Key::of(ino.value, KeyKind::kXattr, base),
                        Key::of(ino.value, KeyKind::kXattr, base | 0xff),
                        [&](const Key& k, std::span<const std::byte> v) {
                          if (k.off == next) next++;
                          if (item_name(v) != name) return true;
                          out->cookie = k.off;
                          out->value = std::string(item_value(v));
                          *found = true;
                          return false;
                        });
  *free_cookie = next;
  return st;
}

// Linux's namespaces; a name is its namespace prefix and a non-empty rest.
Status check_xattr_name(std::string_view name) {
  if (name.empty()) return Err{EINVAL};
  if (name.size() > XATTR_NAME_MAX) return Err{ERANGE};
  for (std::string_view ns : {"user.", "trusted.", "security.", "system."}) {
    if (name.starts_with(ns)) return name.size() > ns.size() ? ok_status() : Status(Err{EINVAL});
  }
  return Err{EOPNOTSUPP};
}

}  // namespace

size_t max_xattr_value(uint32_t page_size, size_t name_len) {
  size_t room = max_value_size(page_size) - sizeof(XattrValue);
  return name_len >= room ? 0 : room - name_len;
}

Status FileSystem::setxattr(InodeNo ino, std::string_view name, std::string_view value, int flags) {
  PAGEFS_TRY(check_xattr_name(name));
  if (value.size() > XATTR_SIZE_MAX) return Err{E2BIG};
  if (value.size() > max_xattr_value(impl_->page_size_, name.size())) return Err{ENOSPC};
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    Impl& fs = *impl_;
    PAGEFS_TRY(fs.begin_op(64));
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    PAGEFS_TRY(Impl::may_change_inode(rec));
    XattrItem item;
    bool found = false;
    uint64_t free_cookie = 0;
    PAGEFS_TRY(find_xattr(*fs.tree_, ino, name, &item, &found, &free_cookie));
    if (found && (flags & XATTR_CREATE)) return Err{EEXIST};
    if (!found && (flags & XATTR_REPLACE)) return Err{ENODATA};
    uint64_t cookie = found ? item.cookie : free_cookie;
    uint64_t last = (name_hash(name.data(), name.size()) << kCookieCollisionBits) | 0xff;
    if (!found && cookie > last) return Err{ENOSPC};  // 256 names share this hash
    std::string v(sizeof(XattrValue) + name.size() + value.size(), '\0');
    XattrValue x{static_cast<uint8_t>(name.size()), 0, static_cast<uint16_t>(value.size())};
    std::memcpy(v.data(), &x, sizeof x);
    std::memcpy(v.data() + sizeof x, name.data(), name.size());
    std::memcpy(v.data() + sizeof x + name.size(), value.data(), value.size());
    PAGEFS_TRY(fs.tree_->put(Key::of(ino.value, KeyKind::kXattr, cookie),
                             std::span(reinterpret_cast<const std::byte*>(v.data()), v.size())));
    Impl::touch(rec, false, true);
    return fs.put_inode(ino, rec);
  });
}

Result<std::string> FileSystem::getxattr(InodeNo ino, std::string_view name) {
  PAGEFS_TRY(check_xattr_name(name));
  std::shared_lock lock(impl_->mu_);
  PAGEFS_TRY(impl_->get_inode(ino));
  XattrItem item;
  bool found = false;
  uint64_t free_cookie = 0;
  PAGEFS_TRY(find_xattr(*impl_->tree_, ino, name, &item, &found, &free_cookie));
  if (!found) return Err{ENODATA};
  return std::move(item.value);
}

Result<std::string> FileSystem::listxattr(InodeNo ino) {
  std::shared_lock lock(impl_->mu_);
  PAGEFS_TRY(impl_->get_inode(ino));
  std::string names;
  PAGEFS_TRY(impl_->tree_->scan(Key::of(ino.value, KeyKind::kXattr, 0),
                                Key::of(ino.value, KeyKind::kXattr, UINT64_MAX),
                                [&](const Key&, std::span<const std::byte> v) {
                                  names.append(item_name(v));
                                  names.push_back('\0');
                                  return true;
                                }));
  return names;
}

Status FileSystem::removexattr(InodeNo ino, std::string_view name) {
  PAGEFS_TRY(check_xattr_name(name));
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    Impl& fs = *impl_;
    PAGEFS_TRY(fs.begin_op(64));
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    PAGEFS_TRY(Impl::may_change_inode(rec));
    XattrItem item;
    bool found = false;
    uint64_t free_cookie = 0;
    PAGEFS_TRY(find_xattr(*fs.tree_, ino, name, &item, &found, &free_cookie));
    if (!found) return Err{ENODATA};
    PAGEFS_ASSIGN(bool erased, fs.tree_->erase(Key::of(ino.value, KeyKind::kXattr, item.cookie)));
    if (!erased) return Err{EIO};
    Impl::touch(rec, false, true);
    return fs.put_inode(ino, rec);
  });
}

}  // namespace pagefs
