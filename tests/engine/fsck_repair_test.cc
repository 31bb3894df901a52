// fsck repairs, one damage class at a time: each test damages a populated
// image precisely, and checks that fsck -n finds it (exit 4, naming the path
// when there is one), that -p or -y fixes it (exit 1), that -n is then clean,
// that a second -y changes nothing, and that every file that was not damaged
// reads back byte for byte through a mount.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "engine/fault_device.h"
#include "fsck/checker.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/repair_fixture.h"
#include "tests/test_env.h"

namespace pagefs::test {
namespace {

using fsck::Mode;

class FsckRepair : public RepairTest {
 protected:
  void SetUp() override {
    RepairTest::SetUp();
    populate();
  }
  // The page of the first extent of `path`.
  uint64_t data_page(const std::string& path) { return extent_at(*dev_, ino_of(path), 0).phys; }
  Key inode_key(const std::string& path) { return Key::of(ino_of(path), KeyKind::kInode, 0); }
  Key entry_key(const std::string& dir, const std::string& name) {
    return Key::of(dir == "/" ? 1 : ino_of(dir), KeyKind::kDirent, cookie_of(name));
  }
};

TEST_F(FsckRepair, PopulatedImageIsClean) {
  FsckResult r = fsck(Mode::kCheck);
  EXPECT_EQ(r.code, fsck::kExitClean) << r.out;
  expect_second_run_unchanged();
  expect_intact();
}

// ---- fsck -p: what is safe and certain ---------------------------------------------

TEST_F(FsckRepair, PreenMarksAPageInUseThatTheBitmapCallsFree) {
  set_bitmap_bit(*dev_, data_page("/docs/a.txt"), false);
  expect_repaired(Mode::kPreen);
  expect_second_run_unchanged();
  expect_intact();
}

TEST_F(FsckRepair, PreenFreesALeakedPage) {
  set_bitmap_bit(*dev_, superblock(*dev_).page_count - 1, true);
  expect_repaired(Mode::kPreen);
  expect_intact();
}

TEST_F(FsckRepair, PreenRebuildsABitmapPageThatFailsItsChecksum) {
  break_page(*dev_, superblock(*dev_).bitmap_start);
  expect_repaired(Mode::kPreen, "bitmap page");
  expect_intact();
}

TEST_F(FsckRepair, PreenSetsAFileLinkCount) {
  change_record(*dev_, ino_of("/hard1"), [](InodeRecord& r) { r.nlink = 5; });
  expect_repaired(Mode::kPreen, "/hard1 (inode");
  expect_second_run_unchanged();
  expect_intact();
}

TEST_F(FsckRepair, PreenSetsADirectorySizeAndLinkCount) {
  change_record(*dev_, ino_of("/docs"), [](InodeRecord& r) {
    r.size = 99;
    r.nlink = 7;
  });
  expect_repaired(Mode::kPreen, "/docs (inode");
  expect_intact();
}

TEST_F(FsckRepair, PreenSetsTheBlockCountAndParent) {
  change_record(*dev_, ino_of("/docs/big.bin"), [](InodeRecord& r) { r.blocks = 3; });
  change_record(*dev_, ino_of("/docs/sub"), [](InodeRecord& r) { r.parent = 1; });
  expect_repaired(Mode::kPreen, "/docs/big.bin");
  expect_intact();
}

TEST_F(FsckRepair, PreenSetsTheSuperblockCounters) {
  Superblock sb = superblock(*dev_);
  sb.free_pages += 7;
  sb.inode_count -= 2;
  put_superblocks(*dev_, sb);
  expect_repaired(Mode::kPreen, "superblock");
  expect_intact();
}

TEST_F(FsckRepair, PreenRestoresASecondSuperblockCopyThatFailsItsChecksum) {
  break_page(*dev_, 1);
  expect_repaired(Mode::kPreen, "superblock copy at page 1");
  EXPECT_EQ(std::memcmp(page_at(*dev_, 0) + sizeof(PageHeader),
                        page_at(*dev_, 1) + sizeof(PageHeader), sizeof(Superblock) - 32),
            0);
  expect_intact();
}

TEST_F(FsckRepair, PreenRestoresAPrimarySuperblockThatFailsItsChecksum) {
  break_page(*dev_, 0);
  expect_repaired(Mode::kPreen, "superblock copy at page 0");
  expect_intact();
}

TEST_F(FsckRepair, PreenFreesAnUnlinkedInodeThatLostItsOrphanRecord) {
  // As an unlink that left the file open would leave it, minus the orphan item.
  erase_item(*dev_, entry_key("/docs", "a.txt"));
  change_record(*dev_, ino_of("/docs/a.txt"), [](InodeRecord& r) { r.nlink = 0; });
  change_record(*dev_, ino_of("/docs"), [](InodeRecord& r) { r.size--; });
  expect_repaired(Mode::kPreen, "inode");
  expect_second_run_unchanged();
  expect_intact({"/docs/a.txt", "/link"});
}

TEST_F(FsckRepair, PreenRemovesAnOrphanRecordOfAMissingInode) {
  mount();
  ASSERT_TRUE(fs_->mknod(kRootInode, "gone", S_IFREG | 0644, 0, Caller{}).ok());
  unmount();
  // Forge an orphan item for an inode that never existed, in the first leaf.
  const Key key = Key::of(0, KeyKind::kOrphan, 999999);
  const uint64_t leaf = leaf_of(*dev_, key);
  Node node = node_at(*dev_, leaf);
  ASSERT_TRUE(node.fits(0));
  node.insert_at(node.lower_bound(key), key, {});
  restamp(*dev_, leaf);
  oracle_["/gone"] = Entry{'f', "", 0};
  expect_repaired(Mode::kPreen, "orphan list");
  expect_intact();
}

TEST_F(FsckRepair, PreenSetsAnEntryTypeThatDisagreesWithItsInode) {
  auto v = value_of(*dev_, entry_key("/docs", "sub"));
  reinterpret_cast<DirentValue*>(v.data())->type = 8;  // DT_REG for a directory
  restamp(*dev_, leaf_of(*dev_, entry_key("/docs", "sub")));
  expect_repaired(Mode::kPreen, "/docs/sub");
  expect_intact();
}

// ---- fsck -p stops where judgement is needed ---------------------------------------

TEST_F(FsckRepair, PreenRefusesAnEntryToAMissingInodeAndChangesNothing) {
  erase_item(*dev_, inode_key("/docs/sub/deep.txt"));
  std::vector<std::byte> before(dev_->raw(), dev_->raw() + dev_->size_bytes());
  FsckResult r = fsck(Mode::kPreen);
  EXPECT_EQ(r.code, fsck::kExitUncorrected) << r.out;
  EXPECT_NE(r.out.find("UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/docs/sub/deep.txt"), std::string::npos) << r.out;
  EXPECT_EQ(std::memcmp(before.data(), dev_->raw(), before.size()), 0);
}

// A data page that fails its checksum is for a person to decide about.
TEST_F(FsckRepair, PreenStopsAtDataThatFailsItsChecksum) {
  break_page(*dev_, data_page("/docs/big.bin"));
  set_bitmap_bit(*dev_, superblock(*dev_).page_count - 1, true);
  FsckResult r = fsck(Mode::kPreen);
  EXPECT_EQ(r.code, fsck::kExitUncorrected) << r.out;
  EXPECT_NE(r.out.find("UNEXPECTED INCONSISTENCY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("correct the bitmap? no"), std::string::npos) << r.out;
}

// ---- the limits the engine holds records and nodes to ---------------------------------

// A link count past kLinkMax is counted anew, as any wrong count is.
TEST_F(FsckRepair, PreenCountsAnImpossibleLinkCountAnew) {
  change_record(*dev_, ino_of("/docs/a.txt"), [](InodeRecord& r) { r.nlink = kLinkMax + 1; });
  expect_repaired(Mode::kPreen, "/docs/a.txt");
  expect_second_run_unchanged();
  expect_intact();
}

// The engine refuses a size past the largest file for every file type; a
// special file holds no pages, so its size goes to 0.
TEST_F(FsckRepair, ImpossibleSizeOfASpecialFileIsSetToZero) {
  ASSERT_NE(mount(), nullptr);
  auto fifo = fs_->mknod(kRootInode, "fifo", S_IFIFO | 0644, 0, Caller{});
  ASSERT_TRUE(fifo.ok());
  unmount();
  change_record(*dev_, fifo->ino, [](InodeRecord& r) { r.size = ~0ull; });
  expect_repaired(Mode::kRepair, "/fifo");
  expect_second_run_unchanged();
  expect_intact();
  ASSERT_NE(mount(), nullptr);
  auto attr = fs_->getattr(InodeNo{fifo->ino});
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 0u);
  unmount();
}

// A separator is a copy of a real key; one of an unknown kind makes the
// engine refuse its node. The leaves are whole, so the tree is written anew
// from them and nothing is lost.
TEST_F(FsckRepair, SeparatorOfAnUnknownKindIsRewritten) {
  // The first separator (past slot 0) that is an inode's key: as (ino, 0, 0)
  // it still divides the same keys.
  uint64_t node_page = 0;
  uint16_t slot = 0;
  std::vector<uint64_t> level = {superblock(*dev_).tree_root};
  while (node_page == 0 && !level.empty()) {
    std::vector<uint64_t> next;
    for (uint64_t page : level) {
      Node node = node_at(*dev_, page);
      if (node.is_leaf()) continue;
      for (uint16_t i = 0; i < node.count(); i++) {
        next.push_back(node.child_at(i));
        if (node_page == 0 && i > 0 && node.key_at(i).kind == uint8_t(KeyKind::kInode)) {
          node_page = page;
          slot = i;
        }
      }
    }
    level.swap(next);
  }
  ASSERT_NE(node_page, 0u) << "no separator is an inode's key";
  std::byte* page = page_at(*dev_, node_page);
  uint16_t cell;
  std::memcpy(&cell, page + kSlotsOffset + 2 * size_t{slot}, sizeof cell);
  Key key = Key::load(page + cell);
  key.kind = 0;
  key.store(page + cell);
  restamp(*dev_, node_page);
  expect_repaired(Mode::kRepair, "unknown key kind");
  expect_second_run_unchanged();
  expect_intact();
}

// No inode number reaches kMaxInodeNumber: an item past it is removed, and
// the superblock's next_inode stays one a mount accepts.
TEST_F(FsckRepair, ItemPastTheLargestInodeNumberIsRemoved) {
  // The last item of the tree, moved to an impossible inode: still the last.
  uint64_t leaf = superblock(*dev_).tree_root;
  for (Node node = node_at(*dev_, leaf); !node.is_leaf(); node = node_at(*dev_, leaf)) {
    leaf = node.child_at(uint16_t(node.count() - 1));
  }
  Node node = node_at(*dev_, leaf);
  std::byte* page = page_at(*dev_, leaf);
  uint16_t cell;
  std::memcpy(&cell, page + kSlotsOffset + 2 * size_t(node.count() - 1), sizeof cell);
  Key key = Key::load(page + cell);
  std::string owner;
  for (const auto& [path, entry] : oracle_) {
    if (entry.ino == key.ino) owner = path;
  }
  key.ino = kMaxInodeNumber + 1;
  key.store(page + cell);
  restamp(*dev_, leaf);
  expect_repaired(Mode::kRepair, "past the largest number");
  expect_second_run_unchanged();
  EXPECT_LE(superblock(*dev_).next_inode, kMaxInodeNumber);
  expect_intact({owner});
}

// ---- xattr values kept in data pages ---------------------------------------------------

class FsckXattrPages : public FsckRepair {
 protected:
  // A value too large for its cell, on /docs/a.txt; the filesystem unmounted.
  void SetUp() override {
    FsckRepair::SetUp();
    ASSERT_NE(mount(), nullptr);
    ASSERT_TRUE(fs_->setxattr(InodeNo{ino_of("/docs/a.txt")}, "user.big", value_, 0).ok());
    unmount();
  }
  Key xattr_key() const {
    return Key::of(ino_of("/docs/a.txt"), KeyKind::kXattr, cookie_of("user.big"));
  }
  // The device page of page `i` of the value.
  uint64_t value_page(uint32_t i) {
    auto v = value_of(*dev_, xattr_key());
    EXPECT_FALSE(v.empty());
    XattrPage page{};
    std::memcpy(
        &page,
        v.data() + sizeof(XattrValue) + 8 + kXattrCrcBytes + sizeof(XattrPages) + sizeof page * i,
        sizeof page);
    return page.phys;
  }
  std::string read_value() {
    EXPECT_NE(mount(), nullptr);
    auto v = fs_->getxattr(InodeNo{ino_of("/docs/a.txt")}, "user.big");
    std::string out = v.ok() ? *v : "error " + std::to_string(v.error());
    unmount();
    return out;
  }

  const std::string value_ = std::string(6000, 'v') + std::string(3000, 'w');
};

// A repair writes the tree anew and the bitmap from what it keeps: the pages
// of a value are kept in use with it.
TEST_F(FsckXattrPages, ATreeRewriteKeepsTheValuePagesInUse) {
  erase_item(*dev_, inode_key("/empty"));  // a repair that rewrites the tree
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  // Not even for a later round to put right:
  EXPECT_EQ(repair.out.find("free-space bitmap"), std::string::npos) << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  EXPECT_EQ(read_value(), value_);
  expect_intact({"/empty"});
}

// A value page that fails its checksum is the user's data: reported and
// left, and the attribute can then be removed.
TEST_F(FsckXattrPages, AValuePageThatFailsItsChecksumIsReportedAndLeft) {
  break_page(*dev_, value_page(1));
  FsckResult r = fsck(Mode::kRepair);
  EXPECT_EQ(r.code, fsck::kExitUncorrected) << r.out;
  EXPECT_NE(r.out.find("/docs/a.txt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fails its checksum"), std::string::npos) << r.out;
  ASSERT_NE(mount(), nullptr);
  EXPECT_EQ(fs_->getxattr(InodeNo{ino_of("/docs/a.txt")}, "user.big").error(), EIO);
  ASSERT_TRUE(fs_->removexattr(InodeNo{ino_of("/docs/a.txt")}, "user.big").ok());
  unmount();
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
}

// A value that names a page the tree already uses is removed; the tree keeps
// its page.
TEST_F(FsckXattrPages, AValueOnATreePageIsRemoved) {
  auto v = value_of(*dev_, xattr_key());
  const uint64_t tree_page = superblock(*dev_).tree_root;
  std::memcpy(v.data() + sizeof(XattrValue) + 8 + kXattrCrcBytes + sizeof(XattrPages), &tree_page,
              sizeof tree_page);
  restamp(*dev_, leaf_of(*dev_, xattr_key()));
  expect_repaired(Mode::kRepair, "already in use");
  expect_second_run_unchanged();
  EXPECT_EQ(read_value(), "error " + std::to_string(ENODATA));
  expect_intact();
}

// ---- fsck -y: entries, names, /lost+found ---------------------------------------------

TEST_F(FsckRepair, EntryToAMissingInodeIsRemoved) {
  erase_item(*dev_, inode_key("/empty"));
  expect_repaired(Mode::kRepair, "/empty");
  expect_second_run_unchanged();
  Tree tree = expect_intact({"/empty"});
  EXPECT_EQ(tree.count("/empty"), 0u);
}

// The record is gone but the extents tell what the inode was: a file, as
// long as its extents reach (the size rounds up to a page).
TEST_F(FsckRepair, FileWhoseRecordIsLostIsRecreatedInItsPlace) {
  erase_item(*dev_, inode_key("/docs/sub/deep.txt"));
  expect_repaired(Mode::kRepair, "/docs/sub/deep.txt");
  expect_second_run_unchanged();
  Tree tree = expect_intact({"/docs/sub/deep.txt"});
  const std::string& data = oracle_["/docs/sub/deep.txt"].data;
  ASSERT_EQ(tree.count("/docs/sub/deep.txt"), 1u);
  EXPECT_EQ(tree["/docs/sub/deep.txt"].data, data + std::string(4096 * 2 - data.size(), '\0'));
}

TEST_F(FsckRepair, FileWithoutANameIsReconnectedInLostAndFound) {
  const uint64_t ino = ino_of("/docs/sub/deep.txt");
  erase_item(*dev_, entry_key("/docs/sub", "deep.txt"));
  expect_repaired(Mode::kRepair, "inode " + std::to_string(ino));
  expect_second_run_unchanged();
  Tree tree = expect_intact({"/docs/sub/deep.txt"});
  const std::string found = "/lost+found/#" + std::to_string(ino);
  ASSERT_EQ(tree.count(found), 1u);
  EXPECT_TRUE(tree[found].data == oracle_["/docs/sub/deep.txt"].data);

  // The repair made /lost+found as a mount would: with a generation newer
  // than every inode before it and older than every inode made after it,
  // so no file handle can ever name two of them.
  FileSystem* fs = mount();
  ASSERT_NE(fs, nullptr);
  auto lost = fs->lookup(kRootInode, "lost+found");
  auto docs = fs->lookup(kRootInode, "docs");
  auto later = fs->mknod(kRootInode, "later", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(lost.ok() && docs.ok() && later.ok());
  EXPECT_GT(lost->generation, docs->generation);
  EXPECT_GT(later->generation, lost->generation);
  unmount();
}

TEST_F(FsckRepair, DirectoryWithoutANameIsReconnectedWithItsContents) {
  const uint64_t ino = ino_of("/docs/sub");
  erase_item(*dev_, entry_key("/docs", "sub"));
  expect_repaired(Mode::kRepair, "inode " + std::to_string(ino));
  EXPECT_EQ(fsck(Mode::kCheck).out.find("next_inode"), std::string::npos);
  Tree tree = expect_intact({"/docs/sub", "/docs/sub/deep.txt"});
  const std::string found = "/lost+found/#" + std::to_string(ino) + "/deep.txt";
  ASSERT_EQ(tree.count(found), 1u);
  EXPECT_TRUE(tree[found].data == oracle_["/docs/sub/deep.txt"].data);
}

TEST_F(FsckRepair, InodeWhoseRecordIsLostIsRecreatedFromItsExtents) {
  const uint64_t ino = ino_of("/docs/big.bin");
  erase_item(*dev_, inode_key("/docs/big.bin"));
  erase_item(*dev_, entry_key("/docs", "big.bin"));
  expect_repaired(Mode::kRepair, "inode " + std::to_string(ino));
  Tree tree = expect_intact({"/docs/big.bin"});
  const std::string found = "/lost+found/#" + std::to_string(ino);
  ASSERT_EQ(tree.count(found), 1u);
  EXPECT_TRUE(tree[found].data == oracle_["/docs/big.bin"].data);
}

TEST_F(FsckRepair, DirectoryCycleIsCutAndReconnected) {
  // /docs/sub gets an entry "loop" naming /docs, and /docs loses its own
  // name: /docs and /docs/sub then only lead to each other.
  const uint64_t docs = ino_of("/docs"), sub = ino_of("/docs/sub");
  const Key loop = Key::of(sub, KeyKind::kDirent, cookie_of("loop"));
  const uint64_t leaf = leaf_of(*dev_, loop);
  Node node = node_at(*dev_, leaf);
  std::string value(sizeof(DirentValue) + 4, '\0');
  DirentValue dv{docs, 4, 4};
  std::memcpy(value.data(), &dv, sizeof dv);
  std::memcpy(value.data() + sizeof dv, "loop", 4);
  ASSERT_TRUE(node.fits(value.size()));
  node.insert_at(node.lower_bound(loop), loop,
                 std::span(reinterpret_cast<const std::byte*>(value.data()), value.size()));
  restamp(*dev_, leaf);
  erase_item(*dev_, entry_key("/", "docs"));
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitUncorrected) << check.out;
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  mount();
  Tree tree = walk();
  unmount();
  size_t docs_files = 0;
  for (const auto& [path, e] : tree) docs_files += e.data == oracle_["/docs/a.txt"].data;
  EXPECT_GE(docs_files, 1u) << "the files of /docs are reachable again";
}

// ---- a repair that stops halfway --------------------------------------------------

// fsck -y is cut off after each of its writes in turn (the later ones are
// lost, or the next one is torn), as a crash or a power cut would: the
// filesystem is then the damaged one or the repaired one, never worse, and
// the next fsck -y finishes the job. PAGEFS_FSCK_CRASH_STRIDE=1 tries every
// write (the suite tries about 16).
TEST_F(FsckRepair, ACrashDuringARepairLeavesTheOldOrTheRepairedFilesystem) {
  erase_item(*dev_, entry_key("/docs", "sub"));
  erase_item(*dev_, inode_key("/empty"));
  const std::vector<std::byte> damaged(dev_->raw(), dev_->raw() + dev_->size_bytes());
  uint64_t writes = 0;
  {
    FaultDevice counter(*dev_, 1);
    ASSERT_EQ(fsck_on(counter, Mode::kRepair).code, fsck::kExitFixed);
    writes = counter.write_count();
  }
  ASSERT_GT(writes, 4u);
  printf("[ info ] a repair of %llu writes\n", (unsigned long long)writes);
  const uint64_t stride =
      testenv::env_u64("PAGEFS_FSCK_CRASH_STRIDE", std::max<uint64_t>(1, writes / 16));
  for (uint64_t n = 0; n < writes; n += stride) {
    std::memcpy(dev_->raw(), damaged.data(), damaged.size());
    {
      FaultDevice crash(*dev_, n);
      if (n % 2 == 0) {
        crash.drop_writes_after(n);
      } else {
        crash.tear_write(n + 1);
      }
      (void)fsck_on(crash, Mode::kRepair);
    }
    const std::string at = "cut after write " + std::to_string(n) + " of " + std::to_string(writes);
    FsckResult again = fsck(Mode::kRepair);
    ASSERT_TRUE(again.code == fsck::kExitFixed || again.code == fsck::kExitClean) << at << "\n"
                                                                                  << again.out;
    FsckResult check = fsck(Mode::kCheck);
    ASSERT_EQ(check.code, fsck::kExitClean) << at << "\n" << again.out << check.out;
    Tree tree = expect_intact({"/docs/sub", "/docs/sub/deep.txt", "/empty"});
    bool found = false;
    for (const auto& [path, e] : tree) found |= e.data == oracle_["/docs/sub/deep.txt"].data;
    EXPECT_TRUE(found) << at << ": /docs/sub/deep.txt is nowhere";
  }
}

// ---- fsck -y: extents and data --------------------------------------------------------

// Changes the extent (ino, kExtent, file_page) on the unmounted device.
template <class Change>
void change_extent(MemDevice& dev, uint64_t ino, uint64_t file_page, Change change) {
  const Key key = Key::of(ino, KeyKind::kExtent, file_page);
  auto v = value_of(dev, key);
  ASSERT_GE(v.size(), sizeof(ExtentValue));
  ExtentValue ev;
  std::memcpy(&ev, v.data(), sizeof ev);
  change(ev);
  std::memcpy(v.data(), &ev, sizeof ev);
  restamp(dev, leaf_of(dev, key));
}

TEST_F(FsckRepair, ExtentOutsideTheDataRegionIsDropped) {
  change_extent(*dev_, ino_of("/docs/sub/deep.txt"), 0, [](ExtentValue& ev) { ev.phys = 3; });
  expect_repaired(Mode::kRepair, "/docs/sub/deep.txt");
  expect_second_run_unchanged();
  Tree tree = expect_intact({"/docs/sub/deep.txt"});
  // The file stays, its size too: the dropped pages read as zeros.
  ASSERT_EQ(tree.count("/docs/sub/deep.txt"), 1u);
  EXPECT_EQ(tree["/docs/sub/deep.txt"].data, std::string(5000, '\0'));
}

// Two files on the same pages: the first keeps them, the second gets a copy,
// so both read what they read before (here the same bytes: a bug's leftover).
TEST_F(FsckRepair, PagesSharedByTwoFilesAreCopiedForOne) {
  const ExtentValue a = extent_at(*dev_, ino_of("/docs/sub/deep.txt"), 0);
  const Key b_key = Key::of(ino_of("/many/f000"), KeyKind::kExtent, 0);
  auto b = value_of(*dev_, b_key);
  auto a_value = value_of(*dev_, Key::of(ino_of("/docs/sub/deep.txt"), KeyKind::kExtent, 0));
  ASSERT_EQ(b.size(), extent_value_size(1));
  ASSERT_EQ(a_value.size(), extent_value_size(2));
  // f000 now maps the first page of deep.txt, with that page's CRC.
  ExtentValue ev;
  std::memcpy(&ev, b.data(), sizeof ev);
  ev.phys = a.phys;
  std::memcpy(b.data(), &ev, sizeof ev);
  std::memcpy(b.data() + sizeof ev, a_value.data() + sizeof ev, 4);
  restamp(*dev_, leaf_of(*dev_, b_key));
  oracle_["/many/f000"].data =
      oracle_["/docs/sub/deep.txt"].data.substr(0, oracle_["/many/f000"].data.size());
  expect_repaired(Mode::kRepair, "shares pages with /docs/sub/deep.txt");
  expect_second_run_unchanged();
  expect_intact();
  EXPECT_NE(extent_at(*dev_, ino_of("/many/f000"), 0).phys, a.phys);
}

TEST_F(FsckRepair, ExtentOnATreePageIsGivenACopy) {
  const uint64_t leaf = leaf_of(*dev_, inode_key("/many/f010"));
  change_extent(*dev_, ino_of("/many/f150"), 0, [&](ExtentValue& ev) { ev.phys = leaf; });
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitUncorrected) << check.out;
  EXPECT_NE(check.out.find("/many/f150"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("the tree's own pages"), std::string::npos) << check.out;
  // The copy holds tree bytes, not the file's: its data fails its checksum,
  // which -y reports and leaves; with -E zero_bad_data it reads as zeros.
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitUncorrected) << repair.out;
  EXPECT_NE(repair.out.find("fails its checksum"), std::string::npos) << repair.out;
  FsckResult zero = fsck(Mode::kRepair, /*zero_bad_data=*/true);
  EXPECT_EQ(zero.code, fsck::kExitFixed) << zero.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  oracle_["/many/f150"].data = std::string(oracle_["/many/f150"].data.size(), '\0');
  expect_intact();
}

TEST_F(FsckRepair, DataPageThatFailsItsChecksumIsReportedAndKept) {
  const ExtentValue ev = extent_at(*dev_, ino_of("/docs/big.bin"), 0);
  break_page(*dev_, ev.phys + 5);
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitUncorrected) << check.out;
  EXPECT_NE(check.out.find("/docs/big.bin (inode " + std::to_string(ino_of("/docs/big.bin")) +
                           "): data at offset 20480"),
            std::string::npos)
      << check.out;
  std::vector<std::byte> before(dev_->raw(), dev_->raw() + dev_->size_bytes());
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitUncorrected) << repair.out;
  EXPECT_EQ(std::memcmp(before.data(), dev_->raw(), before.size()), 0) << "nothing to change";
  mount();
  std::string buf(4096, '\0');
  EXPECT_EQ(fs_->read(InodeNo{ino_of("/docs/big.bin")}, 20480, 4096, buf.data()).error(), EIO);
  unmount();
  expect_intact({"/docs/big.bin"});
}

