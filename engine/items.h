// Items: the checks a leaf item passes before the tree hands it out.
//
// Every item a lookup or a scan of the filesystem's tree returns goes through
// check_item() first (FileSystem installs it with Btree::set_item_check), so
// the code that decodes items may rely on their shape:
//
//   inode   value exactly an InodeRecord; a known file type; size at most
//           kMaxFileBytes (a symlink's below PATH_MAX); nlink at most kLinkMax;
//           no attribute flags but kKnownInodeFlags (any generation is valid)
//   xattr   see XattrItem::decode: name of 1..255 bytes and an inline value
//           or a page record, exactly filling the item; known flags; pages
//           in the data region; the key's cookie hashed from the name
//   dirent  name_len matching the item's size; a name of 1..255 bytes with no
//           '/' or NUL that is not "." or ".."; a nonzero inode; a known
//           d_type; the key's cookie hashed from the name
//   extent  see Extent::decode: inside the data region, 1..32 pages,
//           no unwritten bits past them, reserved zero, exact size
//   orphan  key (0, kOrphan, ino) with ino nonzero, and no value
//
// Every item but an orphan belongs to a nonzero inode. A failed check is
// metadata damage: the tree reports it with the leaf's page number and the
// operation gets EIO.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/key.h"

namespace pagefs {

// What items may point at, fixed at mount.
struct ItemLimits {
  uint64_t data_start = 0;  // extents lie in [data_start, page_count)
  uint64_t page_count = 0;
  uint32_t page_size = 0;
  bool xattr_crc = false;  // kIncompatXattrCrc: every xattr item carries its value's CRC32C
};

// True if the item is well formed; otherwise false with the reason in `why`.
bool check_item(const Key& key, std::span<const std::byte> value, const ItemLimits& limits,
                const char** why);

}  // namespace pagefs
