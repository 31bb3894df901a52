// Extended attributes: items (ino, kXattr, cookie) holding name and value,
// with cookies built like directory-entry cookies (format.h). The two POSIX
// ACL names are xattrs with rules of their own (acl_ops.cc).
//
// A value that fits in its cell is stored there; a larger one, up to 64 KiB,
// in data pages the item names with their CRC32Cs (xattr_item.h). Such pages
// are never changed in place: a new value gets new pages, allocated in the
// operation's transaction (so they are fresh: written home before its commit,
// like the pages of an append), and the old value's pages are freed with it.
// A failed operation therefore leaves the old value and its pages as they
// were, and the space map's savepoint gives the new pages back.
#include <linux/limits.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

#include "engine/crc32c.h"
#include "engine/filesystem.h"
#include "engine/fs_impl.h"
#include "engine/xattr_item.h"

namespace pagefs {
namespace {

// Linux's namespaces; a name is its namespace prefix and a non-empty rest.
Status check_xattr_name(std::string_view name) {
  if (name.empty()) return Err{EINVAL};
  if (name.size() > XATTR_NAME_MAX) return Err{ERANGE};
  for (std::string_view ns : {"user.", "trusted.", "security.", "system."}) {
    if (name.starts_with(ns)) return name.size() > ns.size() ? ok_status() : Status(Err{EINVAL});
  }
  return Err{EOPNOTSUPP};
}

bool is_acl_name(std::string_view name) {
  return name == kAclAccessXattr || name == kAclDefaultXattr;
}

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::span(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

}  // namespace

// ---- Impl: the items and their pages ------------------------------------------

XattrItem FileSystem::Impl::decode_xattr(std::string_view item) const {
  XattrItem x;
  const char* why = nullptr;
  bool ok = XattrItem::decode(bytes_of(item), limits_, &x, &why);
  assert(ok);  // the tree checked it on the way out (items.h)
  (void)ok;
  return x;
}

Status FileSystem::Impl::find_xattr(InodeNo ino, std::string_view name, FoundXattr* out) {
  uint64_t base = name_hash(name.data(), name.size()) << kCookieCollisionBits;
  uint64_t next = base;
  out->found = false;
  Status st = tree_->scan(
      Key::of(ino.value, KeyKind::kXattr, base), Key::of(ino.value, KeyKind::kXattr, base | 0xff),
      [&](const Key& k, std::span<const std::byte> v) {
        if (k.off == next) next++;
        XattrValue x;  // the tree checked its shape
        std::memcpy(&x, v.data(), sizeof x);
        std::string_view n(reinterpret_cast<const char*>(v.data()) + sizeof x, x.name_len);
        if (n != name) return true;
        out->cookie = k.off;
        out->item.assign(reinterpret_cast<const char*>(v.data()), v.size());
        out->found = true;
        return false;
      });
  out->free_cookie = next;
  return st;
}

Result<std::string> FileSystem::Impl::xattr_value(InodeNo ino, const XattrItem& x) {
  if (!x.in_pages) {
    if (!x.matches_crc(x.inline_value)) {
      return pool_->inode_metadata_error(ino.value, "the value of xattr %.*s fails its checksum",
                                         int(x.name.size()), x.name.data());
    }
    return std::string(x.inline_value);
  }
  std::vector<DataPageRequest> wanted;
  for (const XattrPage& p : x.pages) wanted.push_back(DataPageRequest{PageNo{p.phys}, p.crc});
  if (wanted.size() > 1) pool_->prefetch_data(wanted);
  std::string value(x.value_bytes, '\0');
  size_t at = 0;
  for (const DataPageRequest& p : wanted) {
    PAGEFS_ASSIGN(PageRef ref, pool_->fetch_data(p.page, p.crc));
    size_t n = std::min<size_t>(page_size_, value.size() - at);
    std::memcpy(value.data() + at, ref.data(), n);
    at += n;
    // The writer zeroes the rest of the last page, and its CRC covers it:
    // bytes there mean the record's length is wrong (fsck says the same).
    const std::byte* tail = ref.data() + n;
    const size_t tail_bytes = page_size_ - n;
    if (tail_bytes > 0 &&
        (tail[0] != std::byte{0} || std::memcmp(tail, tail + 1, tail_bytes - 1) != 0)) {
      return pool_->metadata_error(p.page, "an xattr value's last page holds bytes past its %u",
                                   x.value_bytes);
    }
  }
  if (!x.matches_crc(value)) {
    return pool_->inode_metadata_error(ino.value, "the value of xattr %.*s fails its checksum",
                                       int(x.name.size()), x.name.data());
  }
  return value;
}

// New pages for `value`, each fresh in the running transaction: the rest of
// the last page is zero, and every page's CRC covers all of it.
Result<std::vector<XattrPage>> FileSystem::Impl::write_xattr_pages(std::string_view value) {
  const uint32_t count = xattr_value_pages(uint32_t(value.size()), page_size_);
  std::vector<XattrPage> pages;
  pages.reserve(count);
  while (pages.size() < count) {
    uint64_t hint = pages.empty() ? 0 : pages.back().phys + 1;
    PAGEFS_ASSIGN(PageRun run,
                  space_->allocate(PageNo{hint}, count - uint32_t(pages.size()), false));
    for (uint32_t i = 0; i < run.count; i++) {
      PageNo page{run.start.value + i};
      size_t at = pages.size() * size_t(page_size_);
      size_t n = std::min<size_t>(page_size_, value.size() - at);
      PAGEFS_ASSIGN(PageRef ref, pool_->create(page, false, /*fresh=*/true));
      ref.mark_dirty();
      std::memcpy(ref.data(), value.data() + at, n);
      uint32_t crc = crc32c(ref.data(), page_size_);
      ref.set_data_crc(crc);
      pages.push_back(XattrPage{page.value, crc});
    }
  }
  return pages;
}

Status FileSystem::Impl::free_xattr_pages(std::span<const XattrPage> pages) {
  for (const XattrPage& p : pages) {
    pool_->discard(PageNo{p.phys});
    PAGEFS_TRY(space_->free(PageNo{p.phys}, 1));
  }
  return ok_status();
}

// Stores `value` under `name`, replacing `old` if found; the inode record is
// the caller's.
Status FileSystem::Impl::store_xattr(InodeNo ino, std::string_view name, std::string_view value,
                                     const FoundXattr& old) {
  uint64_t cookie = old.found ? old.cookie : old.free_cookie;
  uint64_t last = (name_hash(name.data(), name.size()) << kCookieCollisionBits) | 0xff;
  if (!old.found && cookie > last) return Err{ENOSPC};  // 256 names share this hash
  std::string item;
  const bool crc = limits_.xattr_crc;
  if (value.size() <= max_inline_xattr_value(page_size_, name.size(), crc)) {
    item = XattrItem::encode_inline(name, value, crc);
  } else {
    PAGEFS_ASSIGN(std::vector<XattrPage> pages, write_xattr_pages(value));
    item = XattrItem::encode_in_pages(name, uint32_t(value.size()), pages, crc,
                                      crc ? crc32c(value.data(), value.size()) : 0);
    if (!(sb_->features_incompat & kIncompatXattrPages)) {
      sb_->features_incompat |= kIncompatXattrPages;  // journaled with page 0 at the commit
    }
  }
  PAGEFS_TRY(tree_->put(Key::of(ino.value, KeyKind::kXattr, cookie), bytes_of(item)));
  if (old.found) PAGEFS_TRY(free_xattr_pages(decode_xattr(old.item).pages));
  dirty_ = true;
  return ok_status();
}

Status FileSystem::Impl::erase_xattr(InodeNo ino, const FoundXattr& old) {
  assert(old.found);
  PAGEFS_TRY(erase_item(Key::of(ino.value, KeyKind::kXattr, old.cookie)));
  PAGEFS_TRY(free_xattr_pages(decode_xattr(old.item).pages));
  dirty_ = true;
  return ok_status();
}

// Data pages and tree pages a setxattr of `value_bytes` may change.
uint64_t FileSystem::Impl::xattr_op_pages(size_t value_bytes) const {
  return 64 + xattr_value_pages(uint32_t(value_bytes), page_size_);
}

// ---- FileSystem: public ---------------------------------------------------------

Status FileSystem::setxattr(InodeNo ino, std::string_view name, std::string_view value, int flags,
                            uint32_t clear_mode) {
  PAGEFS_TRY(check_xattr_name(name));
  if (value.size() > kMaxXattrValue) return Err{E2BIG};
  if (is_acl_name(name) && !impl_->options_.posix_acl) return Err{EOPNOTSUPP};
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    Impl& fs = *impl_;
    if (is_acl_name(name)) return fs.set_acl_locked(ino, name, value, flags, clear_mode);
    uint64_t data_pages = xattr_value_pages(uint32_t(value.size()), fs.page_size_);
    PAGEFS_TRY(fs.begin_op(fs.xattr_op_pages(value.size()), data_pages));
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    PAGEFS_TRY(Impl::may_change_inode(rec));
    Impl::FoundXattr old;
    PAGEFS_TRY(fs.find_xattr(ino, name, &old));
    if (old.found && (flags & XATTR_CREATE)) return Err{EEXIST};
    if (!old.found && (flags & XATTR_REPLACE)) return Err{ENODATA};
    PAGEFS_TRY(fs.store_xattr(ino, name, value, old));
    Impl::touch(rec, false, true);
    return fs.put_inode(ino, rec);
  });
}

