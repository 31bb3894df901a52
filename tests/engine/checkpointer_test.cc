// The background checkpointer against commits that end while it runs.
//
// A checkpoint reads which transactions still have pages that are not home,
// flushes, then moves the journal's tail. A transaction that becomes durable
// inside that window has pages that are not home either; the tail must stop
// before its record, or a crash right after the move loses it although its
// fsync returned (and the pages that write-back takes home later leave a
// half-applied transaction). The test holds the checkpointer inside its flush
// while a second fsync commits, lets it move the tail, cuts the power, and
// recovers the device.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/device_ref.h"

namespace pagefs {
namespace {

using namespace std::chrono_literals;

// Forwards to another device; the first flush() after arm() runs a hook first.
class HookDevice final : public test::DeviceRef {
 public:
  using DeviceRef::DeviceRef;

  void arm(std::function<void()> hook) {
    std::lock_guard lock(mu_);
    hook_ = std::move(hook);
  }

  Status flush() override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      hook.swap(hook_);
    }
    if (hook) hook();
    return DeviceRef::flush();
  }

 private:
  std::mutex mu_;
  std::function<void()> hook_;
};

// A one-way signal between two threads, with a deadline so a bug fails the
// test instead of hanging it.
class Signal {
 public:
  void raise() {
    {
      std::lock_guard lock(mu_);
      raised_ = true;
    }
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return raised_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool raised_ = false;
};

Result<InodeNo> write_file(FileSystem& fs, const std::string& name, const std::string& bytes) {
  PAGEFS_ASSIGN(Attr a, fs.mknod(kRootInode, name, S_IFREG | 0644, 0, Caller{}));
  PAGEFS_ASSIGN(size_t n, fs.write(InodeNo{a.ino}, 0, bytes.data(), bytes.size()));
  if (n != bytes.size()) return Err{EIO};
  PAGEFS_TRY(fs.fsync(InodeNo{a.ino}, false));
  return InodeNo{a.ino};
}

TEST(Checkpointer, TailStopsBeforeATransactionThatCommitsDuringTheCheckpoint) {
  MemDevice dev(64ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{}, &msg).ok()) << msg;
  FaultDevice fault(dev, 1);
  auto hooked = std::make_unique<HookDevice>(fault);
  HookDevice* hook = hooked.get();
  auto mounted = FileSystem::mount(
      std::move(hooked),
      MountOptions{.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s},
      &msg);
  ASSERT_TRUE(mounted.ok()) << msg;
  std::unique_ptr<FileSystem> fs = std::move(mounted).value();
  FileSystem::Impl& impl = fs->internals_for_testing();

  const std::string first(3 * 4096 + 100, 'a'), second(5 * 4096 + 7, 'b');
  ASSERT_TRUE(write_file(*fs, "first", first).ok());
  const uint64_t tail_before = impl.journal_->tail();

  // The next flush is the checkpoint's, between reading the pinned
  // transactions and moving the tail: hold it there while "second" commits.
  Signal in_flush, committed;
  hook->arm([&] {
    in_flush.raise();
    committed.wait();
  });
  impl.checkpointer_->kick();
  ASSERT_TRUE(in_flush.wait()) << "the checkpoint never flushed";
  auto second_ino = write_file(*fs, "second", second);
  committed.raise();
  ASSERT_TRUE(second_ino.ok()) << std::strerror(second_ino.error());

  // Once the tail has moved (past "first" at least), the power goes.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (impl.journal_->tail() == tail_before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_NE(impl.journal_->tail(), tail_before) << "the checkpoint never moved the tail";
  fault.drop_writes_after(fault.write_count());
  auto image = std::make_unique<MemDevice>(dev.size_bytes());
  std::memcpy(image->raw(), dev.raw(), dev.size_bytes());
  fs.reset();

  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*image);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
  auto recovered = FileSystem::mount(std::make_unique<FaultDevice>(*image, 2),
                                     MountOptions{.cache_bytes = 16 << 20}, &msg);
  ASSERT_TRUE(recovered.ok()) << msg;
  for (const auto& [name, bytes] : {std::pair{"first", &first}, std::pair{"second", &second}}) {
    auto a = (*recovered)->lookup(kRootInode, name);
    ASSERT_TRUE(a.ok()) << name << " was fsynced but is gone after the crash";
    std::string got(bytes->size() + 1, '\0');
    auto n = (*recovered)->read(InodeNo{a->ino}, 0, got.size(), got.data());
    ASSERT_TRUE(n.ok()) << name;
    got.resize(*n);
    EXPECT_EQ(got, *bytes) << name;
  }
  EXPECT_TRUE((*recovered)->unmount().ok());
}

}  // namespace
}  // namespace pagefs
