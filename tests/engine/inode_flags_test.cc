// Attribute flags (engine/inode_flags.cc): who may set them, and what
// immutable, append-only and no-atime do to every operation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <string>

#include "engine/format.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

using test::EngineFsTest;

const Caller kRoot{0, 0};
const Caller kOwner{1000, 1000};
const Caller kOther{2000, 2000};

class InodeFlagsTest : public EngineFsTest {
 protected:
  uint32_t flags_of(InodeNo ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->flags : 0;
  }
  int write(InodeNo ino, uint64_t off, const std::string& data) {
    return error_of(fs_->write(ino, off, data.data(), data.size()));
  }
  std::string read_all(InodeNo ino) {
    std::string out(4096, '\0');
    auto n = fs_->read(ino, 0, out.size(), out.data());
    EXPECT_TRUE(n.ok());
    out.resize(n.ok() ? *n : 0);
    return out;
  }
  int setattr(InodeNo ino, void (*change)(SetAttr&)) {
    SetAttr c;
    change(c);
    return error_of(fs_->setattr(ino, c));
  }
  // Every change an immutable or append-only inode refuses, but writes.
  void expect_attributes_fixed(InodeNo ino) {
    EXPECT_EQ(setattr(ino, [](SetAttr& c) { c.set_size = true, c.size = 0; }), EPERM);
    EXPECT_EQ(setattr(ino, [](SetAttr& c) { c.set_mode = true, c.mode = 0600; }), EPERM);
    EXPECT_EQ(setattr(ino, [](SetAttr& c) { c.set_uid = true, c.uid = 7; }), EPERM);
    EXPECT_EQ(setattr(ino, [](SetAttr& c) { c.set_gid = true, c.gid = 7; }), EPERM);
    EXPECT_EQ(setattr(ino,
                      [](SetAttr& c) {
                        c.set_mtime = true;
                        c.mtime = timespec{1000, 0};
                      }),
              EPERM);
    EXPECT_EQ(error_of(fs_->setxattr(ino, "user.new", "v", 0)), EPERM);
    EXPECT_EQ(error_of(fs_->removexattr(ino, "user.old")), EPERM);
    EXPECT_EQ(error_of(fs_->link(ino, kRootInode, "another")), EPERM);
    EXPECT_EQ(error_of(fs_->unlink(kRootInode, "f", kRoot)), EPERM);
    EXPECT_EQ(error_of(fs_->rename(kRootInode, "f", kRootInode, "g", 0, kRoot)), EPERM);
    create(kRootInode, "victim");
    EXPECT_EQ(error_of(fs_->rename(kRootInode, "victim", kRootInode, "f", 0, kRoot)), EPERM);
    EXPECT_EQ(error_of(fs_->rename(kRootInode, "victim", kRootInode, "f", RENAME_EXCHANGE, kRoot)),
              EPERM);
    EXPECT_EQ(fs_->getxattr(ino, "user.old").value(), "kept");
  }
};

TEST_F(InodeFlagsTest, FlagsAreStoredAndSurviveARemount) {
  InodeNo f = create(kRootInode, "f");
  EXPECT_EQ(flags_of(f), 0u);
  auto a = fs_->set_flags(f, kInodeFlagNoDump | kInodeFlagNoAtime, kRoot);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->flags, kInodeFlagNoDump | kInodeFlagNoAtime);
  remount();
  EXPECT_EQ(flags_of(f), kInodeFlagNoDump | kInodeFlagNoAtime);
  EXPECT_EQ(fs_->lookup(kRootInode, "f")->flags, kInodeFlagNoDump | kInodeFlagNoAtime);
}

TEST_F(InodeFlagsTest, UnknownFlagsAreNotSupported) {
  InodeNo f = create(kRootInode, "f");
  EXPECT_EQ(error_of(fs_->set_flags(f, FS_COMPR_FL, kRoot)), EOPNOTSUPP);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagNoDump | (1u << 31), kRoot)), EOPNOTSUPP);
  EXPECT_EQ(flags_of(f), 0u);
}

