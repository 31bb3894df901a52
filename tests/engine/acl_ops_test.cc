// POSIX ACLs in the engine, over the in-memory device: setting an access ACL
// sets the mode, chmod rewrites the ACL, new inodes inherit their directory's
// default ACL instead of taking the umask, bad values are refused, and a
// damaged stored ACL is EIO.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "engine/posix_acl.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

using E = PosixAcl::Entry;
constexpr uint32_t kNoId = UINT32_MAX;
const Caller kUser{1000, 1000, 022};

std::string acl(const std::vector<E>& entries) {
  std::string v(4 + 8 * entries.size(), '\0');
  const uint32_t version = 2;
  std::memcpy(v.data(), &version, 4);
  for (size_t i = 0; i < entries.size(); i++) {
    std::memcpy(v.data() + 4 + 8 * i, &entries[i].tag, 2);
    std::memcpy(v.data() + 6 + 8 * i, &entries[i].perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &entries[i].id, 4);
  }
  return v;
}

// u::rwx,u:2000:rwx,g::r-x,m::<mask>,o::<other>
std::string named_user_acl(uint16_t mask, uint16_t other) {
  return acl({{PosixAcl::kUserObj, 7, kNoId},
              {PosixAcl::kUser, 7, 2000},
              {PosixAcl::kGroupObj, 5, kNoId},
              {PosixAcl::kMask, mask, kNoId},
              {PosixAcl::kOther, other, kNoId}});
}

class AclOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(64 << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
  }
  void TearDown() override {
    if (!fs_ || damaged_) return;
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
    test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
    EXPECT_EQ(fsck.code, 0) << fsck.text;
  }
  void mount(bool posix_acl = true) {
    std::string msg;
    MountOptions options{16 << 20};
    options.posix_acl = posix_acl;
    auto r = FileSystem::mount(std::make_unique<FaultDevice>(*dev_, 1), options, &msg);
    ASSERT_TRUE(r.ok()) << msg;
    fs_ = std::move(r).value();
  }
  void remount(bool posix_acl = true) {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
    mount(posix_acl);
  }
  uint32_t mode_of(InodeNo ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->mode : 0;
  }
  Result<PosixAcl> stored(InodeNo ino, std::string_view name) {
    PAGEFS_ASSIGN(std::string v, fs_->getxattr(ino, name));
    return PosixAcl::parse(v);
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  bool damaged_ = false;
};

uint16_t perm_of(const PosixAcl& a, uint16_t tag) {
  for (const E& e : a.entries()) {
    if (e.tag == tag) return e.perm;
  }
  return 0xffff;
}

TEST_F(AclOpsTest, AnAccessAclSetsTheModeAndIsStored) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 0600, 0, kUser)->ino};
  const std::string value = named_user_acl(5, 4);
  ASSERT_TRUE(fs_->setxattr(f, kAclAccessXattr, value, 0).ok());
  EXPECT_EQ(mode_of(f), uint32_t(S_IFREG | 0754)) << "group bits from the mask";
  remount();
  auto got = fs_->getxattr(f, kAclAccessXattr);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, value);
}

TEST_F(AclOpsTest, AnAclTheModeSaysIsNotStoredButSetsTheMode) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 0600, 0, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(f, kAclAccessXattr, named_user_acl(7, 0), 0).ok());
  ASSERT_TRUE(fs_->setxattr(f, kAclAccessXattr, PosixAcl::from_mode(0751).encode(), 0).ok());
  EXPECT_EQ(mode_of(f), uint32_t(S_IFREG | 0751));
  EXPECT_EQ(fs_->getxattr(f, kAclAccessXattr).error(), ENODATA) << "the old ACL went too";
}

TEST_F(AclOpsTest, MalformedAclsAreEinvalAndChangeNothing) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 0640, 0, kUser)->ino};
  const std::string missing_mask = acl({{PosixAcl::kUserObj, 7, kNoId},
                                        {PosixAcl::kUser, 7, 2000},
                                        {PosixAcl::kGroupObj, 5, kNoId},
                                        {PosixAcl::kOther, 0, kNoId}});
  for (const std::string& bad : {std::string("junk"), missing_mask}) {
    EXPECT_EQ(fs_->setxattr(f, kAclAccessXattr, bad, 0).error(), EINVAL);
    EXPECT_EQ(fs_->setxattr(kRootInode, kAclDefaultXattr, bad, 0).error(), EINVAL);
  }
  EXPECT_EQ(mode_of(f), uint32_t(S_IFREG | 0640));
  EXPECT_EQ(fs_->getxattr(f, kAclAccessXattr).error(), ENODATA);
}

