// Journal tests: recovery stops at the first record that is not whole,
// whatever is wrong with it, and never applies part of a record. Records are
// forged with every checksum recomputed, so that only the impossible field
// stands between them and replay; mount (Journal::replay) and fsck -n
// (OverlayDevice) must agree on where the journal ends.
#include "engine/journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "engine/recovery.h"
#include "fsck/checker.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

using test::RecordRef;

constexpr int kFiles = 8;

class JournalTest : public ::testing::Test {
 protected:
  // An image whose journal holds kFiles committed transactions, each creating
  // one file f<i>, that a crash kept from being checkpointed.
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    auto device = std::make_unique<FaultDevice>(dev_, 2);
    FaultDevice* faults = device.get();
    auto fs = FileSystem::mount(std::move(device), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    for (int i = 0; i < kFiles; i++) {
      ASSERT_TRUE((*fs)->mknod(kRootInode, name(i), S_IFREG | 0644, 0, Caller{}).ok());
      ASSERT_TRUE((*fs)->fsync(kRootInode, false).ok());
    }
    faults->drop_writes_after(faults->write_count());  // the crash
    fs->reset();
    records_ = test::journal_records(dev_);
    ASSERT_EQ(records_.size(), size_t(kFiles));
  }

  static std::string name(int i) { return "f" + std::to_string(i); }

  // Scans the journal as recovery would, counting the images it is handed.
  RecoveryResult scan() {
    auto r = Journal::scan(dev_, test::superblock(dev_),
                           [](PageNo, const std::byte*) { return Status(); });
    EXPECT_TRUE(r.ok()) << strerror(r.error());
    return r.ok() ? *r : RecoveryResult{};
  }

