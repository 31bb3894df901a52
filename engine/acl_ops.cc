// POSIX ACLs: the xattrs system.posix_acl_access and system.posix_acl_default
// kept in step with the mode (engine/posix_acl.h says how).
//
// The kernel checks permissions against them; the engine stores them, sets
// the mode when an access ACL is set, rewrites the access ACL on chmod, and
// hands a directory's default ACL to the inodes created in it. Each of these
// happens inside the operation that causes it, so it is all or nothing with
// it. An ACL on the device is parsed, like any value from it, before use: one
// that does not parse is metadata damage (EIO) for the operation that needs it.
#include <sys/stat.h>
#include <sys/xattr.h>

#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {

Result<PosixAcl> FileSystem::Impl::parse_stored_acl(InodeNo ino, std::string_view name,
                                                    std::string_view value) {
  Result<PosixAcl> acl = PosixAcl::parse(value);
  if (!acl.ok()) {
    return pool_->inode_metadata_error(ino.value, "%.*s is not a valid ACL", int(name.size()),
                                       name.data());
  }
  return acl;
}

Result<PosixAcl> FileSystem::Impl::load_acl(InodeNo ino, const FoundXattr& item) {
  XattrItem x = decode_xattr(item.item);
  PAGEFS_ASSIGN(std::string value, xattr_value(ino, x));
  return parse_stored_acl(ino, x.name, value);
}

// As ext4 with the kernel's posix_acl_update_mode: an access ACL sets the
// mode's permission bits, and is not stored when the mode says it all; S_ISGID
// goes (clear_mode) when the caller is neither in the file's group nor
// privileged. A default ACL belongs to directories only.
Status FileSystem::Impl::set_acl_locked(InodeNo ino, std::string_view name, std::string_view value,
                                        int flags, uint32_t clear_mode) {
  PAGEFS_ASSIGN(PosixAcl acl, PosixAcl::parse(value));
  PAGEFS_TRY(begin_op(xattr_op_pages(value.size()),
                      xattr_value_pages(uint32_t(value.size()), page_size_)));
  PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
  if (S_ISLNK(rec.mode)) return Err{EOPNOTSUPP};
  PAGEFS_TRY(may_change_inode(rec));  // immutable and append-only files keep their ACLs
  FoundXattr old;
  PAGEFS_TRY(find_xattr(ino, name, &old));
  if (old.found && (flags & XATTR_CREATE)) return Err{EEXIST};
  if (!old.found && (flags & XATTR_REPLACE)) return Err{ENODATA};
  if (name == kAclDefaultXattr) {
    if (!S_ISDIR(rec.mode)) return Err{EACCES};
    PAGEFS_TRY(store_xattr(ino, name, value, old));
  } else {
    rec.mode = (rec.mode & ~0777u) | acl.mode_bits();
    rec.mode &= ~(clear_mode & uint32_t(S_ISGID));
    if (!acl.equivalent_to_mode()) {
      PAGEFS_TRY(store_xattr(ino, name, value, old));
    } else if (old.found) {
      PAGEFS_TRY(erase_xattr(ino, old));
    }
  }
  touch(rec, false, true);
  return put_inode(ino, rec);
}

Status FileSystem::Impl::chmod_acl(InodeNo ino, const FoundXattr& access, uint32_t mode) {
  PAGEFS_ASSIGN(PosixAcl acl, load_acl(ino, access));
  acl.apply_mode(mode);
  return store_xattr(ino, kAclAccessXattr, acl.encode(), access);
}

// As the kernel's posix_acl_create: with a default ACL in `dir`, the new
// inode's access ACL is that ACL masked by the mode asked for (kept only if it
// says more than the mode), a new directory's default ACL is a copy of it,
// and the umask is not applied. Symlinks take neither.
Status FileSystem::Impl::inherit(InodeNo dir, uint32_t mode, const Caller& caller,
                                 Inheritance* out) {
  *out = Inheritance{};
  out->mode = mode;
  if (S_ISLNK(mode)) return ok_status();
  FoundXattr found;
  if (options_.posix_acl) PAGEFS_TRY(find_xattr(dir, kAclDefaultXattr, &found));
  if (!found.found) {
    out->mode = mode & ~(caller.umask & 0777u);
    return ok_status();
  }
  PAGEFS_ASSIGN(PosixAcl acl, load_acl(dir, found));
  if (S_ISDIR(mode)) out->dir_default = acl.encode();
  bool store = false;
  out->mode = acl.create_masq(mode, &store);
  if (store) out->access = acl.encode();
  for (const std::string* v : {&out->access, &out->dir_default}) {
    if (v->empty()) continue;
    out->pages += xattr_op_pages(v->size());
    out->data_pages += xattr_value_pages(uint32_t(v->size()), page_size_);
  }
  return ok_status();
}

Status FileSystem::Impl::store_inherited(InodeNo ino, const Inheritance& in) {
  const std::pair<std::string_view, const std::string*> acls[] = {
      {kAclAccessXattr, &in.access}, {kAclDefaultXattr, &in.dir_default}};
  for (const auto& [name, value] : acls) {
    if (value->empty()) continue;
    FoundXattr none;
    PAGEFS_TRY(find_xattr(ino, name, &none));  // a new inode: finds none, gives the cookie
    PAGEFS_TRY(store_xattr(ino, name, *value, none));
  }
  return ok_status();
}

}  // namespace pagefs
