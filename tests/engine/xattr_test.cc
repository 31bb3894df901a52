// Extended attributes over the in-memory device: values inline and in data
// pages up to 64 KiB, many names per inode, the space their pages take and
// give back, the feature bit, and damage to a value's pages.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <set>
#include <string>

#include "engine/fault_device.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "engine/xattr_item.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

const Caller kUser{1000, 1000};

std::string value_of_size(size_t n, char seed) {
  std::string v(n, '\0');
  for (size_t i = 0; i < n; i++) v[i] = char(seed + i * 13 + i / 4096);
  return v;
}

// Compares values by length and first difference, not by printing 64 KiB.
::testing::AssertionResult same_value(const Result<std::string>& got, const std::string& want) {
  if (!got.ok()) return ::testing::AssertionFailure() << "error " << strerror(got.error());
  if (*got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got->size() && i < want.size() && (*got)[i] == want[i]) i++;
  return ::testing::AssertionFailure()
         << got->size() << " bytes, want " << want.size() << "; first difference at byte " << i;
}

class XattrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(64 << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
  }
  // Every test leaves an image fsck finds clean, unless it damaged it.
  void TearDown() override {
    if (!fs_ || damaged_) return;
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
    test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
    EXPECT_EQ(fsck.code, 0) << fsck.text;
  }
  void mount() {
    std::string msg;
    auto r =
        FileSystem::mount(std::make_unique<FaultDevice>(*dev_, 1), MountOptions{16 << 20}, &msg);
    ASSERT_TRUE(r.ok()) << msg;
    fs_ = std::move(r).value();
  }
  void unmount() {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
  }
  void remount() {
    unmount();
    mount();
  }
  InodeNo create(const std::string& name) {
    auto a = fs_->mknod(kRootInode, name, S_IFREG | 0644, 0, kUser);
    EXPECT_TRUE(a.ok()) << name;
    return InodeNo{a.ok() ? a->ino : 0};
  }
  uint64_t free_pages() {
    FileSystem::Impl& impl = fs_->internals_for_testing();
    std::shared_lock lock(impl.mu_);
    return impl.space_->free_pages_after_commit();
  }
  uint64_t incompat() {
    FileSystem::Impl& impl = fs_->internals_for_testing();
    std::shared_lock lock(impl.mu_);
    return impl.sb_->features_incompat;
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  bool damaged_ = false;
};

TEST_F(XattrTest, ValuesOfEverySizeUpTo64KiBRoundTripAndSurviveRemount) {
  InodeNo f = create("f");
  const size_t inline_max = max_inline_xattr_value(kDefaultPageSize, 8, true);  // "user.vN"
  const std::vector<size_t> sizes = {0,    1,    inline_max, inline_max + 1, 4095,
                                     4096, 4097, 20000,      65535,          65536};
  for (size_t i = 0; i < sizes.size(); i++) {
    std::string name = "user.v" + std::to_string(i % 10);
    ASSERT_TRUE(fs_->setxattr(f, name, value_of_size(sizes[i], char(i)), 0).ok()) << sizes[i];
  }
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < sizes.size(); i++) {
      EXPECT_TRUE(same_value(fs_->getxattr(f, "user.v" + std::to_string(i)),
                             value_of_size(sizes[i], char(i))))
          << sizes[i] << " bytes, pass " << pass;
    }
    remount();
  }
  EXPECT_EQ(fs_->setxattr(f, "user.too_big", std::string(65537, 'x'), 0).error(), E2BIG);
}

TEST_F(XattrTest, TheFeatureBitIsSetByTheFirstValueInPages) {
  InodeNo f = create("f");
  ASSERT_TRUE(fs_->setxattr(f, "user.small", std::string(900, 's'), 0).ok());
  remount();
  EXPECT_EQ(incompat() & kIncompatXattrPages, 0u) << "inline values need no feature";
  ASSERT_TRUE(fs_->setxattr(f, "user.large", std::string(5000, 'l'), 0).ok());
  EXPECT_NE(incompat() & kIncompatXattrPages, 0u);
  unmount();
  EXPECT_NE(test::superblock(*dev_).features_incompat & kIncompatXattrPages, 0u);
  EXPECT_NE(test::superblock(*dev_, 1).features_incompat & kIncompatXattrPages, 0u);
  mount();
}

