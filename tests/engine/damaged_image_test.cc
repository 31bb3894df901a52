// A mounted filesystem over images damaged behind its back: metadata whose
// checksum matches but whose contents are impossible (as a bug, a misdirected
// write or a crafted image leaves them). Every such value is EIO for the
// operation that meets it, one count in metadata_errors and one log line
// naming the page; never an abort, a hang, or wrong bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/device_ref.h"

namespace pagefs {
namespace {

using test::leaf_of;
using test::restamp;
using test::value_of;

std::mutex g_log_mu;
std::vector<std::string> g_log;

void keep_line(LogLevel, const char* line) {
  std::lock_guard lock(g_log_mu);
  g_log.push_back(line);
}

class DamagedImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
    set_log_sink(keep_line);
  }
  void TearDown() override {
    fs_.reset();
    set_log_sink(nullptr);
    g_log.clear();
  }

  void mount() {
    std::string msg;
    auto r =
        FileSystem::mount(std::make_unique<test::DeviceRef>(dev_), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(r.ok()) << msg;
    fs_ = std::move(r).value();
  }
  void unmount() {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
  }
  InodeNo create(const std::string& name, const std::string& data = "") {
    auto a = fs_->mknod(kRootInode, name, S_IFREG | 0644, 0, Caller{});
    EXPECT_TRUE(a.ok()) << name;
    if (!a.ok()) return InodeNo{};
    if (!data.empty()) {
      EXPECT_TRUE(fs_->write(InodeNo{a->ino}, 0, data.data(), data.size()).ok());
    }
    return InodeNo{a->ino};
  }
  // Files f0..f(n-1): enough of them make the tree two levels deep.
  void create_many(int n) {
    for (int i = 0; i < n; i++) create("f" + std::to_string(i));
  }
  // Log lines that mention `text`.
  size_t lines_with(const std::string& text) {
    std::lock_guard lock(g_log_mu);
    size_t n = 0;
    for (const std::string& l : g_log) n += l.find(text) != std::string::npos;
    return n;
  }

  MemDevice dev_{64 << 20};
  std::unique_ptr<FileSystem> fs_;
};

TEST_F(DamagedImageTest, MalformedNodeIsCountedAsMetadataErrorAndNamed) {
  create_many(200);
  InodeNo last{201};
  unmount();
  Key key = Key::of(last.value, KeyKind::kInode, 0);
  uint64_t leaf = leaf_of(dev_, key);
  ASSERT_NE(leaf, test::superblock(dev_).tree_root);
  // Two slots for one cell: the node is impossible, its checksum fine.
  Node node = test::node_at(dev_, leaf);
  ASSERT_GE(node.count(), 2);
  auto* slots = reinterpret_cast<uint16_t*>(test::page_at(dev_, leaf) + kSlotsOffset);
  slots[1] = slots[0];
  restamp(dev_, leaf);
  mount();
  EXPECT_EQ(fs_->getattr(last).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
  EXPECT_EQ(lines_with("page " + std::to_string(leaf)), 1u);
}

// ---- inode records ----------------------------------------------------------------

// Changes the inode record of `ino` on the unmounted device.
template <class Change>
void change_inode(MemDevice& dev, InodeNo ino, Change change) {
  Key key = Key::of(ino.value, KeyKind::kInode, 0);
  auto v = value_of(dev, key);
  ASSERT_EQ(v.size(), sizeof(InodeRecord));
  InodeRecord rec;
  std::memcpy(&rec, v.data(), sizeof rec);
  change(rec);
  std::memcpy(v.data(), &rec, sizeof rec);
  restamp(dev, leaf_of(dev, key));
}

TEST_F(DamagedImageTest, InodeOfUnknownFileTypeIsEio) {
  InodeNo f = create("a");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.mode = 0644; });
  mount();
  EXPECT_EQ(fs_->getattr(f).error(), EIO);
  EXPECT_EQ(fs_->lookup(kRootInode, "a").error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 2u);
  uint64_t leaf = leaf_of(dev_, Key::of(f.value, KeyKind::kInode, 0));
  EXPECT_EQ(lines_with("metadata damage at page " + std::to_string(leaf)), 2u);
}