TEST_F(FsckRepair, ZeroBadDataReplacesTheBadPageWithZeros) {
  const ExtentValue ev = extent_at(*dev_, ino_of("/docs/big.bin"), 0);
  break_page(*dev_, ev.phys + 5);
  FsckResult repair = fsck(Mode::kRepair, /*zero_bad_data=*/true);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  EXPECT_NE(repair.out.find("offset 20480"), std::string::npos) << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  std::string& data = oracle_["/docs/big.bin"].data;
  std::fill(data.begin() + 20480, data.begin() + 24576, '\0');
  expect_intact();
}

// ---- fsck -y: both superblock copies -----------------------------------------------

TEST_F(FsckRepair, BothSuperblocksDamagedAreRebuiltFromTheJournal) {
  const Superblock before = superblock(*dev_);
  break_page(*dev_, 0);
  break_page(*dev_, 1);
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitOperational) << check.out;
  EXPECT_NE(check.out.find("fsck.pagefs -y rebuilds them"), std::string::npos) << check.out;
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  EXPECT_NE(repair.out.find("from the newest copy of it in the journal"), std::string::npos)
      << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  const Superblock after = superblock(*dev_);
  EXPECT_EQ(std::memcmp(after.uuid, before.uuid, sizeof before.uuid), 0);
  EXPECT_EQ(after.next_inode, before.next_inode);
  expect_intact();
}

