// The on-disk format of pagefs: every structure that reaches the device.
//
// Shared by the engine, mkfs.pagefs and fsck.pagefs; docs/format.md describes
// the same bytes in prose with a worked example. All integers are fixed-width
// little-endian (the static_assert below pins the host byte order; a big-endian
// port would add byte swaps in the accessors, not change these layouts).
//
// Device layout, in pages of `page_size` bytes:
//
//   page 0                      primary superblock
//   page 1                      secondary superblock (same contents)
//   [journal_start, +journal_pages)   journal region (reserved at mkfs)
//   [bitmap_start, +bitmap_pages)     free-space bitmap, one bit per device page
//   [data_start, page_count)          B+tree nodes and file data pages
//
// Metadata pages (superblocks, bitmap pages, tree nodes) start with a
// PageHeader carrying their type, own page number, LSN and CRC32C. Data pages
// hold file bytes only; their CRC32Cs are kept in the extent records that point
// at them. No valid magic, type or page number is zero, so a zeroed page is
// never mistaken for a live one.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace pagefs {

static_assert(std::endian::native == std::endian::little,
              "the on-disk format is little-endian; add byte swaps for this host");

inline constexpr uint32_t kFormatVersion = 1;

// A commit (the superblock image it journals in page 0) and a full checkpoint
// raise the superblock's generation by this much; the values in between are
// for background checkpoints, which write the image of the last durable
// transaction L with L's generation - kGenerationStep + n for their n-th tail
// move since L (checkpointer.cc). Every superblock write so gets a generation
// of its own, and a copy left half written by a crash never ties with the
// other copy at a different state.
inline constexpr uint64_t kGenerationStep = 64;
inline constexpr uint32_t kMinPageSize = 4096;
inline constexpr uint32_t kMaxPageSize = 65536;
inline constexpr uint32_t kDefaultPageSize = 4096;
inline constexpr uint32_t kPageMagic = 0x53464750;  // "PGFS" in little-endian bytes
inline constexpr char kSuperMagic[8] = {'p', 'a', 'g', 'e', 'f', 's', '\0', '\x1a'};
inline constexpr uint32_t kNameMax = 255;
inline constexpr uint64_t kMaxFileBytes = 1ull << 52;  // 4 PiB: the largest file size
// Inode numbers stay below this (so no count of them wraps, and none is the
// kernel's or a tool's sentinel); a filesystem that reaches it makes no more.
inline constexpr uint64_t kMaxInodeNumber = 1ull << 62;
inline constexpr uint32_t kLinkMax = 65000;  // the most links an inode may have
inline constexpr uint32_t kMaxExtentPages = 32;
inline constexpr uint64_t kMinJournalPages = 256;  // mkfs never makes a smaller journal
// LSNs and sequence numbers stay below this, so sums of them never wrap.
inline constexpr uint64_t kMaxLsn = 1ull << 62;  // one bit each in ExtentValue::unwritten_mask

enum class PageType : uint16_t {
  kSuperblock = 1,
  kBitmap = 2,
  kTreeNode = 3,
  kJournal = 4,
};

// Feature flags. A mount refuses unknown incompat bits; ro_compat bits it does
// not know force a read-only mount; compat bits are informational. fsck.pagefs
// refuses unknown incompat and ro_compat bits. A feature bit is set in the
// superblock the first time something that needs it is written, so an image
// that never used a feature stays readable by versions without it.
//
// kIncompatXattrPages: some xattr values live in data pages named by an
// XattrPages record (see XattrValue); a version that does not know it would
// return the record as the value.
inline constexpr uint64_t kIncompatXattrPages = 1ull << 0;
// kIncompatXattrCrc: every xattr item carries the CRC32C of its value
// (kXattrCrc, see XattrValue). Set by mkfs, never later: with it, an item
// without the checksum is damage, so the bit cannot come to an image that
// already holds items without one. Images made before it keep them unchecked.
inline constexpr uint64_t kIncompatXattrCrc = 1ull << 1;
inline constexpr uint64_t kKnownIncompat = kIncompatXattrPages | kIncompatXattrCrc;
inline constexpr uint64_t kKnownRoCompat = 0;

// First bytes of every metadata page. 32 bytes.
struct PageHeader {
  uint32_t magic;     // kPageMagic
  uint16_t type;      // PageType
  uint16_t flags;     // reserved, zero
  uint32_t crc;       // CRC32C of the whole page, computed with this field zero
  uint32_t reserved;  // zero
  uint64_t page_no;   // the page's own number: catches misdirected writes
  uint64_t lsn;       // LSN of the last journal record that changed this page
};
static_assert(sizeof(PageHeader) == 32);
static_assert(offsetof(PageHeader, crc) == 8);
static_assert(offsetof(PageHeader, page_no) == 16);
static_assert(offsetof(PageHeader, lsn) == 24);