// A flag this pagefs does not know might forbid what it would allow.
TEST_F(DamagedImageTest, InodeWithUnknownAttributeFlagsIsEioAndFsckReportsIt) {
  InodeNo f = create("a");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.flags = kInodeFlagAppend | 0x100; });
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(fsck.code, 4);
  EXPECT_NE(fsck.text.find("unknown attribute flags 0x100"), std::string::npos) << fsck.text;
  mount();
  EXPECT_EQ(fs_->getattr(f).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
}

TEST_F(DamagedImageTest, KnownAttributeFlagsAreCleanForFsck) {
  InodeNo f = create("a");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.flags = kKnownInodeFlags; });
  EXPECT_EQ(test::crash::run_fsck_overlay(dev_).code, 0);
  mount();
  EXPECT_EQ(fs_->getattr(f)->flags, kKnownInodeFlags);
}

// Any generation is one the engine can hand the kernel; one from a mount
// after the superblock's last means the counter went back, which fsck reports.
TEST_F(DamagedImageTest, GenerationAfterTheMountCountIsReportedByFsck) {
  InodeNo f = create("a");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.generation = 1000; });
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(fsck.code, 4);
  EXPECT_NE(fsck.text.find("generation 1000, after the superblock's mount_count"),
            std::string::npos)
      << fsck.text;
  change_inode(dev_, kRootInode, [](InodeRecord& r) { r.generation = 1; });
  fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_NE(fsck.text.find("root directory has generation 1"), std::string::npos) << fsck.text;
  mount();
  EXPECT_EQ(fs_->getattr(f)->generation, 1000u);
}

TEST_F(DamagedImageTest, InodeSizePastTheLargestFileIsEio) {
  InodeNo f = create("a", "data");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.size = 1ull << 60; });
  mount();
  EXPECT_EQ(fs_->getattr(f).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
}

TEST_F(DamagedImageTest, InodeWithAbsurdLinkCountIsEio) {
  InodeNo f = create("a");
  unmount();
  change_inode(dev_, f, [](InodeRecord& r) { r.nlink = 0xffffffff; });
  mount();
  EXPECT_EQ(fs_->getattr(f).error(), EIO);
}

// readlink sizes its buffer from the record: a huge size must not become a
// huge allocation (an uncaught std::bad_alloc).
TEST_F(DamagedImageTest, SymlinkLongerThanAPathIsEio) {
  auto l = fs_->symlink(kRootInode, "l", "target", Caller{});
  ASSERT_TRUE(l.ok());
  unmount();
  change_inode(dev_, InodeNo{l->ino}, [](InodeRecord& r) { r.size = 1ull << 50; });
  mount();
  EXPECT_EQ(fs_->readlink(InodeNo{l->ino}).error(), EIO);
}

// ---- directory entries -------------------------------------------------------------

uint64_t cookie_of(std::string_view name) {
  return name_hash(name.data(), name.size()) << kCookieCollisionBits;
}

// Changes the directory entry of `name` in the root directory.
template <class Change>
void change_dirent(MemDevice& dev, std::string_view name, Change change) {
  Key key = Key::of(kRootInode.value, KeyKind::kDirent, cookie_of(name));
  auto v = value_of(dev, key);
  ASSERT_EQ(v.size(), sizeof(DirentValue) + name.size());
  change(v);
  restamp(dev, leaf_of(dev, key));
}

DirentValue* dirent(std::span<std::byte> v) {
  return reinterpret_cast<DirentValue*>(v.data());
}

// Lists the root directory; the error of readdir, or 0.
int readdir_error(FileSystem& fs) {
  return fs.readdir(kRootInode, 0, [](const DirEntry&) { return true; }).error();
}