TEST_F(InodeFlagsTest, OnlyRootSetsOrClearsImmutableAndAppendOnly) {
  InodeNo f = create(kRootInode, "f", kOwner);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagImmutable, kOwner)), EPERM);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagAppend, kOwner)), EPERM);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagNoDump, kOther)), EPERM);  // not the owner
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagNoDump, kOwner)), 0);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagNoDump | kInodeFlagAppend, kRoot)), 0);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagAppend, kOwner)), 0);  // +a kept, -d
  EXPECT_EQ(error_of(fs_->set_flags(f, 0, kOwner)), EPERM);
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagImmutable, kRoot)), 0);
  // While immutable stays, nothing else changes, not even for root.
  EXPECT_EQ(error_of(fs_->set_flags(f, kInodeFlagImmutable | kInodeFlagNoDump, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->set_flags(f, 0, kRoot)), 0);
  EXPECT_EQ(flags_of(f), 0u);
}

TEST_F(InodeFlagsTest, ImmutableFileRefusesEveryChangeButStaysReadable) {
  InodeNo f = create(kRootInode, "f");
  ASSERT_EQ(write(f, 0, "contents"), 0);
  ASSERT_TRUE(fs_->setxattr(f, "user.old", "kept", 0).ok());
  ASSERT_TRUE(fs_->set_flags(f, kInodeFlagImmutable, kRoot).ok());
  EXPECT_EQ(write(f, 8, "more"), EPERM);
  EXPECT_EQ(write(f, 0, "contents"), EPERM);  // even the same bytes
  EXPECT_EQ(error_of(fs_->fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 1 << 20)), EPERM);
  EXPECT_EQ(error_of(fs_->copy_file_range(f, 0, f, 100, 4)), EPERM);
  EXPECT_EQ(setattr(f, [](SetAttr& c) { c.set_atime = c.atime_now = true; }), EPERM);
  EXPECT_EQ(setattr(f,
                    [](SetAttr& c) {
                      c.set_mtime = c.cached_write_time = true;
                      c.mtime = timespec{2000, 0};
                    }),
            EPERM);
  expect_attributes_fixed(f);
  EXPECT_EQ(error_of(fs_->check_open(f, O_WRONLY)), EPERM);
  EXPECT_EQ(error_of(fs_->check_open(f, O_RDWR | O_APPEND)), EPERM);
  EXPECT_EQ(error_of(fs_->check_open(f, O_RDONLY)), 0);
  EXPECT_EQ(read_all(f), "contents");
  remount();
  EXPECT_EQ(write(f, 0, "x"), EPERM);
  ASSERT_TRUE(fs_->set_flags(f, 0, kRoot).ok());
  EXPECT_EQ(write(f, 0, "C"), 0);
  EXPECT_EQ(read_all(f), "Contents");
}

TEST_F(InodeFlagsTest, AppendOnlyFileTakesOnlyAppends) {
  InodeNo f = create(kRootInode, "f");
  ASSERT_EQ(write(f, 0, "first "), 0);
  ASSERT_TRUE(fs_->setxattr(f, "user.old", "kept", 0).ok());
  ASSERT_TRUE(fs_->set_flags(f, kInodeFlagAppend, kRoot).ok());
  EXPECT_EQ(write(f, 6, "second "), 0);
  EXPECT_EQ(write(f, 0, "FIRST"), EPERM);
  EXPECT_EQ(write(f, 3, "st sec"), 0);              // the same bytes again: no change
  EXPECT_EQ(write(f, 0, "first second third"), 0);  // a rewrite of the tail page, and more
  EXPECT_EQ(write(f, 10, "XX"), EPERM);
  EXPECT_EQ(read_all(f), "first second third");
  EXPECT_EQ(error_of(fs_->fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 1 << 16)), 0);
  EXPECT_EQ(error_of(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)),
            EPERM);
  EXPECT_EQ(error_of(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE, 0, 4)), EPERM);
  EXPECT_EQ(setattr(f, [](SetAttr& c) { c.set_mtime = c.mtime_now = true; }), 0);  // touch
  // The kernel's write-back cache storing the mtime of appends it cached.
  EXPECT_EQ(setattr(f,
                    [](SetAttr& c) {
                      c.set_mtime = c.cached_write_time = true;
                      c.mtime = timespec{2000, 0};
                    }),
            0);
  EXPECT_EQ(setattr(f,
                    [](SetAttr& c) {
                      c.set_mtime = c.set_atime = c.cached_write_time = true;
                      c.mtime = c.atime = timespec{2000, 0};
                    }),
            EPERM);
  expect_attributes_fixed(f);
  EXPECT_EQ(error_of(fs_->check_open(f, O_WRONLY)), EPERM);
  EXPECT_EQ(error_of(fs_->check_open(f, O_WRONLY | O_APPEND | O_TRUNC)), EPERM);
  EXPECT_EQ(error_of(fs_->check_open(f, O_WRONLY | O_APPEND)), 0);
  EXPECT_EQ(error_of(fs_->check_open(f, O_RDONLY)), 0);
}