TEST_F(FsckRepair, ZeroedSuperblocksAreRebuiltFromTheLayoutAndThePages) {
  Superblock sb = superblock(*dev_);
  std::memset(page_at(*dev_, 0), 0, 2 * kPageBytes);
  std::memset(page_at(*dev_, sb.journal_start), 0, sb.journal_pages * kPageBytes);
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  EXPECT_NE(repair.out.find("the layout of the device"), std::string::npos) << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  EXPECT_EQ(superblock(*dev_).data_start, sb.data_start);
  EXPECT_EQ(superblock(*dev_).next_inode, sb.next_inode);
  // The layout has no feature bits: the xattrs tell that their values carry
  // checksums, and keep them.
  EXPECT_NE(superblock(*dev_).features_incompat & kIncompatXattrCrc, 0u);
  expect_intact();
  // New inode numbers do not reuse old ones.
  mount();
  auto note = fs_->getxattr(InodeNo{ino_of("/docs/a.txt")}, "user.note");
  ASSERT_TRUE(note.ok()) << std::strerror(note.error());
  EXPECT_EQ(*note, "kept");
  auto a = fs_->mknod(kRootInode, "new", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  EXPECT_GE(a->ino, sb.next_inode);
  unmount();
}

TEST_F(FsckRepair, ADeviceWithoutPagefsIsNotGivenASuperblock) {
  std::memset(dev_->raw(), 0, dev_->size_bytes());
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitOperational) << repair.out;
  EXPECT_NE(repair.out.find("not a pagefs filesystem"), std::string::npos) << repair.out;
  for (size_t i = 0; i < 2 * kPageBytes; i++) ASSERT_EQ(dev_->raw()[i], std::byte{0});
}