TEST_F(DamagedImageTest, DirentWhoseNameLengthDisagreesWithItsSizeIsEio) {
  create("abc");
  unmount();
  change_dirent(dev_, "abc", [](std::span<std::byte> v) { dirent(v)->name_len = 5; });
  mount();
  EXPECT_EQ(fs_->lookup(kRootInode, "abc").error(), EIO);
  EXPECT_EQ(readdir_error(*fs_), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 2u);
}

TEST_F(DamagedImageTest, DirentPointingAtInodeZeroIsEio) {
  create("abc");
  unmount();
  change_dirent(dev_, "abc", [](std::span<std::byte> v) { dirent(v)->ino = 0; });
  mount();
  EXPECT_EQ(fs_->lookup(kRootInode, "abc").error(), EIO);
}

TEST_F(DamagedImageTest, DirentOfUnknownTypeIsEio) {
  create("abc");
  unmount();
  change_dirent(dev_, "abc", [](std::span<std::byte> v) { dirent(v)->type = 99; });
  mount();
  EXPECT_EQ(readdir_error(*fs_), EIO);
}

// A name that is not the one its key was hashed from (or not a name at all)
// would be listed by readdir and never found by lookup.
TEST_F(DamagedImageTest, DirentWhoseNameDoesNotMatchItsKeyIsEio) {
  create("abc");
  create("xyz");
  unmount();
  change_dirent(dev_, "abc",
                [](std::span<std::byte> v) { v[sizeof(DirentValue)] = std::byte{'b'}; });
  change_dirent(dev_, "xyz",
                [](std::span<std::byte> v) { v[sizeof(DirentValue) + 1] = std::byte{'/'}; });
  mount();
  EXPECT_EQ(readdir_error(*fs_), EIO);
  EXPECT_EQ(fs_->lookup(kRootInode, "xyz").error(), EIO);
}

// ---- xattrs ------------------------------------------------------------------------

TEST_F(DamagedImageTest, XattrWithInconsistentSizesIsEioNotAbsent) {
  InodeNo f = create("a");
  ASSERT_TRUE(fs_->setxattr(f, "user.x", "hello", 0).ok());
  unmount();
  Key key = Key::of(f.value, KeyKind::kXattr, cookie_of("user.x"));
  auto v = value_of(dev_, key);
  ASSERT_FALSE(v.empty());
  XattrValue x;
  std::memcpy(&x, v.data(), sizeof x);
  x.value_len += 3;
  std::memcpy(v.data(), &x, sizeof x);
  restamp(dev_, leaf_of(dev_, key));
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.x").error(), EIO);
  EXPECT_EQ(fs_->listxattr(f).error(), EIO);
}

// Changes the value_bytes of the XattrPages record of `ino`'s xattr `name`
// by `delta`, the leaf's checksum recomputed.
void change_value_bytes(MemDevice& dev, InodeNo ino, const char* name, int delta) {
  Key key = Key::of(ino.value, KeyKind::kXattr, cookie_of(name));
  auto v = value_of(dev, key);
  XattrValue x;
  ASSERT_GE(v.size(), sizeof x);
  std::memcpy(&x, v.data(), sizeof x);
  ASSERT_TRUE(x.flags & kXattrInPages);
  std::byte* record = v.data() + sizeof x + x.name_len + (x.flags & kXattrCrc ? kXattrCrcBytes : 0);
  XattrPages pages;
  std::memcpy(&pages, record, sizeof pages);
  pages.value_bytes += delta;
  std::memcpy(record, &pages, sizeof pages);
  restamp(dev, leaf_of(dev, key));
}

// A value kept in pages whose record says it is one byte shorter: the page
// and its CRC are intact, so only the zeroed rest of the last page (and the
// value's own CRC32C) tell.
TEST_F(DamagedImageTest, PagedXattrShorterThanItsPagesSayIsEio) {
  InodeNo f = create("a");
  ASSERT_TRUE(fs_->setxattr(f, "user.big", std::string(5000, 'v'), 0).ok());
  unmount();
  change_value_bytes(dev_, f, "user.big", -1);
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.big").error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
}