  // Mount recovers exactly the files of the first `whole` records, fsck -n
  // sees the same, and after an unmount fsck finds the image clean.
  void expect_recovery_stops_at(size_t whole) {
    RecoveryResult overlay;
    std::string msg;
    ASSERT_TRUE(OverlayDevice::open(dev_, &overlay, &msg).ok()) << msg;
    EXPECT_EQ(overlay.transactions, whole) << "fsck -n replays a different journal";
    test::crash::FsckOutcome before = test::crash::run_fsck_overlay(dev_);
    EXPECT_EQ(before.code, fsck::kExitClean) << before.text;
    auto fs =
        FileSystem::mount(std::make_unique<FaultDevice>(dev_, 3), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << "mount: " << msg;
    for (int i = 0; i < kFiles; i++) {
      bool present = (*fs)->lookup(kRootInode, name(i)).ok();
      EXPECT_EQ(present, size_t(i) < whole) << name(i);
    }
    ASSERT_TRUE((*fs)->unmount().ok());
    test::crash::FsckOutcome after = test::crash::run_fsck(dev_, "recovered");
    EXPECT_EQ(after.code, fsck::kExitClean) << after.text;
  }

  // Changes image `i` of record `r` and reseals the record.
  void forge_image(size_t r, uint32_t i, void (*change)(JournalImage&, const Superblock&)) {
    JournalImage img = test::image_entry(dev_, records_[r], i);
    change(img, test::superblock(dev_));
    test::put_image_entry(dev_, records_[r], i, img);
    test::reseal(dev_, records_[r]);
  }

  MemDevice dev_{64 << 20};
  std::vector<RecordRef> records_;
};

TEST_F(JournalTest, WholeJournalIsReplayed) {
  EXPECT_EQ(scan().transactions, size_t(kFiles));
  expect_recovery_stops_at(kFiles);
}

// A target inside the journal region would overwrite records still to be
// read; the record is not whole.
TEST_F(JournalTest, ImageTargetInsideTheJournalEndsRecoveryThere) {
  forge_image(3, 0,
              [](JournalImage& img, const Superblock& sb) { img.page_no = sb.journal_start + 1; });
  expect_recovery_stops_at(3);
}

TEST_F(JournalTest, ImageTargetPastTheEndEndsRecoveryThere) {
  forge_image(3, 0,
              [](JournalImage& img, const Superblock& sb) { img.page_no = sb.page_count + 7; });
  expect_recovery_stops_at(3);
}

TEST_F(JournalTest, ImageWithUnknownFlagsEndsRecoveryThere) {
  forge_image(5, 0, [](JournalImage& img, const Superblock&) { img.flags = 7; });
  expect_recovery_stops_at(5);
}

// The record is validated whole before any of its images is applied: the
// first images of a record whose second one is bad are not replayed either.
TEST_F(JournalTest, NoImageOfARecordIsVisitedUnlessAllAreValid) {
  ASSERT_GE(records_[4].header.image_count, 2u);
  forge_image(4, 1, [](JournalImage& img, const Superblock&) { img.stored_bytes -= 1; });
  uint64_t images_before = 0;
  for (size_t r = 0; r < 4; r++) images_before += records_[r].header.image_count;
  RecoveryResult result = scan();
  EXPECT_EQ(result.transactions, 4u);
  EXPECT_EQ(result.pages, images_before);
  expect_recovery_stops_at(4);
}

TEST_F(JournalTest, ImageTableLargerThanThePayloadEndsRecoveryThere) {
  RecordRef r = records_[2];
  JournalHeader h = r.header;
  h.image_count = 1000;
  std::memcpy(dev_.raw() + r.offset, &h, sizeof h);
  test::reseal(dev_, r);
  expect_recovery_stops_at(2);
}

// payload_bytes near 2^64: rounding it up to pages must not wrap around to a
// small record (and a CRC over 2^64 bytes).
TEST_F(JournalTest, HugePayloadSizeEndsRecoveryThere) {
  RecordRef r = records_[6];
  JournalHeader h = r.header;
  h.payload_bytes = ~uint64_t{0} - 40;
  h.header_crc = test::journal_header_crc(h);
  std::memcpy(dev_.raw() + r.offset, &h, sizeof h);
  expect_recovery_stops_at(6);
}

TEST_F(JournalTest, NonzeroReservedHeaderFieldEndsRecoveryThere) {
  RecordRef r = records_[1];
  JournalHeader h = r.header;
  h.reserved2 = 1;
  std::memcpy(dev_.raw() + r.offset, &h, sizeof h);
  test::reseal(dev_, r);
  expect_recovery_stops_at(1);
}

// An image of page 0 replaces the superblock: recovery replays it only if it
// is a valid superblock of this filesystem, so what recovery leaves on page 0
// is always the newest state, never a page a mount would have to ignore.
TEST_F(JournalTest, SuperblockImageOfAnotherGeometryEndsRecoveryThere) {
  alignas(4096) std::byte page[4096];
  Superblock sb = test::superblock(dev_);
  sb.page_count -= 1;  // valid on its own, but not this filesystem
  std::memset(page, 0, sizeof page);
  std::memcpy(page, &sb, sizeof sb);
  stamp_meta_page(page, sizeof page);
  test::forge_raw_record(dev_, records_[3], 0, page);
  expect_recovery_stops_at(3);
}

TEST_F(JournalTest, SuperblockImageThatIsNoSuperblockEndsRecoveryThere) {
  alignas(4096) std::byte page[4096];
  std::memset(page, 0x5a, sizeof page);
  test::forge_raw_record(dev_, records_[3], 0, page);
  expect_recovery_stops_at(3);
}

// The same forged record with a valid image of page 0 is replayed: the test
// above fails for the image, not for the forging.
TEST_F(JournalTest, ForgedRecordWithAValidSuperblockImageIsReplayed) {
  alignas(4096) std::byte page[4096];
  std::memcpy(page, test::page_at(dev_, 0), sizeof page);
  test::forge_raw_record(dev_, records_[3], 0, page);
  RecoveryResult result = scan();
  EXPECT_EQ(result.transactions, 4u);
}

// Transactions written home stay in the region until it wraps over them:
// scan_region finds them whatever the tail says, and skips damaged ones.
TEST_F(JournalTest, ScanRegionFindsTransactionsBehindTheTail) {
  std::string msg;
  {
    auto fs =
        FileSystem::mount(std::make_unique<FaultDevice>(dev_, 3), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    ASSERT_TRUE((*fs)->unmount().ok());  // replayed, checkpointed: the tail moved past all
  }
  EXPECT_EQ(scan().transactions, 0u);
  uint64_t images = 0;
  std::vector<uint64_t> lsns;
  auto found = Journal::scan_region(dev_, test::superblock(dev_),
                                    [&](uint64_t lsn, PageNo, const std::byte*) {
                                      if (lsns.empty() || lsns.back() != lsn) lsns.push_back(lsn);
                                      images++;
                                      return ok_status();
                                    });
  ASSERT_TRUE(found.ok());
  EXPECT_GE(*found, uint64_t(kFiles)) << "the crashed transactions and the mount's own";
  EXPECT_EQ(lsns.size(), *found);
  EXPECT_GE(images, *found);
  for (size_t i = 0; i < records_.size(); i++) {
    EXPECT_NE(std::find(lsns.begin(), lsns.end(), records_[i].lsn), lsns.end()) << i;
  }
  // A record whose payload no longer matches its checksum is not whole.
  dev_.raw()[records_[3].offset + sizeof(JournalHeader) + 20] ^= std::byte{1};
  auto fewer = Journal::scan_region(dev_, test::superblock(dev_),
                                    [](uint64_t, PageNo, const std::byte*) { return ok_status(); });
  ASSERT_TRUE(fewer.ok());
  EXPECT_EQ(*fewer, *found - 1);
}

}  // namespace
}  // namespace pagefs
