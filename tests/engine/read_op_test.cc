// Readers do not read the device under the filesystem lock
// (FileSystem::Impl::read_op): a getattr that misses a tree page lets the
// lock go while the page is read, so a change that needs the lock
// exclusively goes on meanwhile. (The lock prefers writers: a reader that held
// it across the read would keep that change, and behind it every other
// reader, waiting on the device.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "tests/engine/corrupt.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/device_ref.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

using namespace std::chrono_literals;

// Forwards to another device; once armed, the first read of `page` (of any
// page, with kAnyPage) waits until released.
class GateDevice final : public test::DeviceRef {
 public:
  using DeviceRef::DeviceRef;
  static constexpr uint64_t kAnyPage = UINT64_MAX;

  void arm(uint64_t page) {
    std::lock_guard lock(mu_);
    page_ = page;
  }
  bool wait_reached() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return reached_; });
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

  Status read(std::span<const IoRequest> batch) override {
    std::unique_lock lock(mu_);
    for (const IoRequest& r : batch) {
      if (page_ != 0 && (page_ == kAnyPage || r.offset == page_ * 4096)) {
        page_ = 0;
        reached_ = true;
        cv_.notify_all();
        cv_.wait_for(lock, 30s, [&] { return released_; });
      }
    }
    lock.unlock();
    return DeviceRef::read(batch);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t page_ = 0;
  bool reached_ = false, released_ = false;
};

const MountOptions kOptions{.cache_bytes = 16 << 20,
                            .commit_interval_s = test::crash::kNoTimedCommit_s};

// Mounts `dev` with a GateDevice under it, returned in `*gate`.
std::unique_ptr<FileSystem> mount_gated(MemDevice& dev, GateDevice** gate) {
  auto device = std::make_unique<GateDevice>(dev);
  *gate = device.get();
  std::string msg;
  auto mounted = FileSystem::mount(std::move(device), kOptions, &msg);
  EXPECT_TRUE(mounted.ok()) << msg;
  return mounted.ok() ? std::move(mounted).value() : nullptr;
}

// With a reader held inside its device read, a mkdir (which takes the lock
// exclusively) must complete; then the read is let go.
void expect_mkdir_meanwhile(FileSystem& fs, GateDevice& gate, const char* reader) {
  std::atomic<bool> made{false};
  std::thread writer([&] {
    EXPECT_TRUE(fs.mkdir(kRootInode, "d", 0755, Caller{}).ok());
    made = true;
  });
  for (int i = 0; i < 300 && !made; i++) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(made) << "the mkdir waited for " << reader << "'s device read";
  gate.release();
  writer.join();
}

TEST(ReadOp, AReaderWaitingForTheDeviceHoldsNoLock) {
  MemDevice dev(64ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{}, &msg).ok()) << msg;
  InodeNo target, last;
  {
    auto fs = FileSystem::mount(std::make_unique<test::DeviceRef>(dev), kOptions, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    for (int i = 0; i < 3000; i++) {
      auto a = (*fs)->mknod(kRootInode, "f" + std::to_string(i), S_IFREG | 0644, 0, Caller{});
      ASSERT_TRUE(a.ok());
      if (i == 1500) target = InodeNo{a->ino};
      last = InodeNo{a->ino};
    }
    ASSERT_TRUE((*fs)->unmount().ok());
  }
  const uint64_t leaf = test::leaf_of(dev, Key::of(target.value, KeyKind::kInode, 0));
  ASSERT_NE(leaf, test::leaf_of(dev, Key::of(last.value, KeyKind::kInode, 0)));

  GateDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = mount_gated(dev, &device);
  ASSERT_NE(fs, nullptr);
  // What the mkdir below needs, read now: the root's record and entries, the
  // last inode's leaf.
  ASSERT_TRUE(fs->getattr(kRootInode).ok());
  ASSERT_EQ(fs->lookup(kRootInode, "no such name").error(), ENOENT);
  ASSERT_TRUE(fs->getattr(last).ok());

  device->arm(leaf);
  std::thread reader([&] { EXPECT_TRUE(fs->getattr(target).ok()); });
  ASSERT_TRUE(device->wait_reached());
  expect_mkdir_meanwhile(*fs, *device, "a getattr");
  reader.join();
  test::unmount_and_expect_clean(fs, dev);
}

// The same for a getxattr whose value lies in pages of its own: their
// read-ahead, too, waits until the lock is let go (BufferPool::NoDeviceReads
// puts it off to the miss that follows).
TEST(ReadOp, AnXattrValueInPagesIsReadWithoutTheLock) {
  MemDevice dev(64ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{}, &msg).ok()) << msg;
  const std::string value = test::crash::pattern(7, 3 * 4096 + 100);  // four pages
  InodeNo file;
  {
    auto fs = FileSystem::mount(std::make_unique<test::DeviceRef>(dev), kOptions, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    auto a = (*fs)->mknod(kRootInode, "f", S_IFREG | 0644, 0, Caller{});
    ASSERT_TRUE(a.ok());
    file = InodeNo{a->ino};
    ASSERT_TRUE((*fs)->setxattr(file, "user.big", value, 0).ok());
    ASSERT_TRUE((*fs)->unmount().ok());
  }
  GateDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = mount_gated(dev, &device);
  ASSERT_NE(fs, nullptr);
  // Everything but the value's pages, read now: the tree the mkdir and the
  // getxattr need.
  ASSERT_TRUE(fs->getattr(kRootInode).ok());
  ASSERT_EQ(fs->lookup(kRootInode, "no such name").error(), ENOENT);
  ASSERT_TRUE(fs->listxattr(file).ok());

  device->arm(GateDevice::kAnyPage);
  std::string got;
  std::thread reader([&] {
    auto v = fs->getxattr(file, "user.big");
    ASSERT_TRUE(v.ok()) << std::strerror(v.error());
    got = *v;
  });
  ASSERT_TRUE(device->wait_reached());
  expect_mkdir_meanwhile(*fs, *device, "a getxattr");
  reader.join();
  EXPECT_EQ(got, value);
  test::unmount_and_expect_clean(fs, dev);
}

}  // namespace
}  // namespace pagefs