// ---- fsck -y: the tree ---------------------------------------------------------------

class FsckTreeRepair : public FsckRepair {
 protected:
  // Zeroes the journal region, as if it had wrapped over every old
  // transaction: no copies of tree pages are left there.
  void forget_journal() {
    Superblock sb = superblock(*dev_);
    std::memset(page_at(*dev_, sb.journal_start), 0, sb.journal_pages * kPageBytes);
  }
  // The paths of the inodes that have items in `leaf`.
  std::set<std::string> paths_in_leaf(uint64_t leaf) {
    std::set<uint64_t> inos;
    Node node = node_at(*dev_, leaf);
    for (uint16_t i = 0; i < node.count(); i++) inos.insert(node.key_at(i).ino);
    std::set<std::string> paths;
    for (const auto& [path, e] : oracle_) {
      if (inos.count(e.ino) > 0) paths.insert(path);
    }
    return paths;
  }
};

TEST_F(FsckTreeRepair, DamagedRootIsRebuiltFromTheLeavesBelowIt) {
  Superblock sb = superblock(*dev_);
  ASSERT_GT(sb.tree_height, 1u) << "populate() makes a tree of several levels";
  forget_journal();
  break_page(*dev_, sb.tree_root);
  expect_repaired(Mode::kRepair, "tree node " + std::to_string(sb.tree_root));
  EXPECT_NE(superblock(*dev_).tree_root, sb.tree_root);
  expect_second_run_unchanged();
  expect_intact();
}