// One byte longer: the extra byte is one of the zeros after the value, which
// every page check passes; the value's CRC32C in the item does not.
TEST_F(DamagedImageTest, PagedXattrLongerThanItsValueIsEio) {
  InodeNo f = create("a");
  ASSERT_TRUE(fs_->setxattr(f, "user.big", std::string(5000, 'v'), 0).ok());
  unmount();
  change_value_bytes(dev_, f, "user.big", +1);
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.big").error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_TRUE(fs_->removexattr(f, "user.big").ok()) << "a damaged value can still be removed";
  unmount();
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
}

// The flags of a value in pages cleared: without kXattrCrc the item is
// damage on this filesystem, instead of its record being read as the value.
TEST_F(DamagedImageTest, XattrRecordReadAsAnInlineValueIsEio) {
  InodeNo f = create("a");
  ASSERT_TRUE(fs_->setxattr(f, "user.big", std::string(5000, 'v'), 0).ok());
  unmount();
  Key key = Key::of(f.value, KeyKind::kXattr, cookie_of("user.big"));
  auto v = value_of(dev_, key);
  v[offsetof(XattrValue, flags)] = std::byte{0};
  restamp(dev_, leaf_of(dev_, key));
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.big").error(), EIO);
  EXPECT_EQ(fs_->listxattr(f).error(), EIO);
  unmount();
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(fsck.code, 4) << fsck.text;
}

// An inline value changed under a recomputed node checksum: EIO to read, and
// fsck says so, but the name is listed and can be removed.
TEST_F(DamagedImageTest, InlineXattrValueChangedIsEioAndRemovable) {
  InodeNo f = create("a");
  ASSERT_TRUE(fs_->setxattr(f, "user.x", "hello", 0).ok());
  unmount();
  Key key = Key::of(f.value, KeyKind::kXattr, cookie_of("user.x"));
  auto v = value_of(dev_, key);
  v[v.size() - 1] = std::byte{'O'};
  restamp(dev_, leaf_of(dev_, key));
  test::crash::FsckOutcome before = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(before.code, 4) << before.text;
  EXPECT_NE(before.text.find("fails its checksum"), std::string::npos) << before.text;
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.x").error(), EIO);
  EXPECT_TRUE(fs_->listxattr(f).ok());
  EXPECT_TRUE(fs_->removexattr(f, "user.x").ok());
  unmount();
  test::crash::FsckOutcome after = test::crash::run_fsck_overlay(dev_);
  EXPECT_EQ(after.code, 0) << after.text;
}

// An image made before kIncompatXattrCrc keeps its items without checksums,
// and new ones on it have none either.
TEST(XattrCrcCompat, ImagesWithoutTheFeatureKeepItemsWithoutChecksums) {
  MemDevice dev(64 << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{.xattr_crc = false}, &msg).ok()) << msg;
  ASSERT_EQ(test::superblock(dev).features_incompat & kIncompatXattrCrc, 0u);
  auto fs = FileSystem::mount(std::make_unique<FaultDevice>(dev, 1), MountOptions{8 << 20}, &msg);
  ASSERT_TRUE(fs.ok()) << msg;
  auto a = (*fs)->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  const std::string big(5000, 'b');
  ASSERT_TRUE((*fs)->setxattr(InodeNo{a->ino}, "user.s", "small", 0).ok());
  ASSERT_TRUE((*fs)->setxattr(InodeNo{a->ino}, "user.big", big, 0).ok());
  ASSERT_TRUE((*fs)->unmount().ok());
  fs->reset();
  for (const char* name : {"user.s", "user.big"}) {
    auto v = value_of(dev, Key::of(a->ino, KeyKind::kXattr, cookie_of(name)));
    XattrValue x;
    ASSERT_GE(v.size(), sizeof x);
    std::memcpy(&x, v.data(), sizeof x);
    EXPECT_EQ(x.flags & kXattrCrc, 0) << name;
  }
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(dev);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
  fs = FileSystem::mount(std::make_unique<FaultDevice>(dev, 1), MountOptions{8 << 20}, &msg);
  ASSERT_TRUE(fs.ok()) << msg;
  EXPECT_EQ(*(*fs)->getxattr(InodeNo{a->ino}, "user.big"), big);
  EXPECT_EQ(*(*fs)->getxattr(InodeNo{a->ino}, "user.s"), "small");
  EXPECT_TRUE((*fs)->unmount().ok());
}