TEST_F(InodeFlagsTest, ImmutableDirectoryKeepsItsNamesButNotItsFiles) {
  InodeNo d = mkdir(kRootInode, "d");
  InodeNo inside = create(d, "inside");
  InodeNo sub = mkdir(d, "sub");
  create(kRootInode, "outside");
  ASSERT_TRUE(fs_->set_flags(d, kInodeFlagImmutable, kRoot).ok());
  EXPECT_EQ(error_of(fs_->mknod(d, "new", S_IFREG | 0644, 0, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->mkdir(d, "newdir", 0755, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->symlink(d, "sl", "x", kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->link(inside, d, "again")), EPERM);
  EXPECT_EQ(error_of(fs_->unlink(d, "inside", kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rmdir(d, "sub", kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rename(kRootInode, "outside", d, "in", 0, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rename(d, "inside", kRootInode, "out", 0, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rename(d, "inside", d, "renamed", 0, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rmdir(kRootInode, "d", kRoot)), EPERM);
  // What the names lead to is not frozen.
  EXPECT_EQ(write(inside, 0, "changed"), 0);
  EXPECT_TRUE(fs_->mknod(sub, "deeper", S_IFREG | 0644, 0, kRoot).ok());
  ASSERT_TRUE(fs_->set_flags(d, 0, kRoot).ok());
  EXPECT_TRUE(fs_->unlink(d, "inside", kRoot).ok());
}

TEST_F(InodeFlagsTest, AppendOnlyDirectoryTakesNewNamesOnly) {
  InodeNo d = mkdir(kRootInode, "d");
  create(d, "old");
  create(kRootInode, "outside");
  ASSERT_TRUE(fs_->set_flags(d, kInodeFlagAppend, kRoot).ok());
  EXPECT_TRUE(fs_->mknod(d, "new", S_IFREG | 0644, 0, kRoot).ok());
  EXPECT_TRUE(fs_->rename(kRootInode, "outside", d, "moved", 0, kRoot).ok());
  EXPECT_EQ(error_of(fs_->unlink(d, "old", kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rename(d, "old", d, "renamed", 0, kRoot)), EPERM);
  EXPECT_EQ(error_of(fs_->rename(d, "old", kRootInode, "out", RENAME_WHITEOUT, kRoot)), EPERM);
  create(kRootInode, "other");
  EXPECT_EQ(error_of(fs_->rename(kRootInode, "other", d, "old", 0, kRoot)), EPERM);  // replaces
  ASSERT_TRUE(fs_->set_flags(d, 0, kRoot).ok());
}

TEST_F(InodeFlagsTest, NoAtimeKeepsTheAccessTimeOnReads) {
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  mount(MountOptions{.cache_bytes = 16 << 20, .atime_updates = AtimeUpdates::kAlways});
  InodeNo f = create(kRootInode, "f");
  ASSERT_EQ(write(f, 0, "data"), 0);
  ASSERT_EQ(setattr(f,
                    [](SetAttr& c) {
                      c.set_atime = true;
                      c.atime = timespec{1000, 0};
                    }),
            0);
  ASSERT_TRUE(fs_->set_flags(f, kInodeFlagNoAtime, kRoot).ok());
  EXPECT_EQ(read_all(f), "data");
  EXPECT_EQ(fs_->getattr(f)->atime.tv_sec, 1000);
  ASSERT_TRUE(fs_->set_flags(f, 0, kRoot).ok());
  EXPECT_EQ(read_all(f), "data");
  EXPECT_GT(fs_->getattr(f)->atime.tv_sec, 1000);
}

TEST_F(InodeFlagsTest, SettingFlagsChangesCtime) {
  InodeNo f = create(kRootInode, "f");
  ASSERT_EQ(setattr(f,
                    [](SetAttr& c) {
                      c.set_mtime = true;
                      c.mtime = timespec{1000, 0};
                    }),
            0);
  timespec before = fs_->getattr(f)->ctime;
  auto a = fs_->set_flags(f, kInodeFlagNoDump, kRoot);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ctime.tv_sec > before.tv_sec ||
              (a->ctime.tv_sec == before.tv_sec && a->ctime.tv_nsec > before.tv_nsec));
  EXPECT_EQ(a->mtime.tv_sec, 1000);
}

}  // namespace
}  // namespace pagefs