enum class FsState : uint32_t {
  kClean = 1,    // unmounted cleanly: every page is home
  kMounted = 2,  // mounted, or the daemon died while mounted
};

// Pages 0 and 1. The copy with a valid CRC and the highest generation wins.
struct Superblock {
  PageHeader header;            // type kSuperblock, page_no 0 or 1
  char magic[8];                // kSuperMagic
  uint32_t version;             // kFormatVersion
  uint32_t page_size;           // bytes per page: 4096..65536, a power of two
  uint64_t features_compat;     // informational feature bits
  uint64_t features_incompat;   // a mount refuses bits it does not know
  uint64_t features_ro_compat;  // unknown bits force a read-only mount
  uint64_t page_count;          // pages of the device used by this filesystem
  uint64_t journal_start;       // first page of the journal region
  uint64_t journal_pages;       // pages in the journal region
  uint64_t bitmap_start;        // first free-space bitmap page
  uint64_t bitmap_pages;        // number of bitmap pages
  uint64_t data_start;          // first page available to the allocator
  uint64_t tree_root;           // page number of the B+tree root node
  uint32_t tree_height;         // levels in the tree; 1 when the root is a leaf
  uint32_t state;               // FsState
  uint64_t next_inode;          // next inode number to hand out; never reused
  uint64_t free_pages;          // free pages at the last superblock write
  uint64_t inode_count;         // live inodes at the last superblock write
  uint64_t generation;          // incremented on every superblock write
  uint8_t uuid[16];             // random at mkfs
  char label[64];               // NUL-padded volume label
  int64_t mkfs_time;            // seconds since the epoch
  int64_t mount_time;           // last mount, seconds since the epoch
  int64_t write_time;           // last superblock write, seconds since the epoch
  uint64_t mount_count;         // read-write mounts since mkfs; never decreases (generations)
  uint64_t journal_reserved;    // zero
  uint64_t journal_tail;        // LSN of the oldest transaction recovery must replay
  uint64_t journal_sequence;    // sequence number of the transaction at journal_tail
};
static_assert(offsetof(Superblock, magic) == 32);
static_assert(offsetof(Superblock, page_count) == 72);
static_assert(offsetof(Superblock, tree_root) == 120);
static_assert(offsetof(Superblock, uuid) == 168);
static_assert(offsetof(Superblock, label) == 184);
static_assert(sizeof(Superblock) == 304);

// A bitmap page: PageHeader, then one bit per device page (bit i of byte j is
// page (bitmap index * kBitsPerBitmapPage) + 8j + i). 1 = in use.
inline constexpr uint64_t bitmap_bits_per_page(uint32_t page_size) {
  return uint64_t(page_size - sizeof(PageHeader)) * 8;
}

// ---------------------------------------------------------------------------
// The journal: a circular region of journal_pages pages. Positions in it are
// LSNs: byte offsets in an endless stream, so the record at LSN x lives at
// byte (journal_start * page_size + x % (journal_pages * page_size)). Every
// record starts on a page boundary.
//
// A transaction is two records written in order:
//   1. a TxnRecord: JournalHeader (kind kTxn), then `image_count`
//      JournalImage entries, then the images' bytes, padded to whole pages;
//   2. a commit record: one page, JournalHeader (kind kCommit), whose
//      `payload_crc` is the CRC32C of the whole TxnRecord (header included).
// A transaction counts only if both headers are valid, their sequence is the
// one expected next, their `lsn` is where they were found, and the commit's
// payload_crc matches the record: a torn or stale record is never replayed.

inline constexpr uint32_t kJournalMagic = 0x4c4e524a;  // "JRNL"

enum class JournalKind : uint16_t {
  kTxn = 1,
  kCommit = 2,
};

struct JournalHeader {
  uint32_t magic;          // kJournalMagic
  uint16_t kind;           // JournalKind
  uint16_t reserved;       // zero
  uint32_t header_crc;     // CRC32C of this header with this field zero
  uint32_t payload_crc;    // kTxn: CRC32C of the payload; kCommit: of the whole kTxn record
  uint64_t sequence;       // transaction number; consecutive transactions differ by one
  uint64_t lsn;            // the LSN this record was written at
  uint64_t payload_bytes;  // kTxn: bytes after this header (unpadded); kCommit: record bytes
  uint32_t image_count;    // kTxn: JournalImage entries
  uint32_t reserved2;      // zero
};
static_assert(sizeof(JournalHeader) == 48);

