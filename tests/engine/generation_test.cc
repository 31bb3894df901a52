// Inode generations (format.h, inode_generation) and the lookups of "." and
// ".." by inode number, which the kernel makes to resolve file handles.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "engine/format.h"
#include "engine/fs_impl.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

using test::EngineFsTest;

class GenerationTest : public EngineFsTest {
 protected:
  uint32_t generation_of(InodeNo ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->generation : 0;
  }
};

TEST(InodeGeneration, IsTheMountCountAndNeverZero) {
  EXPECT_EQ(inode_generation(1), 1u);
  EXPECT_EQ(inode_generation(77), 77u);
  EXPECT_EQ(inode_generation(1ull << 32), 1u);
  EXPECT_EQ(inode_generation((1ull << 32) + 5), 5u);
}

TEST_F(GenerationTest, RootHasGenerationZero) {
  EXPECT_EQ(generation_of(kRootInode), 0u);
  remount();
  EXPECT_EQ(generation_of(kRootInode), 0u);
}

TEST_F(GenerationTest, EachMountStampsItsOwnGenerationIntoNewInodes) {
  InodeNo first = create(kRootInode, "first");
  InodeNo dir = mkdir(kRootInode, "dir");
  EXPECT_EQ(generation_of(first), 1u);  // the first mount after mkfs
  EXPECT_EQ(generation_of(dir), 1u);
  remount();
  InodeNo second = create(dir, "second");
  auto link = fs_->symlink(kRootInode, "link", "first", Caller{});
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(generation_of(second), 2u);
  EXPECT_EQ(link->generation, 2u);      // the reply that hands the inode out carries it
  EXPECT_EQ(generation_of(first), 1u);  // kept for the inode's life
  EXPECT_EQ(fs_->lookup(kRootInode, "first")->generation, 1u);
}

// A crash loses the creation of an inode whose number the kernel (and an NFS
// client) may already have seen; the next mount hands the number out again,
// under another generation, so the old handle stays stale.
TEST_F(GenerationTest, ANumberUsedAgainAfterACrashHasANewGeneration) {
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  mount(MountOptions{.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s});
  auto lost = fs_->mknod(kRootInode, "lost", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(lost.ok());
  std::unique_ptr<MemDevice> crashed = test::crash::copy_device(*dev_);  // before any commit

  std::string msg;
  auto after = FileSystem::mount(std::make_unique<FaultDevice>(*crashed, 1),
                                 MountOptions{.cache_bytes = 16 << 20}, &msg);
  ASSERT_TRUE(after.ok()) << msg;
  EXPECT_EQ((*after)->lookup(kRootInode, "lost").error(), ENOENT);
  auto again = (*after)->mknod(kRootInode, "again", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ino, lost->ino);
  EXPECT_NE(again->generation, lost->generation);
  ASSERT_TRUE((*after)->unmount().ok());
  after->reset();
  EXPECT_EQ(test::crash::run_fsck_overlay(*crashed).code, 0);
}

TEST_F(GenerationTest, DotNamesAnyInodeItselfAndDotDotADirectorysParent) {
  InodeNo a = mkdir(kRootInode, "a");
  InodeNo b = mkdir(a, "b");
  InodeNo f = create(b, "f");
  auto self = fs_->lookup(f, ".");
  ASSERT_TRUE(self.ok()) << std::strerror(self.error());
  EXPECT_EQ(self->ino, f.value);
  EXPECT_TRUE(S_ISREG(self->mode));
  EXPECT_EQ(self->generation, generation_of(f));
  EXPECT_EQ(fs_->lookup(f, "..").error(), ENOTDIR);
  EXPECT_EQ(fs_->lookup(b, ".")->ino, b.value);
  EXPECT_EQ(fs_->lookup(b, "..")->ino, a.value);
  EXPECT_EQ(fs_->lookup(a, "..")->ino, kRootInode.value);
  EXPECT_EQ(fs_->lookup(kRootInode, "..")->ino, kRootInode.value);
  EXPECT_EQ(fs_->lookup(InodeNo{9999}, ".").error(), ENOENT);
}

TEST_F(GenerationTest, AnInodeWithoutLinksIsGoneForDotAndDotDot) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo f = create(kRootInode, "f");
  // Held, as an open file is: the inode stays, unlinked.
  ASSERT_TRUE(fs_->lookup(kRootInode, "f", Hold::kYes).ok());
  ASSERT_TRUE(fs_->lookup(kRootInode, "d", Hold::kYes).ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "f", Caller{}).ok());
  ASSERT_TRUE(fs_->rmdir(kRootInode, "d", Caller{}).ok());
  EXPECT_TRUE(fs_->getattr(f).ok());
  EXPECT_EQ(fs_->lookup(f, ".").error(), ENOENT);
  EXPECT_EQ(fs_->lookup(d, ".").error(), ENOENT);
  EXPECT_EQ(fs_->lookup(d, "..").error(), ENOENT);
  ASSERT_TRUE(fs_->forget(f, 1).ok());
  ASSERT_TRUE(fs_->forget(d, 1).ok());
  EXPECT_EQ(fs_->lookup(f, ".").error(), ENOENT);
}

TEST_F(GenerationTest, DotLookupTakesTheReferenceItIsAskedFor) {
  InodeNo f = create(kRootInode, "f");
  ASSERT_TRUE(fs_->lookup(f, ".", Hold::kYes).ok());
  ASSERT_TRUE(fs_->unlink(kRootInode, "f", Caller{}).ok());
  EXPECT_TRUE(fs_->getattr(f).ok());  // the reference keeps it
  ASSERT_TRUE(fs_->forget(f, 1).ok());
  EXPECT_EQ(fs_->getattr(f).error(), ENOENT);
}

}  // namespace
}  // namespace pagefs