// ---- extents -----------------------------------------------------------------------

// Changes the first extent of `ino`.
template <class Change>
void change_extent(MemDevice& dev, InodeNo ino, Change change) {
  Key key = Key::of(ino.value, KeyKind::kExtent, 0);
  auto v = value_of(dev, key);
  ASSERT_GE(v.size(), sizeof(ExtentValue));
  ExtentValue e;
  std::memcpy(&e, v.data(), sizeof e);
  change(e);
  std::memcpy(v.data(), &e, sizeof e);
  restamp(dev, leaf_of(dev, key));
}

TEST_F(DamagedImageTest, ExtentPastTheEndOfTheDeviceIsEio) {
  InodeNo f = create("a", std::string(4096, 'x'));
  unmount();
  uint64_t page_count = test::superblock(dev_).page_count;
  change_extent(dev_, f, [&](ExtentValue& e) { e.phys = page_count + 5; });
  mount();
  char buf[16];
  EXPECT_EQ(fs_->read(f, 0, sizeof buf, buf).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
}

// An extent over the journal would have unlink free journal pages into the
// allocator; it is refused when read, before anything is freed.
TEST_F(DamagedImageTest, ExtentOverTheJournalIsEioAndUnlinkFreesNothing) {
  InodeNo f = create("a", std::string(4096, 'x'));
  unmount();
  change_extent(dev_, f, [](ExtentValue& e) { e.phys = 5; });
  mount();
  char buf[16];
  EXPECT_EQ(fs_->read(f, 0, sizeof buf, buf).error(), EIO);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
  uint64_t free_before = fs_->stats().free_pages;
  ASSERT_TRUE(fs_->unlink(kRootInode, "a", Caller{}).ok());
  EXPECT_EQ(fs_->release_inode(f).error(), EIO);
  EXPECT_EQ(fs_->stats().free_pages, free_before);
}

TEST_F(DamagedImageTest, ExtentWithUnwrittenBitsPastItsLengthIsEio) {
  InodeNo f = create("a", std::string(4096, 'x'));
  unmount();
  change_extent(dev_, f, [](ExtentValue& e) { e.unwritten_mask = 0x2; });
  mount();
  char buf[16];
  EXPECT_EQ(fs_->read(f, 0, sizeof buf, buf).error(), EIO);
}

TEST_F(DamagedImageTest, ExtentWithNonzeroReservedFieldIsEio) {
  InodeNo f = create("a", std::string(4096, 'x'));
  unmount();
  change_extent(dev_, f, [](ExtentValue& e) { e.reserved = 1; });
  mount();
  char buf[16];
  EXPECT_EQ(fs_->read(f, 0, sizeof buf, buf).error(), EIO);
}

// An orphan that cannot be freed stays on the orphan list for fsck; the
// mount goes on.
TEST_F(DamagedImageTest, DamagedOrphanDoesNotPreventTheMount) {
  InodeNo f = create("a", std::string(4096, 'x'));
  ASSERT_TRUE(fs_->unlink(kRootInode, "a", Caller{}).ok());
  unmount();
  change_extent(dev_, f, [](ExtentValue& e) { e.phys = 5; });
  mount();
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_TRUE(fs_->mknod(kRootInode, "b", S_IFREG | 0644, 0, Caller{}).ok());
}

}  // namespace
}  // namespace pagefs