// One page image in a transaction record.
struct JournalImage {
  uint64_t page_no;       // home location of the page
  uint32_t stored_bytes;  // bytes of the image as stored
  uint32_t flags;         // kImageZstd: stored bytes are a zstd frame of page_size bytes
};
static_assert(sizeof(JournalImage) == 16);
inline constexpr uint32_t kImageZstd = 1;

// ---------------------------------------------------------------------------
// B+tree nodes. One tree holds every item of the filesystem, ordered by Key.
//
// A node is a slotted page: PageHeader, NodeHeader, an array of `count` uint16
// slot offsets sorted by key, free space, and cells packed at the end of the
// page. A cell is a packed DiskKey, a uint16 value length and the value bytes.
// In a leaf the value is the item; in an internal node it is the child's page
// number (8 bytes) and the key is the smallest key that child may hold (the
// first internal key is ignored: it stands for minus infinity).

struct NodeHeader {
  uint16_t count;       // number of cells
  uint16_t level;       // 0 = leaf
  uint16_t cell_start;  // page offset of the lowest cell byte
  uint16_t reserved0;   // zero
  uint32_t reserved1;   // zero
  uint32_t reserved2;   // zero
};
static_assert(sizeof(NodeHeader) == 16);
inline constexpr size_t kNodeHeaderOffset = sizeof(PageHeader);
// Levels in a tree: a node's level is below this, and so is tree_height - 1.
// Ample: a tree of 4 KiB nodes reaches 8 levels only past 10^15 items.
inline constexpr uint32_t kMaxTreeHeight = 32;
inline constexpr size_t kSlotsOffset = sizeof(PageHeader) + sizeof(NodeHeader);

enum class KeyKind : uint8_t {
  kInode = 1,   // (ino, kInode, 0)             -> InodeRecord
  kXattr = 2,   // (ino, kXattr, name cookie)   -> XattrValue
  kDirent = 3,  // (dir, kDirent, name cookie)  -> DirentValue
  kExtent = 4,  // (ino, kExtent, file page)    -> ExtentValue
  kOrphan = 5,  // (0, kOrphan, ino)            -> empty: unlinked but still open
};

// A key as stored in a cell: 17 packed bytes.
struct __attribute__((packed)) DiskKey {
  uint64_t ino;  // inode the item belongs to (0 for the orphan list)
  uint8_t kind;  // KeyKind
  uint64_t off;  // kind-specific: name cookie, file page index, orphan inode
};
static_assert(sizeof(DiskKey) == 17);
inline constexpr size_t kCellOverhead = sizeof(DiskKey) + sizeof(uint16_t);

// Value of (ino, kInode, 0).
struct InodeRecord {
  uint32_t mode;         // file type and permission bits, as st_mode
  uint32_t uid;          // owner
  uint32_t gid;          // group
  uint32_t nlink;        // hard links (directories: 2 + subdirectories)
  uint64_t size;         // bytes (directories: number of entries)
  uint64_t rdev;         // device number of character and block device nodes
  uint64_t parent;       // directories: inode of the parent; others: zero
  uint64_t blocks;       // device pages allocated to the file
  int64_t atime_sec;     // last access
  int64_t mtime_sec;     // last modification of the contents
  int64_t ctime_sec;     // last change of the inode
  int64_t crtime_sec;    // creation
  uint32_t atime_nsec;   //
  uint32_t mtime_nsec;   //
  uint32_t ctime_nsec;   //
  uint32_t crtime_nsec;  //
  uint32_t flags;        // kInodeFlag* bits (chattr attributes); no others
  uint32_t generation;   // inode_generation() of the mount that made it; 0: before generations
};
static_assert(sizeof(InodeRecord) == 104);
static_assert(offsetof(InodeRecord, flags) == 96);
static_assert(offsetof(InodeRecord, generation) == 100);

// InodeRecord::flags: file attributes as chattr(1) sets them, in the
// numbering of FS_IOC_GETFLAGS (<linux/fs.h>), so no translation is needed.
inline constexpr uint32_t kInodeFlagImmutable = 0x10;  // FS_IMMUTABLE_FL: no change at all
inline constexpr uint32_t kInodeFlagAppend = 0x20;     // FS_APPEND_FL: data only appended
inline constexpr uint32_t kInodeFlagNoDump = 0x40;     // FS_NODUMP_FL: for dump(8); kept only
inline constexpr uint32_t kInodeFlagNoAtime = 0x80;    // FS_NOATIME_FL: reads keep atime
inline constexpr uint32_t kKnownInodeFlags =
    kInodeFlagImmutable | kInodeFlagAppend | kInodeFlagNoDump | kInodeFlagNoAtime;