Result<std::string> FileSystem::getxattr(InodeNo ino, std::string_view name) {
  PAGEFS_TRY(check_xattr_name(name));
  if (is_acl_name(name) && !impl_->options_.posix_acl) return Err{EOPNOTSUPP};
  return impl_->read_op([&]() -> Result<std::string> {
    PAGEFS_TRY(impl_->get_inode(ino));
    Impl::FoundXattr found;
    PAGEFS_TRY(impl_->find_xattr(ino, name, &found));
    if (!found.found) return Err{ENODATA};
    PAGEFS_ASSIGN(std::string value, impl_->xattr_value(ino, impl_->decode_xattr(found.item)));
    // An ACL is checked like everything else read from the device.
    if (is_acl_name(name)) PAGEFS_TRY(impl_->parse_stored_acl(ino, name, value));
    return value;
  });
}

Result<std::string> FileSystem::listxattr(InodeNo ino) {
  return impl_->read_op([&]() -> Result<std::string> {
    PAGEFS_TRY(impl_->get_inode(ino));
    std::string names;
    PAGEFS_TRY(impl_->tree_->scan(
        Key::of(ino.value, KeyKind::kXattr, 0), Key::of(ino.value, KeyKind::kXattr, UINT64_MAX),
        [&](const Key&, std::span<const std::byte> v) {
          XattrValue x;  // the tree checked its shape
          std::memcpy(&x, v.data(), sizeof x);
          names.append(reinterpret_cast<const char*>(v.data()) + sizeof x, x.name_len);
          names.push_back('\0');
          return true;
        }));
    return names;
  });
}

Status FileSystem::removexattr(InodeNo ino, std::string_view name) {
  PAGEFS_TRY(check_xattr_name(name));
  if (is_acl_name(name) && !impl_->options_.posix_acl) return Err{EOPNOTSUPP};
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Status {
    Impl& fs = *impl_;
    PAGEFS_TRY(fs.begin_op(64));
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    PAGEFS_TRY(Impl::may_change_inode(rec));
    Impl::FoundXattr old;
    PAGEFS_TRY(fs.find_xattr(ino, name, &old));
    if (!old.found) return Err{ENODATA};
    PAGEFS_TRY(fs.erase_xattr(ino, old));
    Impl::touch(rec, false, true);
    return fs.put_inode(ino, rec);
  });
}

}  // namespace pagefs
