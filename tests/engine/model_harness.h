// The fixture of the model-based test (model_test.cc): an engine on a
// MemDevice behind a FaultDevice, the model (model.h) it must match, and the
// machinery around them.
//
// run(variant) reads PAGEFS_SEED (see tests/test_env.h) and PAGEFS_MODEL_OPS,
// then runs that many random operations (model_ops.cc), each against the engine
// and the model: every result and errno must be one the model predicts. Every
// kRemountEvery operations, and at the end, it remounts and compares the whole
// tree with the model; after the run fsck.pagefs -n must find the image clean.
// A failure prints the last operations, numbered, so a run can be replayed with
// the same seed.
//
// Thread-safety: none; a ModelTest runs on the test's thread.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/filesystem.h"
#include "engine/mem_device.h"
#include "tests/engine/model.h"

namespace pagefs::test::model {

inline constexpr uint64_t kMaxModelFileBytes = 12ull << 20;
inline constexpr uint64_t kMetaBytes = 64ull << 10;  // what a namespace or xattr change may need
inline constexpr uint64_t kRemountEvery = 250;

using Errors = std::vector<int>;  // errnos the model accepts; empty: success expected

std::string errno_text(int e);

// A name short enough for a failure message.
std::string shown(const std::string& name);

// Writes `bytes` at `off`, growing `data` with zeros as needed.
void store(std::string& data, uint64_t off, std::string_view bytes);

// Zeroes [off, off+len) within the current size.
void zero_range(std::string& data, uint64_t off, uint64_t len);

// True if [from, to) holds only zeros (bytes past the end count as zeros).
bool all_zero(const std::string& data, uint64_t from, uint64_t to);

// Offset of the first byte where a and b differ, or -1 if they are equal.
int64_t first_difference(std::string_view a, std::string_view b);

struct Variant {
  uint64_t device_bytes;
  uint64_t cache_bytes;
  uint64_t default_ops;
  uint64_t room_divisor;  // below total/room_divisor free pages, make room more often
  uint64_t full_divisor;  // if not 0, each remount fills the device to total/full_divisor free
};

class ModelTest : public ::testing::Test {
 protected:
  void run(const Variant& v);

  // Setup, remount and the final check.
  void format_and_mount(const Variant& v);
  void mount();
  void remount_and_verify();
  void add_ballast();
  void run_fsck();
  void print_log() const;

  // Randomness.
  uint64_t uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  T pick(const std::vector<T>& v) {
    return v[uniform(0, v.size() - 1)];
  }
  std::string random_bytes(size_t n);
  std::string pick_name();
  uint64_t pick_length();
  uint64_t pick_offset(uint64_t size, uint64_t len);
  uint64_t pick_dir_or_any();
  uint64_t pick_file_or_any();
  uint64_t pick_any();
  EntryRef pick_entry();

  // Judging results.
  void note(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  bool enospc_plausible(uint64_t need_bytes) const;
  bool settle(int got, const Errors& allowed, uint64_t need_bytes);
  Errors create_errors(uint64_t dir, const std::string& name) const;
  Errors data_errors(uint64_t ino, int symlink_errno) const;
  Errors rename_errors(const EntryRef& src, const EntryRef& dst, uint32_t flags) const;
  Errors xattr_name_errors(const std::string& name) const;
  Errors setxattr_errors(const Node& n, const std::string& name, size_t len, int flags) const;

  // Operations (model_ops.cc).
  void step();
  void op_create();
  void op_mkdir();
  void op_symlink();
  void op_write();
  void op_read();
  void op_truncate();
  void op_fallocate();
  void absorb_failed_zero_range(uint64_t ino, uint64_t off, uint64_t len);
  void op_copy();
  void op_link();
  void op_unlink();
  void drop_orphan_maybe(uint64_t ino);
  void release(uint64_t ino);
  void op_rmdir();
  void op_rename();
  void apply_rename(const EntryRef& src, const EntryRef& dst, uint32_t flags);
  void op_setxattr();
  void op_getxattr();
  void op_removexattr();
  void op_listxattr();
  void op_release_orphan();
  void op_release_linked();
  void op_seek();

  // Verification.
  void check_range(uint64_t ino, uint64_t off, uint64_t len);
  void verify_tree();
  void verify_dir(uint64_t dir);
  void verify_node(uint64_t ino, const Node& n);
  void verify_content(uint64_t ino, const std::string& data);
  void verify_holes(uint64_t ino, const std::string& data);
  void verify_blocks(const Attr& a, const std::string& data);
  void verify_xattrs(uint64_t ino, const Node& n);
  std::map<std::string, std::pair<uint64_t, uint32_t>> readdir_all(uint64_t dir);

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  MountOptions options_;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;
  Model model_;
  std::deque<std::string> log_;  // the last operations, for the failure report
  uint64_t op_index_ = 0;
  uint64_t free_before_ = 0;  // data pages free before the current operation
  uint64_t total_pages_ = 0;
  uint64_t room_divisor_ = 6;
  uint64_t full_divisor_ = 0;
  uint64_t ballast_count_ = 0;
  uint64_t enospc_count_ = 0;
  uint32_t ps_ = 4096;
  Caller caller_{1000, 1000};
};

}  // namespace pagefs::test::model
