// grow_filesystem (engine/resize.cc): a grown filesystem mounts with the new
// size, keeps its files, takes new data in the new space and passes fsck; a
// filesystem without room, a smaller size and a size past the device are
// refused with nothing changed; and a crash at any write of a resize leaves
// the old or the new filesystem, never a third. check_growth gives the same
// answers without the larger device.
#include "engine/resize.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "engine/recovery.h"
#include "fsck/run.h"
#include "tests/engine/corrupt.h"

namespace pagefs {
namespace {

constexpr uint64_t kSmallBytes = 8ull << 20;
constexpr uint64_t kLargeBytes = 48ull << 20;

// A device of `bytes` whose first bytes are those of `small`.
std::unique_ptr<MemDevice> copy_onto(const MemDevice& small, uint64_t bytes) {
  auto dev = std::make_unique<MemDevice>(bytes);
  std::memcpy(dev->raw(), small.raw(), small.size_bytes());
  return dev;
}

int fsck_code(Device& device) {
  FILE* sink = std::tmpfile();
  int code = fsck::run_fsck(device, "img", fsck::RunOptions{.out = sink, .err = sink});
  std::fclose(sink);
  return code;
}

uint64_t page_count(Device& device) {
  Superblock sb;
  std::string msg;
  EXPECT_TRUE(load_superblock(device, &sb, &msg).ok()) << msg;
  return sb.page_count;
}

class ResizeTest : public ::testing::Test {
 protected:
  // An 8 MiB filesystem holding /a (one page per byte value) on a 48 MiB device.
  void SetUp() override { make_base(FormatOptions{}); }

  void make_base(const FormatOptions& options) {
    MemDevice small(kSmallBytes);
    std::string msg;
    ASSERT_TRUE(format_device(small, options, &msg).ok()) << msg;
    base_ = copy_onto(small, kLargeBytes);
    auto fs = mount(*base_);
    ASSERT_NE(fs, nullptr);
    auto a = fs->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{});
    ASSERT_TRUE(a.ok());
    std::string data(64 << 10, 'a');
    ASSERT_TRUE(fs->write(InodeNo{a->ino}, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(fs->unmount().ok());
  }

  static std::unique_ptr<FileSystem> mount(Device& device) {
    std::string msg;
    auto fs =
        FileSystem::mount(std::make_unique<FaultDevice>(device, 1), MountOptions{8 << 20}, &msg);
    EXPECT_TRUE(fs.ok()) << msg;
    return fs.ok() ? std::move(fs).value() : nullptr;
  }

  // Mounts `device`, checks /a, writes `bytes` more in /b, unmounts.
  static void use(Device& device, uint64_t bytes) {
    auto fs = mount(device);
    ASSERT_NE(fs, nullptr);
    auto a = fs->lookup(kRootInode, "a");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->size, 64u << 10);
    auto b = fs->mknod(kRootInode, "b", S_IFREG | 0644, 0, Caller{});
    ASSERT_TRUE(b.ok());
    std::string chunk(1 << 20, 'b');
    for (uint64_t off = 0; off < bytes; off += chunk.size()) {
      auto n = fs->write(InodeNo{b->ino}, off, chunk.data(), chunk.size());
      ASSERT_TRUE(n.ok()) << "at " << off << ": " << std::strerror(n.error());
    }
    ASSERT_TRUE(fs->unmount().ok());
  }

