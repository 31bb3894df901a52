// A fixture for engine tests of filesystem operations: a freshly formatted
// in-memory device, mounted, with helpers to make files and to remount. Every
// test must leave a filesystem that fsck finds clean.
//
// Thread-safety: the test's thread only.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <memory>
#include <string>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"

namespace pagefs::test {

// Mounts `dev` through a FaultDevice, which `*fault` then names if asked;
// null, with the test failed, if the mount fails.
inline std::unique_ptr<FileSystem> mount_faultable(MemDevice& dev, const MountOptions& options,
                                                   FaultDevice** fault = nullptr) {
  auto device = std::make_unique<FaultDevice>(dev, 1);
  if (fault != nullptr) *fault = device.get();
  std::string msg;
  auto mounted = FileSystem::mount(std::move(device), options, &msg);
  EXPECT_TRUE(mounted.ok()) << msg;
  return mounted.ok() ? std::move(mounted).value() : nullptr;
}

// Unmounts `fs` and expects fsck to find `dev` clean.
inline void unmount_and_expect_clean(std::unique_ptr<FileSystem>& fs, MemDevice& dev) {
  ASSERT_TRUE(fs->unmount().ok());
  fs.reset();
  crash::FsckOutcome fsck = crash::run_fsck_overlay(dev);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
}

class EngineFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(64ull << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
  }

  void TearDown() override {
    if (fs_) unmount_and_expect_clean(fs_, *dev_);
  }

  void mount(const MountOptions& options = MountOptions{.cache_bytes = 16 << 20}) {
    fs_ = mount_faultable(*dev_, options);
    ASSERT_TRUE(fs_);
  }

  void remount() {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
    mount();
  }

  InodeNo create(InodeNo dir, const std::string& name, const Caller& caller = Caller{}) {
    auto a = fs_->mknod(dir, name, S_IFREG | 0644, 0, caller);
    EXPECT_TRUE(a.ok()) << name << ": " << std::strerror(a.error());
    return InodeNo{a.ok() ? a->ino : 0};
  }

  InodeNo mkdir(InodeNo dir, const std::string& name, const Caller& caller = Caller{}) {
    auto a = fs_->mkdir(dir, name, 0755, caller);
    EXPECT_TRUE(a.ok()) << name << ": " << std::strerror(a.error());
    return InodeNo{a.ok() ? a->ino : 0};
  }

  // The errno of a failed call, 0 for success.
  template <class R>
  static int error_of(const R& r) {
    return r.ok() ? 0 : r.error();
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
};

}  // namespace pagefs::test