TEST_F(AclOpsTest, ADefaultAclIsForDirectoriesOnly) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 0640, 0, kUser)->ino};
  EXPECT_EQ(fs_->setxattr(f, kAclDefaultXattr, named_user_acl(7, 5), 0).error(), EACCES);
}

TEST_F(AclOpsTest, SettingAnAccessAclClearsSetgidWhenAsked) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 02750, 0, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(f, kAclAccessXattr, named_user_acl(5, 0), 0, S_ISGID).ok());
  EXPECT_EQ(mode_of(f), uint32_t(S_IFREG | 0750));
  InodeNo g{fs_->mknod(kRootInode, "g", S_IFREG | 02750, 0, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(g, kAclAccessXattr, named_user_acl(5, 0), 0).ok());
  EXPECT_EQ(mode_of(g), uint32_t(S_IFREG | 02750));
}

TEST_F(AclOpsTest, ChmodKeepsTheMaskInStepAndTheNamedEntries) {
  InodeNo f{fs_->mknod(kRootInode, "f", S_IFREG | 0600, 0, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(f, kAclAccessXattr, named_user_acl(7, 5), 0).ok());
  SetAttr chmod;
  chmod.set_mode = true;
  chmod.mode = 0640;
  ASSERT_TRUE(fs_->setattr(f, chmod).ok());
  remount();
  auto a = stored(f, kAclAccessXattr);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(perm_of(*a, PosixAcl::kUserObj), 6);
  EXPECT_EQ(perm_of(*a, PosixAcl::kMask), 4);
  EXPECT_EQ(perm_of(*a, PosixAcl::kGroupObj), 5) << "under a mask, chmod leaves the group entry";
  EXPECT_EQ(perm_of(*a, PosixAcl::kOther), 0);
  EXPECT_EQ(perm_of(*a, PosixAcl::kUser), 7);
  EXPECT_EQ(mode_of(f), uint32_t(S_IFREG | 0640));
}

TEST_F(AclOpsTest, NewInodesInheritTheDefaultAclAndIgnoreTheUmask) {
  InodeNo d{fs_->mkdir(kRootInode, "d", 0755, kUser)->ino};
  const std::string dflt = named_user_acl(7, 5);
  ASSERT_TRUE(fs_->setxattr(d, kAclDefaultXattr, dflt, 0).ok());
  const Caller strict{1000, 1000, 077};

  auto f = fs_->mknod(d, "f", S_IFREG | 0666, 0, strict);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mode, uint32_t(S_IFREG | 0664)) << "umask 077 ignored; other masked to r--";
  auto fa = stored(InodeNo{f->ino}, kAclAccessXattr);
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(perm_of(*fa, PosixAcl::kUser), 7);
  EXPECT_EQ(perm_of(*fa, PosixAcl::kMask), 6);
  EXPECT_EQ(fs_->getxattr(InodeNo{f->ino}, kAclDefaultXattr).error(), ENODATA);

  auto sub = fs_->mkdir(d, "sub", 0777, strict);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->mode, uint32_t(S_IFDIR | 0775));
  auto sd = fs_->getxattr(InodeNo{sub->ino}, kAclDefaultXattr);
  ASSERT_TRUE(sd.ok());
  EXPECT_EQ(*sd, dflt) << "a new directory's default ACL is its parent's";
  ASSERT_TRUE(stored(InodeNo{sub->ino}, kAclAccessXattr).ok());

  auto deeper = fs_->mknod(InodeNo{sub->ino}, "g", S_IFREG | 0600, 0, strict);
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(deeper->mode, uint32_t(S_IFREG | 0600)) << "the mode asked for masks the ACL";

  auto link = fs_->symlink(d, "l", "f", strict);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->mode, uint32_t(S_IFLNK | 0777));
  EXPECT_EQ(fs_->getxattr(InodeNo{link->ino}, kAclAccessXattr).error(), ENODATA);
}

TEST_F(AclOpsTest, WithoutADefaultAclTheUmaskApplies) {
  auto f = fs_->mknod(kRootInode, "f", S_IFREG | 0666, 0, Caller{1000, 1000, 027});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mode, uint32_t(S_IFREG | 0640));
  auto d = fs_->mkdir(kRootInode, "d", 0777, Caller{1000, 1000, 002});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->mode, uint32_t(S_IFDIR | 0775));
  EXPECT_EQ(fs_->getxattr(InodeNo{f->ino}, kAclAccessXattr).error(), ENODATA);
}