  std::unique_ptr<MemDevice> base_;
};

TEST_F(ResizeTest, GrownFilesystemTakesDataPastItsOldSize) {
  ResizeResult result;
  std::string msg;
  ASSERT_TRUE(grow_filesystem(*base_, kLargeBytes, &result, &msg).ok()) << msg;
  EXPECT_EQ(result.old_pages, kSmallBytes / 4096);
  EXPECT_EQ(result.new_pages, kLargeBytes / 4096);
  EXPECT_EQ(page_count(*base_), kLargeBytes / 4096);
  EXPECT_EQ(fsck_code(*base_), 0);
  use(*base_, 32ull << 20);  // four times what the old size held
  EXPECT_EQ(fsck_code(*base_), 0);
}

TEST_F(ResizeTest, GrowsAgainIntoTheOtherSlot) {
  auto big = copy_onto(*base_, 128ull << 20);
  ResizeResult result;
  std::string msg;
  for (uint64_t bytes : {16ull << 20, 40ull << 20, 128ull << 20}) {
    ASSERT_TRUE(grow_filesystem(*big, bytes, &result, &msg).ok()) << bytes << ": " << msg;
    EXPECT_EQ(page_count(*big), bytes / 4096);
    EXPECT_EQ(fsck_code(*big), 0) << bytes;
  }
  use(*big, 100ull << 20);
  EXPECT_EQ(fsck_code(*big), 0);
}

TEST_F(ResizeTest, RefusesToShrinkOrPassTheDevice) {
  ResizeResult result;
  std::string msg;
  EXPECT_EQ(grow_filesystem(*base_, kSmallBytes - 4096, &result, &msg).error(), EINVAL);
  EXPECT_NE(msg.find("shrink"), std::string::npos) << msg;
  EXPECT_EQ(grow_filesystem(*base_, kLargeBytes + 4096, &result, &msg).error(), EINVAL);
  EXPECT_EQ(page_count(*base_), kSmallBytes / 4096);
  ASSERT_TRUE(grow_filesystem(*base_, kSmallBytes, &result, &msg).ok()) << msg;
  EXPECT_EQ(result.new_pages, result.old_pages);
  EXPECT_EQ(fsck_code(*base_), 0);
}

TEST_F(ResizeTest, FilesystemWithoutRoomIsRefusedUnchanged) {
  make_base(FormatOptions{.grow_limit_bytes = kSmallBytes});
  std::vector<std::byte> before(base_->raw(), base_->raw() + kLargeBytes);
  ResizeResult result;
  std::string msg;
  EXPECT_EQ(grow_filesystem(*base_, kLargeBytes, &result, &msg).error(), ENOSPC);
  EXPECT_NE(msg.find("without room"), std::string::npos) << msg;
  EXPECT_EQ(result.max_pages, kSmallBytes / 4096);
  EXPECT_EQ(std::memcmp(before.data(), base_->raw(), kLargeBytes), 0);
}

TEST_F(ResizeTest, GrowLimitBoundsTheNewSize) {
  make_base(FormatOptions{.grow_limit_bytes = 24ull << 20});
  ResizeResult result;
  std::string msg;
  // Each slot holds the bitmap of the limit: one bitmap page, which maps 127 MiB.
  ASSERT_TRUE(grow_filesystem(*base_, kLargeBytes, &result, &msg).ok()) << msg;
  EXPECT_GE(result.max_pages * 4096, kLargeBytes);
  EXPECT_EQ(fsck_code(*base_), 0);
}

// What `pagefs resize` asks before it extends a file: answered from the
// superblock on the device as it is, writing nothing.
TEST_F(ResizeTest, CheckGrowthAnswersBeforeTheDeviceIsLarger) {
  make_base(FormatOptions{.grow_limit_bytes = 24ull << 20});
  MemDevice small(kSmallBytes);
  std::memcpy(small.raw(), base_->raw(), kSmallBytes);
  std::vector<std::byte> before(small.raw(), small.raw() + kSmallBytes);
  ResizeResult result;
  std::string msg;
  ASSERT_TRUE(check_growth(small, kLargeBytes, &result, &msg).ok()) << msg;
  EXPECT_EQ(result.old_pages, kSmallBytes / 4096);
  EXPECT_GE(result.max_pages * 4096, kLargeBytes);
  EXPECT_EQ(check_growth(small, kSmallBytes - 4096, &result, &msg).error(), EINVAL);
  EXPECT_NE(msg.find("shrink"), std::string::npos) << msg;
  msg.clear();
  const uint64_t past_room = (result.max_pages + 1) * 4096;
  EXPECT_EQ(check_growth(small, past_room, &result, &msg).error(), ENOSPC);
  EXPECT_NE(msg.find("no room"), std::string::npos) << msg;
  EXPECT_EQ(std::memcmp(before.data(), small.raw(), kSmallBytes), 0);
}

TEST_F(ResizeTest, CrashAtAnyWriteLeavesTheOldOrTheNewFilesystem) {
  auto recorded = copy_onto(*base_, kLargeBytes);
  FaultDevice recorder(*recorded, 7, /*max_events=*/1024);
  ResizeResult result;
  std::string msg;
  ASSERT_TRUE(grow_filesystem(recorder, kLargeBytes, &result, &msg).ok()) << msg;
  const size_t events = recorder.events().size();
  ASSERT_GE(events, 6u);  // bitmap, flush, page 0, flush, page 1, flush
  const uint64_t old_pages = kSmallBytes / 4096, new_pages = kLargeBytes / 4096;
  for (size_t c = 0; c <= events; c++) {
    SCOPED_TRACE("crash after event " + std::to_string(c));
    auto image = copy_onto(*base_, kLargeBytes);
    ASSERT_TRUE(recorder.replay(*image, c).ok());
    const uint64_t pages = page_count(*image);
    EXPECT_TRUE(pages == old_pages || pages == new_pages) << pages;
    EXPECT_EQ(fsck_code(*image), 0);
    use(*image, (pages == new_pages ? 24ull : 2ull) << 20);
    EXPECT_EQ(fsck_code(*image), 0);
  }
}

TEST_F(ResizeTest, TornWriteLeavesAMountableOldOrNewFilesystem) {
  for (uint64_t tear = 1;; tear++) {
    SCOPED_TRACE("write " + std::to_string(tear) + " torn");
    auto image = copy_onto(*base_, kLargeBytes);
    FaultDevice faulty(*image, tear, 0);
    faulty.tear_write(tear);
    ResizeResult result;
    std::string msg;
    (void)grow_filesystem(faulty, kLargeBytes, &result, &msg);
    if (!faulty.crashed()) break;  // every write was torn once
    const uint64_t pages = page_count(*image);
    EXPECT_TRUE(pages == kSmallBytes / 4096 || pages == kLargeBytes / 4096) << pages;
    // A torn superblock copy is reported by fsck until the next checkpoint
    // rewrites it; the filesystem itself mounts and works.
    use(*image, 2ull << 20);
  }
}

}  // namespace
}  // namespace pagefs
