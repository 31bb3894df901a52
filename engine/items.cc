#include "engine/items.h"

#include <dirent.h>
#include <linux/limits.h>
#include <sys/stat.h>

#include <cstring>
#include <string_view>

#include "engine/format.h"
#include "engine/fs_impl.h"
#include "engine/xattr_item.h"

namespace pagefs {
namespace {

bool fail(const char** why, const char* reason) {
  *why = reason;
  return false;
}

bool known_file_type(uint32_t mode) {
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

bool known_dirent_type(uint8_t type) {
  switch (type) {
    case DT_REG:
    case DT_DIR:
    case DT_LNK:
    case DT_FIFO:
    case DT_SOCK:
    case DT_CHR:
    case DT_BLK:
      return true;
    default:
      return false;
  }
}

// Directory-entry and xattr keys carry the hash of their name (format.h).
bool cookie_matches(const Key& key, std::string_view name) {
  return key.off >> kCookieCollisionBits == name_hash(name.data(), name.size());
}

bool check_inode(const Key& key, std::span<const std::byte> value, const char** why) {
  if (key.off != 0) return fail(why, "inode key with a nonzero offset");
  if (value.size() != sizeof(InodeRecord)) return fail(why, "inode record of the wrong size");
  InodeRecord rec;
  std::memcpy(&rec, value.data(), sizeof rec);
  if (!known_file_type(rec.mode)) return fail(why, "inode of an unknown file type");
  if (rec.size > kMaxFileBytes) return fail(why, "inode size past the largest file");
  // readlink() reads the whole target at once.
  if (S_ISLNK(rec.mode) && rec.size >= PATH_MAX) return fail(why, "symlink longer than a path");
  if (rec.nlink > kLinkMax) return fail(why, "inode link count out of range");
  // An attribute this pagefs does not know might forbid what it would allow.
  if (rec.flags & ~kKnownInodeFlags) return fail(why, "inode with unknown attribute flags");
  return true;
}

bool check_xattr(const Key& key, std::span<const std::byte> value, const ItemLimits& limits,
                 const char** why) {
  XattrItem x;
  if (!XattrItem::decode(value, limits, &x, why)) return false;
  if (!cookie_matches(key, x.name)) return fail(why, "xattr name does not match its key");
  return true;
}

bool check_dirent(const Key& key, std::span<const std::byte> value, const char** why) {
  DirentValue d;
  if (value.size() < sizeof d) return fail(why, "directory entry too short");
  std::memcpy(&d, value.data(), sizeof d);
  if (d.name_len == 0 || value.size() != sizeof d + d.name_len) {
    return fail(why, "directory entry name length disagrees with the item's size");
  }
  std::string_view name(reinterpret_cast<const char*>(value.data()) + sizeof d, d.name_len);
  if (name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return fail(why, "directory entry with an invalid name");
  }
  if (!cookie_matches(key, name)) return fail(why, "directory entry name does not match its key");
  if (d.ino == 0) return fail(why, "directory entry pointing at inode 0");
  if (!known_dirent_type(d.type)) return fail(why, "directory entry of an unknown type");
  return true;
}

bool check_orphan(const Key& key, std::span<const std::byte> value, const char** why) {
  if (key.ino != 0 || key.off == 0 || !value.empty()) return fail(why, "malformed orphan item");
  return true;
}

}  // namespace

bool check_item(const Key& key, std::span<const std::byte> value, const ItemLimits& limits,
                const char** why) {
  if (key.kind != uint8_t(KeyKind::kOrphan) && key.ino == 0) return fail(why, "item of inode 0");
  switch (KeyKind(key.kind)) {
    case KeyKind::kInode:
      return check_inode(key, value, why);
    case KeyKind::kXattr:
      return check_xattr(key, value, limits, why);
    case KeyKind::kDirent:
      return check_dirent(key, value, why);
    case KeyKind::kExtent: {
      Extent e;
      return Extent::decode(key.off, value, limits, &e, why);
    }
    case KeyKind::kOrphan:
      return check_orphan(key, value, why);
  }
  return fail(why, "item of an unknown kind");
}

}  // namespace pagefs