// The generation of an inode made while the superblock's mount_count is
// `mount_count`. Each read-write mount increments mount_count durably before
// it makes any inode, and hands an inode number out at most once, so
// (number, generation) names one inode for good, even when a crash or a
// repair lets a number be used again (docs/format.md, "Generations"). 1
// stands in for a multiple of 2^32. 0 is the root's (the kernel requires
// it; mkfs makes no other inode) and that of inodes made before generations
// were kept.
inline constexpr uint32_t inode_generation(uint64_t mount_count) {
  uint32_t g = static_cast<uint32_t>(mount_count);
  return g != 0 ? g : 1;
}

// Value of (dir, kDirent, cookie). The cookie is the name's hash in the upper
// bits and a collision counter in the low 8 bits; it doubles as the readdir
// offset, so offsets stay stable while other entries come and go.
struct DirentValue {
  uint64_t ino;      // the entry's inode
  uint8_t type;      // DT_REG, DT_DIR, ... as in <dirent.h>
  uint8_t name_len;  // 1..255
  // followed by name_len bytes of name, no terminator
} __attribute__((packed));
static_assert(sizeof(DirentValue) == 10);

// Value of (ino, kExtent, first file page): `pages` consecutive file pages
// stored in consecutive device pages starting at `phys`. Each page has its
// CRC32C here. A page whose unwritten bit is set is allocated but reads as
// zeros (fallocate), and its CRC is not checked.
struct ExtentValue {
  uint64_t phys;            // first device page
  uint16_t pages;           // 1..kMaxExtentPages
  uint16_t reserved;        // zero
  uint32_t unwritten_mask;  // bit i set: page i is allocated but unwritten
  // followed by `pages` uint32 CRC32Cs
};
static_assert(sizeof(ExtentValue) == 16);
inline constexpr size_t extent_value_size(uint32_t pages) {
  return 16 + 4 * size_t(pages);
}

// Value of (ino, kXattr, cookie); cookie as for directory entries. A value
// that fits in the cell follows the name ("inline"); a larger one lives in data
// pages, and an XattrPages record naming them follows the name instead.
//
// With kXattrCrc (which kIncompatXattrCrc makes mandatory, and which is
// refused without it), the first 4 bytes after the name are the CRC32C of the
// whole value, inline or in pages, and value_len counts them: the node's
// checksum covers the item, this one covers what the item says the value is.
struct XattrValue {
  uint8_t name_len;    // 1..255
  uint8_t flags;       // kXattrInPages, kXattrCrc
  uint16_t value_len;  // bytes after the name: [CRC32C,] the value or the XattrPages record
  // followed by the name, then value_len bytes
};
static_assert(sizeof(XattrValue) == 4);
inline constexpr uint8_t kXattrInPages = 1;  // XattrValue::flags; needs kIncompatXattrPages
inline constexpr uint8_t kXattrCrc = 2;      // XattrValue::flags; kIncompatXattrCrc
inline constexpr size_t kXattrCrcBytes = 4;

// The largest xattr value, as Linux's XATTR_SIZE_MAX.
inline constexpr uint32_t kMaxXattrValue = 65536;

// Where an xattr value too large for its cell lives: `pages` data pages, in
// order, each named with the CRC32C of all its page_size bytes (as extents
// name file pages). The value is the first value_bytes bytes of their
// concatenation; the rest of the last page is zero. The pages belong to this
// item alone; replacing or removing the value frees them.
struct XattrPages {
  uint32_t value_bytes;  // 1..kMaxXattrValue
  uint16_t pages;        // ceil(value_bytes / page_size)
  uint16_t reserved;     // zero
  // followed by `pages` XattrPage entries
};
static_assert(sizeof(XattrPages) == 8);

struct __attribute__((packed)) XattrPage {
  uint64_t phys;  // device page, in the data region
  uint32_t crc;   // CRC32C of the whole page
};
static_assert(sizeof(XattrPage) == 12);
inline constexpr size_t xattr_pages_size(uint32_t pages) {
  return sizeof(XattrPages) + sizeof(XattrPage) * size_t(pages);
}

// The hash part of a directory-entry or xattr cookie: FNV-1a 64 of the name,
// cut to 54 bits, plus one so it is never zero. A cookie is
// (name_hash(name) << 8) | n, where n (0..255) tells colliding names apart, so
// every cookie is at least 256 and below 2^63 (a valid off_t).
inline constexpr uint64_t name_hash(const char* name, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= static_cast<unsigned char>(name[i]);
    h *= 0x100000001b3ull;
  }
  return (h & ((1ull << 54) - 1)) + 1;
}
inline constexpr uint64_t kCookieCollisionBits = 8;

// Largest value a leaf cell may hold: four cells always fit in a node.
inline constexpr size_t max_value_size(uint32_t page_size) {
  return (page_size - kSlotsOffset) / 4 - kCellOverhead - sizeof(uint16_t);
}

}  // namespace pagefs