// With the root lost, every leaf is recovered from the data region, the
// newest copy of each key range winning it. A leaf whose last key was
// damaged under a valid checksum into an inode past next_inode must not win
// the whole range up to that key, hiding every leaf in between.
TEST_F(FsckTreeRepair, ALeafWithAnImpossibleKeyDoesNotHideTheLeavesAfterIt) {
  Superblock sb = superblock(*dev_);
  ASSERT_GT(sb.tree_height, 1u);
  forget_journal();
  break_page(*dev_, sb.tree_root);
  const uint64_t leaf = leaf_of(*dev_, Key::of(1, KeyKind::kInode, 0));
  Node node = node_at(*dev_, leaf);
  const uint16_t last = uint16_t(node.count() - 1);
  std::byte* page = page_at(*dev_, leaf);
  uint16_t cell;
  std::memcpy(&cell, page + kSlotsOffset + 2 * size_t{last}, sizeof cell);
  Key key = Key::load(page + cell);
  // What that item held goes: the inode's item, or the name an entry gave.
  uint64_t named = 0;
  if (key.kind == uint8_t(KeyKind::kDirent)) {
    DirentValue dv;
    std::memcpy(&dv, node.value_at(last).data(), sizeof dv);
    named = dv.ino;
  }
  std::set<std::string> lost;
  for (const auto& [path, entry] : oracle_) {
    if (entry.ino == key.ino || entry.ino == named) lost.insert(path);
  }
  key.ino = sb.next_inode + 1000;
  key.store(page + cell);
  PageHeader h;
  std::memcpy(&h, page, sizeof h);
  h.lsn = 1ull << 40;  // the newest copy of its range
  std::memcpy(page, &h, sizeof h);
  restamp(*dev_, leaf);
  expect_repaired(Mode::kRepair, "tree node " + std::to_string(sb.tree_root));
  expect_second_run_unchanged();
  expect_intact(lost);
}