TEST_F(XattrTest, ReplacingRemovingAndFreeingTheInodeGiveThePagesBack) {
  InodeNo f = create("f");
  ASSERT_TRUE(fs_->setxattr(f, "user.seed", "1", 0).ok());  // the leaf exists already
  const uint64_t start = free_pages();
  ASSERT_TRUE(fs_->setxattr(f, "user.big", value_of_size(65536, 'a'), 0).ok());
  EXPECT_EQ(free_pages(), start - 16);
  ASSERT_TRUE(fs_->setxattr(f, "user.big", value_of_size(9000, 'b'), 0).ok());
  EXPECT_EQ(free_pages(), start - 3);
  EXPECT_TRUE(same_value(fs_->getxattr(f, "user.big"), value_of_size(9000, 'b')));
  ASSERT_TRUE(fs_->setxattr(f, "user.big", "now inline", 0).ok());
  EXPECT_EQ(free_pages(), start);
  ASSERT_TRUE(fs_->setxattr(f, "user.big", value_of_size(30000, 'c'), 0).ok());
  ASSERT_TRUE(fs_->removexattr(f, "user.big").ok());
  EXPECT_EQ(free_pages(), start);
  EXPECT_EQ(fs_->getxattr(f, "user.big").error(), ENODATA);

  ASSERT_TRUE(fs_->setxattr(f, "user.big", value_of_size(65536, 'd'), 0).ok());
  ASSERT_TRUE(fs_->setxattr(f, "user.big2", value_of_size(40000, 'e'), 0).ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "f", kUser).ok());
  EXPECT_LT(free_pages(), start) << "an orphan keeps its xattrs";
  ASSERT_TRUE(fs_->release_inode(f).ok());
  EXPECT_GE(free_pages(), start) << "the freed inode's xattr pages are free again";
}

TEST_F(XattrTest, ManyAttributesAreAllListedAndReadBack) {
  InodeNo f = create("f");
  std::set<std::string> want;
  for (int i = 0; i < 300; i++) {
    std::string name = "user.attribute-" + std::to_string(i);
    size_t size = i % 10 == 0 ? 3000 + size_t(i) * 17 : size_t(i);
    ASSERT_TRUE(fs_->setxattr(f, name, value_of_size(size, char(i)), 0).ok()) << name;
    want.insert(name);
  }
  remount();
  auto names = fs_->listxattr(f);
  ASSERT_TRUE(names.ok());
  std::set<std::string> got;
  for (size_t at = 0; at < names->size();) {
    size_t end = names->find('\0', at);
    got.insert(names->substr(at, end - at));
    at = end + 1;
  }
  EXPECT_EQ(got, want);
  for (int i = 0; i < 300; i += 7) {
    size_t size = i % 10 == 0 ? 3000 + size_t(i) * 17 : size_t(i);
    EXPECT_TRUE(same_value(fs_->getxattr(f, "user.attribute-" + std::to_string(i)),
                           value_of_size(size, char(i))));
  }
}

// A value's page that fails its CRC is EIO, never other bytes.
TEST_F(XattrTest, ADamagedValuePageIsEio) {
  InodeNo f = create("f");
  const std::string value = value_of_size(10000, 'q');
  ASSERT_TRUE(fs_->setxattr(f, "user.v", value, 0).ok());
  unmount();
  damaged_ = true;
  Key key = Key::of(f.value, KeyKind::kXattr, name_hash("user.v", 6) << kCookieCollisionBits);
  auto item = test::value_of(*dev_, key);
  ASSERT_FALSE(item.empty());
  XattrItem x;
  const char* why = nullptr;
  ItemLimits limits{test::superblock(*dev_).data_start, test::superblock(*dev_).page_count,
                    kDefaultPageSize, true};
  ASSERT_TRUE(XattrItem::decode(item, limits, &x, &why)) << why;
  ASSERT_EQ(x.pages.size(), 3u);
  test::page_at(*dev_, x.pages[1].phys)[17] ^= std::byte{0x40};
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.v").error(), EIO);
  EXPECT_EQ(fs_->stats().checksum_errors, 1u);
  EXPECT_TRUE(fs_->listxattr(f).ok()) << "the names are still there";
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
  EXPECT_EQ(fsck.code, 4) << fsck.text;
}