TEST_F(AclOpsTest, WithAclsOffTheNamesAreRefusedAndNothingIsInherited) {
  InodeNo d{fs_->mkdir(kRootInode, "d", 0755, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(d, kAclDefaultXattr, named_user_acl(7, 5), 0).ok());
  remount(/*posix_acl=*/false);
  EXPECT_EQ(fs_->setxattr(d, kAclAccessXattr, named_user_acl(7, 5), 0).error(), EOPNOTSUPP);
  EXPECT_EQ(fs_->getxattr(d, kAclDefaultXattr).error(), EOPNOTSUPP);
  EXPECT_EQ(fs_->removexattr(d, kAclDefaultXattr).error(), EOPNOTSUPP);
  auto f = fs_->mknod(d, "f", S_IFREG | 0666, 0, kUser);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mode, uint32_t(S_IFREG | 0644)) << "the umask, not the default ACL";
  remount();
  EXPECT_EQ(fs_->getxattr(InodeNo{f->ino}, kAclAccessXattr).error(), ENODATA);
}

// An ACL larger than a tree cell lives in data pages like any large value,
// and chmod and inheritance handle it there.
TEST_F(AclOpsTest, AnAclOfManyEntriesWorksFromDataPages) {
  std::vector<E> entries = {{PosixAcl::kUserObj, 7, kNoId}};
  for (uint32_t i = 0; i < 500; i++) entries.push_back(E{PosixAcl::kUser, 5, 3000 + i});
  entries.insert(
      entries.end(),
      {{PosixAcl::kGroupObj, 5, kNoId}, {PosixAcl::kMask, 7, kNoId}, {PosixAcl::kOther, 0, kNoId}});
  const std::string big = acl(entries);
  ASSERT_GT(big.size(), 4000u);
  InodeNo d{fs_->mkdir(kRootInode, "d", 0755, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(d, kAclDefaultXattr, big, 0).ok());
  ASSERT_TRUE(fs_->setxattr(d, kAclAccessXattr, big, 0).ok());
  SetAttr chmod;
  chmod.set_mode = true;
  chmod.mode = 0710;
  ASSERT_TRUE(fs_->setattr(d, chmod).ok());
  auto f = fs_->mknod(d, "f", S_IFREG | 0640, 0, kUser);
  ASSERT_TRUE(f.ok());
  remount();
  auto da = stored(d, kAclAccessXattr);
  ASSERT_TRUE(da.ok());
  EXPECT_EQ(perm_of(*da, PosixAcl::kMask), 1);
  EXPECT_EQ(da->entries().size(), entries.size());
  auto fa = stored(InodeNo{f->ino}, kAclAccessXattr);
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(perm_of(*fa, PosixAcl::kMask), 4);
  EXPECT_EQ(fa->entries().size(), entries.size());
}

// A default ACL whose bytes are wrong (with a good page checksum) is metadata
// damage: creating in that directory fails with EIO and creates nothing, and
// reading it is EIO.
TEST_F(AclOpsTest, ADamagedDefaultAclIsEioForCreation) {
  InodeNo d{fs_->mkdir(kRootInode, "d", 0755, kUser)->ino};
  ASSERT_TRUE(fs_->setxattr(d, kAclDefaultXattr, named_user_acl(7, 5), 0).ok());
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  damaged_ = true;
  const std::string_view name = kAclDefaultXattr;
  Key key = Key::of(d.value, KeyKind::kXattr,
                    name_hash(name.data(), name.size()) << kCookieCollisionBits);
  auto item = test::value_of(*dev_, key);
  ASSERT_FALSE(item.empty());
  item[sizeof(XattrValue) + name.size() + kXattrCrcBytes] = std::byte{9};  // the ACL's version
  test::restamp(*dev_, test::leaf_of(*dev_, key));
  mount();
  EXPECT_EQ(fs_->mknod(d, "f", S_IFREG | 0644, 0, kUser).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_EQ(fs_->lookup(d, "f").error(), ENOENT);
  EXPECT_EQ(fs_->getxattr(d, kAclDefaultXattr).error(), EIO) << "never handed out as an ACL";
  EXPECT_EQ(fs_->stats().metadata_errors, 2u);
  EXPECT_TRUE(fs_->removexattr(d, kAclDefaultXattr).ok()) << "the damaged ACL can be removed";
  EXPECT_TRUE(fs_->mknod(d, "f", S_IFREG | 0644, 0, kUser).ok());
}

}  // namespace
}  // namespace pagefs