TEST_F(FsckTreeRepair, DamagedLeafIsRestoredFromItsImageInTheJournal) {
  const uint64_t leaf = leaf_of(*dev_, inode_key("/many/f050"));
  ASSERT_NE(leaf, superblock(*dev_).tree_root);
  break_page(*dev_, leaf);
  expect_repaired(Mode::kRepair, "tree node " + std::to_string(leaf));
  expect_second_run_unchanged();
  expect_intact();
}

// Without another copy, the items of the leaf are lost: entries to the lost
// inodes go, their data pages are freed, and every other file is intact.
TEST_F(FsckTreeRepair, DamagedLeafWithoutCopiesLosesOnlyItsItems) {
  const uint64_t leaf = leaf_of(*dev_, inode_key("/many/f050"));
  std::set<std::string> lost = paths_in_leaf(leaf);
  ASSERT_FALSE(lost.empty());
  forget_journal();
  break_page(*dev_, leaf);
  FsckResult check = fsck(Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitUncorrected) << check.out;
  EXPECT_NE(check.out.find("tree node " + std::to_string(leaf)), std::string::npos) << check.out;
  FsckResult repair = fsck(Mode::kRepair);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  EXPECT_EQ(fsck(Mode::kCheck).code, fsck::kExitClean);
  expect_second_run_unchanged();
  // The files with items in the leaf are gone, recreated from the extents
  // that survive, or missing the data the leaf mapped; every other file is
  // as it was.
  expect_intact(lost);
}

TEST_F(FsckTreeRepair, ChildPointerToAPageInUseIsRebuilt) {
  ParentSlot ps = parent_of_leaf(*dev_, inode_key("/many/f100"));
  ASSERT_NE(ps.parent, 0u);
  ASSERT_GT(ps.slot, 0);
  Node parent = node_at(*dev_, ps.parent);
  set_child(*dev_, ps.parent, ps.slot, parent.child_at(ps.slot - 1));
  expect_repaired(Mode::kRepair, "already in use");
  expect_intact();
}

}  // namespace
}  // namespace pagefs::test
