// A full filesystem, again and again: a workload fills the device until
// writes fail with ENOSPC, checks every file byte for byte, deletes and
// truncates some, and starts over. A full filesystem must stay consistent
// and usable: a write that runs out keeps whole chunks and says how much,
// a failed call changes nothing, unlink works when nothing is free, and
// fsck is clean after every round.
//
// PAGEFS_ENOSPC_ROUNDS sets the number of rounds (default 20).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <random>
#include <string>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"
#include "tests/test_env.h"

namespace pagefs {
namespace {

const Caller kUser{1000, 1000};

class EnospcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(12ull << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
  }

  void mount() {
    std::string msg;
    auto fs = FileSystem::mount(std::make_unique<FaultDevice>(*dev_, 1),
                                MountOptions{.cache_bytes = 4 << 20}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    fs_ = std::move(fs).value();
  }

  void unmount_and_check(const std::string& when) {
    ASSERT_TRUE(fs_->unmount().ok()) << when;
    fs_.reset();
    test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
    ASSERT_EQ(fsck.code, 0) << when << ":\n" << fsck.text;
    mount();
  }

  // Appends or overwrites `name` until the device is full. Returns false once
  // a write could not place a single chunk.
  bool write_some(const std::string& name) {
    auto attr = fs_->lookup(kRootInode, name);
    if (!attr.ok()) {
      attr = fs_->mknod(kRootInode, name, S_IFREG | 0644, 0, kUser);
      if (!attr.ok()) {
        EXPECT_EQ(attr.error(), ENOSPC) << name;
        EXPECT_EQ(fs_->lookup(kRootInode, name).error(), ENOENT) << "a failed create left " << name;
        return false;
      }
      files_[name];
    }
    std::string& want = files_[name];
    uint64_t off = rng_() % 4 == 0 && !want.empty() ? rng_() % want.size() : want.size();
    size_t len = 1 + rng_() % (600 << 10);
    std::string data = test::crash::pattern(rng_(), len);
    auto n = fs_->write(InodeNo{attr->ino}, off, data.data(), data.size());
    if (!n.ok()) {
      EXPECT_EQ(n.error(), ENOSPC) << name;
      return false;
    }
    if (want.size() < off + *n) want.resize(off + *n, '\0');
    want.replace(off, *n, data, 0, *n);
    return *n == len;
  }

  void check_files(const std::string& when) {
    for (const auto& [name, want] : files_) {
      auto attr = fs_->lookup(kRootInode, name);
      ASSERT_TRUE(attr.ok()) << when << ": " << name;
      ASSERT_EQ(attr->size, want.size()) << when << ": " << name;
      std::string got(want.size(), '\0');
      auto n = fs_->read(InodeNo{attr->ino}, 0, got.size(), got.data());
      ASSERT_TRUE(n.ok()) << when << ": " << name;
      ASSERT_EQ(*n, want.size()) << when << ": " << name;
      ASSERT_TRUE(got == want) << when << ": " << name << " differs";
    }
  }

  // Deletes about half the files and truncates some of the others.
  void thin_out() {
    for (auto it = files_.begin(); it != files_.end();) {
      auto attr = fs_->lookup(kRootInode, it->first);
      ASSERT_TRUE(attr.ok());
      if (rng_() % 2 == 0) {
        ASSERT_TRUE(fs_->unlink(kRootInode, it->first, kUser).ok()) << it->first;
        ASSERT_TRUE(fs_->release_inode(InodeNo{attr->ino}).ok()) << it->first;
        it = files_.erase(it);
        continue;
      }
      if (rng_() % 3 == 0) {
        SetAttr c;
        c.set_size = true;
        c.size = it->second.size() / 3;
        ASSERT_TRUE(fs_->setattr(InodeNo{attr->ino}, c).ok()) << it->first;
        it->second.resize(c.size);
      }
      ++it;
    }
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  std::map<std::string, std::string> files_;
  std::mt19937_64 rng_{testenv::seed_from_env()};
  int next_name_ = 0;
};

TEST_F(EnospcTest, FillingTheDeviceAgainAndAgainStaysConsistent) {
  const uint64_t rounds = testenv::env_u64("PAGEFS_ENOSPC_ROUNDS", 20);
  for (uint64_t round = 0; round < rounds; round++) {
    const std::string when = "round " + std::to_string(round) +
                             " (PAGEFS_SEED=" + std::to_string(testenv::seed_from_env()) + ")";
    int full = 0;
    for (int step = 0; step < 2000 && full < 3; step++) {
      bool fresh = files_.empty() || rng_() % 3 == 0;
      std::string name = fresh ? "f" + std::to_string(next_name_++)
                               : std::next(files_.begin(), rng_() % files_.size())->first;
      if (!write_some(name)) full++;
      ASSERT_FALSE(HasFailure()) << when;
    }
    ASSERT_GT(full, 0) << when << ": the device never filled";
    EXPECT_FALSE(fs_->internals_for_testing().failed_) << when;
    EXPECT_LT(fs_->stats().free_pages, 40u) << when;
    ASSERT_NO_FATAL_FAILURE(check_files(when));
    ASSERT_NO_FATAL_FAILURE(thin_out());
    ASSERT_NO_FATAL_FAILURE(check_files(when + ", thinned"));
    if (round % 2 == 0) {
      ASSERT_NO_FATAL_FAILURE(unmount_and_check(when));
      ASSERT_NO_FATAL_FAILURE(check_files(when + ", remounted"));
    }
  }
  ASSERT_NO_FATAL_FAILURE(unmount_and_check("the end"));
  ASSERT_NO_FATAL_FAILURE(check_files("the end"));
}

}  // namespace
}  // namespace pagefs
