// RepairTest: the fixture of the fsck repair tests (fsck_repair_test.cc,
// fsck_random_test.cc).
//
// It formats an in-memory device, fills it through the engine with a known
// tree (directories, small and multi-extent files, a sparse file, hard links,
// a symlink, xattrs, and enough files to make the B+tree several levels
// deep), and remembers every file's contents: the oracle. Tests then damage
// the unmounted image with the helpers of corrupt.h, run fsck in-process
// (fsck/run.h) and compare what a mount shows with the oracle.
//
// Thread-safety: none; one test at a time.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/filesystem.h"
#include "engine/mem_device.h"
#include "fsck/run.h"

namespace pagefs::test {

// What a path holds, as the oracle and a walk of a mount describe it.
struct Entry {
  char type = 'f';   // 'f' file, 'd' directory, 'l' symlink
  std::string data;  // file contents or symlink target
  uint64_t ino = 0;
};
using Tree = std::map<std::string, Entry>;  // path -> entry ("/" excluded)

struct FsckResult {
  int code = -1;
  std::string out;
};

class RepairTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDeviceBytes = 64 << 20;
  static constexpr int kManyFiles = 160;  // /many/fNNN: several levels of tree

  void SetUp() override;

  // Mounts the device through the engine; null (and a test failure) if it fails.
  FileSystem* mount();
  void unmount();
  // Fills the filesystem (mounted by it) and unmounts it.
  void populate();
  // Adds a file through the engine (mounted), and to the oracle.
  InodeNo add_file(const std::string& path, const std::string& data);
  InodeNo add_dir(const std::string& path);

  // fsck in-process on the device (or on another device over it).
  FsckResult fsck(fsck::Mode mode, bool zero_bad_data = false);
  FsckResult fsck_on(Device& device, fsck::Mode mode, bool zero_bad_data = false);
  // The usual sequence for a damage fsck -p/-y can fix: -n finds it (exit 4,
  // naming `named` when not empty), `mode` fixes it (exit 1), -n is clean.
  void expect_repaired(fsck::Mode mode, const std::string& named = "");
  // A second -y finds nothing: exit 0 and no change to the device.
  void expect_second_run_unchanged();

  // Walks the mounted filesystem; a test failure for anything unreadable.
  Tree walk();
  // Mounts and checks that every oracle path not in `lost` reads back as it
  // was written; returns what the walk found.
  Tree expect_intact(const std::set<std::string>& lost = {});
  // The inode number of a path in the oracle.
  uint64_t ino_of(const std::string& path) const { return oracle_.at(path).ino; }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  Tree oracle_;
};

}  // namespace pagefs::test
