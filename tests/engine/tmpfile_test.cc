// Files with no name (FileSystem::tmpfile, for O_TMPFILE) and the link that
// may give them their first.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "engine/format.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

using test::EngineFsTest;

const Caller kUser{1000, 1000};

class TmpfileTest : public EngineFsTest {
 protected:
  size_t entries(InodeNo dir) {
    size_t n = 0;
    EXPECT_TRUE(fs_->readdir(dir, 0, [&](const DirEntry&) { return ++n, true; }).ok());
    return n;
  }
};

TEST_F(TmpfileTest, TmpfileHasNoNameAndIsFreedWhenTheKernelLetsGo) {
  uint64_t free_before = fs_->stats().free_pages;
  auto t = fs_->tmpfile(kRootInode, 0640, kUser, Hold::kYes);
  ASSERT_TRUE(t.ok()) << std::strerror(t.error());
  EXPECT_EQ(t->mode, uint32_t(S_IFREG | 0640));
  EXPECT_EQ(t->nlink, 0u);
  EXPECT_EQ(t->uid, kUser.uid);
  EXPECT_NE(t->generation, 0u);
  EXPECT_EQ(entries(kRootInode), 0u);
  InodeNo ino{t->ino};
  std::string data(100000, 'd');
  ASSERT_EQ(*fs_->write(ino, 0, data.data(), data.size()), data.size());
  EXPECT_EQ(fs_->lookup(ino, ".").error(), ENOENT);  // no handle reaches it
  ASSERT_TRUE(fs_->forget(ino, 1).ok());
  EXPECT_EQ(fs_->getattr(ino).error(), ENOENT);
  EXPECT_EQ(fs_->stats().free_pages, free_before);
}

TEST_F(TmpfileTest, LinkGivesATmpfileItsFirstName) {
  InodeNo d = mkdir(kRootInode, "d");
  auto t = fs_->tmpfile(d, 0600, kUser, Hold::kYes);
  ASSERT_TRUE(t.ok());
  InodeNo ino{t->ino};
  ASSERT_EQ(*fs_->write(ino, 0, "kept", 4), 4u);
  auto linked = fs_->link(ino, d, "named");
  ASSERT_TRUE(linked.ok()) << std::strerror(linked.error());
  EXPECT_EQ(linked->nlink, 1u);
  EXPECT_EQ(fs_->getattr(d)->size, 1u);
  ASSERT_TRUE(fs_->forget(ino, 1).ok());
  EXPECT_TRUE(fs_->getattr(ino).ok());  // named now: the last reference does not free it
  remount();                            // nor does the mount's purge of orphans
  auto a = fs_->lookup(d, "named");
  ASSERT_TRUE(a.ok());
  char buf[4];
  EXPECT_EQ(*fs_->read(InodeNo{a->ino}, 0, 4, buf), 4u);
  EXPECT_EQ(std::string(buf, 4), "kept");
}

TEST_F(TmpfileTest, AFileWhoseLastNameWentIsNotLinkedAgain) {
  InodeNo f = create(kRootInode, "f");
  ASSERT_TRUE(fs_->lookup(kRootInode, "f", Hold::kYes).ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "f", kUser).ok());
  EXPECT_EQ(fs_->link(f, kRootInode, "again").error(), ENOENT);
  // Nor a tmpfile that had a name and lost it.
  auto t = fs_->tmpfile(kRootInode, 0600, kUser, Hold::kYes);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(fs_->link(InodeNo{t->ino}, kRootInode, "t").ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "t", kUser).ok());
  EXPECT_EQ(fs_->link(InodeNo{t->ino}, kRootInode, "t2").error(), ENOENT);
  ASSERT_TRUE(fs_->forget(f, 1).ok());
  ASSERT_TRUE(fs_->forget(InodeNo{t->ino}, 1).ok());
}

TEST_F(TmpfileTest, ATmpfileLeftAtUnmountIsFreedByTheNextMount) {
  auto t = fs_->tmpfile(kRootInode, 0600, kUser, Hold::kYes);
  ASSERT_TRUE(t.ok());
  std::string data(50000, 'x');
  ASSERT_TRUE(fs_->write(InodeNo{t->ino}, 0, data.data(), data.size()).ok());
  remount();
  EXPECT_EQ(fs_->getattr(InodeNo{t->ino}).error(), ENOENT);
}

TEST_F(TmpfileTest, TmpfileFollowsTheDirectorysRules) {
  InodeNo d = mkdir(kRootInode, "d");
  SetAttr c;
  c.set_mode = c.set_gid = true;
  c.mode = S_ISGID | 0775;
  c.gid = 4242;
  ASSERT_TRUE(fs_->setattr(d, c).ok());
  auto t = fs_->tmpfile(d, 02755, kUser);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->gid, 4242u);
  ASSERT_TRUE(fs_->set_flags(d, kInodeFlagImmutable, Caller{}).ok());
  EXPECT_EQ(fs_->tmpfile(d, 0600, kUser).error(), EPERM);
  ASSERT_TRUE(fs_->set_flags(d, 0, Caller{}).ok());
  InodeNo gone = mkdir(kRootInode, "gone");
  ASSERT_TRUE(fs_->rmdir(kRootInode, "gone", kUser).ok());
  EXPECT_EQ(fs_->tmpfile(gone, 0600, kUser).error(), ENOENT);
  InodeNo f = create(kRootInode, "f");
  EXPECT_EQ(fs_->tmpfile(f, 0600, kUser).error(), ENOTDIR);
}

}  // namespace
}  // namespace pagefs