// A page record naming a page outside the data region is refused when read.
TEST_F(XattrTest, APageRecordOutsideTheDataRegionIsEio) {
  InodeNo f = create("f");
  ASSERT_TRUE(fs_->setxattr(f, "user.v", value_of_size(5000, 'r'), 0).ok());
  unmount();
  damaged_ = true;
  Key key = Key::of(f.value, KeyKind::kXattr, name_hash("user.v", 6) << kCookieCollisionBits);
  auto item = test::value_of(*dev_, key);
  ASSERT_FALSE(item.empty());
  XattrPage page{2, 0};  // a journal page
  std::memcpy(item.data() + sizeof(XattrValue) + 6 + kXattrCrcBytes + sizeof(XattrPages), &page,
              sizeof page);
  test::restamp(*dev_, test::leaf_of(*dev_, key));
  mount();
  EXPECT_EQ(fs_->getxattr(f, "user.v").error(), EIO);
  EXPECT_EQ(fs_->removexattr(f, "user.v").error(), EIO);
}

// fsck holds a value's pages to the rules of file pages: one owner each, in
// the data region.
TEST_F(XattrTest, FsckReportsAValuePageSharedWithAFileOrOutOfRange) {
  InodeNo f = create("f");
  const std::string data(4096, 'd');
  ASSERT_TRUE(fs_->write(f, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(fs_->setxattr(f, "user.v", value_of_size(5000, 's'), 0).ok());
  unmount();
  damaged_ = true;
  const Key xkey =
      Key::of(f.value, KeyKind::kXattr, name_hash("user.v", 6) << kCookieCollisionBits);
  auto extent = test::value_of(*dev_, Key::of(f.value, KeyKind::kExtent, 0));
  ASSERT_FALSE(extent.empty());
  ExtentValue ev;
  std::memcpy(&ev, extent.data(), sizeof ev);
  const size_t entry = sizeof(XattrValue) + 6 + kXattrCrcBytes + sizeof(XattrPages);
  for (uint64_t phys : {ev.phys, test::superblock(*dev_).page_count + 3}) {
    auto item = test::value_of(*dev_, xkey);
    ASSERT_FALSE(item.empty());
    std::memcpy(item.data() + entry + offsetof(XattrPage, phys), &phys, sizeof phys);
    test::restamp(*dev_, test::leaf_of(*dev_, xkey));
    test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
    EXPECT_EQ(fsck.code, 4) << fsck.text;
    // The value claims the page first (xattrs come before extents in key
    // order): the extent is the one that gets a copy.
    const char* want =
        phys == ev.phys ? "shares pages with an extended attribute" : "outside the data region";
    EXPECT_NE(fsck.text.find(want), std::string::npos) << fsck.text;
  }
}

TEST_F(XattrTest, AFullDeviceRefusesALargeValueAndKeepsTheOldOne) {
  InodeNo f = create("f");
  ASSERT_TRUE(fs_->setxattr(f, "user.v", value_of_size(20000, 'o'), 0).ok());
  InodeNo filler = create("filler");
  std::string chunk(1 << 20, 'z');
  uint64_t off = 0;
  for (size_t size : {size_t(1) << 20, size_t(4096)}) {  // big steps, then page by page
    for (;;) {
      auto n = fs_->write(filler, off, chunk.data(), size);
      if (n.ok()) off += *n;
      if (!n.ok() || *n < size) break;
    }
  }
  const uint64_t before = free_pages();
  EXPECT_EQ(fs_->setxattr(f, "user.v", value_of_size(65536, 'n'), 0).error(), ENOSPC);
  EXPECT_TRUE(same_value(fs_->getxattr(f, "user.v"), value_of_size(20000, 'o')));
  EXPECT_EQ(free_pages(), before);
  ASSERT_TRUE(fs_->unlink(kRootInode, "filler", kUser).ok());
  ASSERT_TRUE(fs_->release_inode(filler).ok());
  EXPECT_TRUE(fs_->setxattr(f, "user.v", value_of_size(65536, 'n'), 0).ok());
}

}  // namespace
}  // namespace pagefs
