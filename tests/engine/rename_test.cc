// rename with RENAME_WHITEOUT (engine/rename.cc), and how it combines with
// the other flags.
#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <map>
#include <string>

#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

using test::EngineFsTest;

const Caller kUser{1000, 1000};

class RenameTest : public EngineFsTest {
 protected:
  // name -> (inode, d_type)
  std::map<std::string, std::pair<uint64_t, uint32_t>> entries(InodeNo dir) {
    std::map<std::string, std::pair<uint64_t, uint32_t>> out;
    EXPECT_TRUE(fs_->readdir(dir, 0,
                             [&](const DirEntry& e) {
                               out[std::string(e.name)] = {e.ino, e.type};
                               return true;
                             })
                    .ok());
    return out;
  }
  Attr attr(InodeNo ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.ok());
    return a.ok() ? *a : Attr{};
  }
};

TEST_F(RenameTest, WhiteoutTakesTheSourceNameAsACharacterDevice00) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo e = mkdir(kRootInode, "e");
  InodeNo f = create(d, "f");
  ASSERT_TRUE(fs_->write(f, 0, "data", 4).ok());
  ASSERT_TRUE(fs_->rename(d, "f", e, "g", RENAME_WHITEOUT, kUser).ok());

  auto moved = fs_->lookup(e, "g");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->ino, f.value);
  auto wh = fs_->lookup(d, "f");
  ASSERT_TRUE(wh.ok());
  EXPECT_NE(wh->ino, f.value);
  EXPECT_EQ(wh->mode, uint32_t(S_IFCHR));  // no permission bits at all
  EXPECT_EQ(wh->rdev, 0u);
  EXPECT_EQ(wh->uid, kUser.uid);
  EXPECT_EQ(wh->gid, kUser.gid);
  EXPECT_EQ(wh->nlink, 1u);
  EXPECT_NE(wh->generation, 0u);
  EXPECT_EQ(entries(d)["f"].second, uint32_t(DT_CHR));
  EXPECT_EQ(attr(d).size, 1u);  // the whiteout counts as an entry
  EXPECT_EQ(attr(e).size, 1u);

  remount();
  EXPECT_EQ(fs_->lookup(d, "f")->mode, uint32_t(S_IFCHR));
  char buf[4];
  EXPECT_EQ(*fs_->read(f, 0, 4, buf), 4u);
  EXPECT_EQ(std::string(buf, 4), "data");
}

TEST_F(RenameTest, WhiteoutOfADirectoryMovesItsLinkToTheNewParent) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo e = mkdir(kRootInode, "e");
  InodeNo sub = mkdir(d, "sub");
  ASSERT_TRUE(fs_->rename(d, "sub", e, "sub", RENAME_WHITEOUT, kUser).ok());
  EXPECT_EQ(attr(d).nlink, 2u);  // the whiteout is no directory
  EXPECT_EQ(attr(e).nlink, 3u);
  EXPECT_EQ(fs_->lookup(sub, "..")->ino, e.value);
  EXPECT_EQ(fs_->lookup(d, "sub")->mode, uint32_t(S_IFCHR));
}

TEST_F(RenameTest, WhiteoutInOneDirectoryReplacesTheTarget) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo a = create(d, "a");
  InodeNo b = create(d, "b");
  ASSERT_TRUE(fs_->rename(d, "a", d, "b", RENAME_WHITEOUT, kUser).ok());
  EXPECT_EQ(fs_->lookup(d, "b")->ino, a.value);
  EXPECT_EQ(fs_->lookup(d, "a")->mode, uint32_t(S_IFCHR));
  EXPECT_EQ(attr(b).nlink, 0u);  // replaced: an orphan until the kernel lets go
  EXPECT_EQ(attr(d).size, 2u);
  EXPECT_EQ(entries(d).size(), 2u);
}

TEST_F(RenameTest, WhiteoutInASetgidDirectoryTakesItsGroup) {
  InodeNo d = mkdir(kRootInode, "d");
  SetAttr c;
  c.set_mode = c.set_gid = true;
  c.mode = S_ISGID | 0775;
  c.gid = 4242;
  ASSERT_TRUE(fs_->setattr(d, c).ok());
  create(d, "f");
  ASSERT_TRUE(fs_->rename(d, "f", d, "g", RENAME_WHITEOUT, kUser).ok());
  auto wh = fs_->lookup(d, "f");
  EXPECT_EQ(wh->gid, 4242u);
  EXPECT_EQ(wh->mode, uint32_t(S_IFCHR));
}

TEST_F(RenameTest, WhiteoutWithNoreplaceOverANameFailsWithNothingChanged) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo a = create(d, "a");
  InodeNo b = create(d, "b");
  EXPECT_EQ(fs_->rename(d, "a", d, "b", RENAME_WHITEOUT | RENAME_NOREPLACE, kUser).error(), EEXIST);
  EXPECT_EQ(fs_->lookup(d, "a")->ino, a.value);
  EXPECT_EQ(fs_->lookup(d, "b")->ino, b.value);
  ASSERT_TRUE(fs_->rename(d, "a", d, "c", RENAME_WHITEOUT | RENAME_NOREPLACE, kUser).ok());
  EXPECT_EQ(fs_->lookup(d, "c")->ino, a.value);
  EXPECT_EQ(fs_->lookup(d, "a")->mode, uint32_t(S_IFCHR));
}

TEST_F(RenameTest, WhiteoutRefusesExchangeAndUnknownFlags) {
  InodeNo d = mkdir(kRootInode, "d");
  create(d, "a");
  create(d, "b");
  EXPECT_EQ(fs_->rename(d, "a", d, "b", RENAME_WHITEOUT | RENAME_EXCHANGE, kUser).error(), EINVAL);
  EXPECT_EQ(fs_->rename(d, "a", d, "b", 1u << 7, kUser).error(), EINVAL);
  EXPECT_EQ(fs_->rename(d, "missing", d, "c", RENAME_WHITEOUT, kUser).error(), ENOENT);
  EXPECT_EQ(entries(d).size(), 2u);
}

TEST_F(RenameTest, ExchangeAndNoreplaceStillWork) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo a = create(d, "a");
  InodeNo sub = mkdir(kRootInode, "sub");
  ASSERT_TRUE(fs_->rename(d, "a", kRootInode, "sub", RENAME_EXCHANGE, kUser).ok());
  EXPECT_EQ(fs_->lookup(d, "a")->ino, sub.value);
  EXPECT_EQ(fs_->lookup(kRootInode, "sub")->ino, a.value);
  EXPECT_EQ(fs_->lookup(sub, "..")->ino, d.value);
  EXPECT_EQ(attr(d).nlink, 3u);
  EXPECT_EQ(fs_->rename(kRootInode, "sub", kRootInode, "d", RENAME_NOREPLACE, kUser).error(),
            EEXIST);
}

}  // namespace
}  // namespace pagefs
