// Model-based randomized test of the FileSystem API.
//
// Random operations drawn from one printed seed run against the engine and
// against an in-memory model of the tree (directories, files as byte strings
// with holes as zeros, hard links sharing one model inode, symlinks, xattrs,
// unlinked files still held open). Every result and errno must be one the
// model predicts; at every remount the whole tree (names, types, link counts,
// sizes, bytes, holes as lseek reports them, xattrs) must match the model, and
// after the run fsck.pagefs -n must find the image clean.
//
// The model is in model.h; the fixture that runs it, in model_harness.h/.cc
// and model_ops.cc. This file holds the variants.
//
// Environment: PAGEFS_SEED picks the seed (default: fixed; "random" for a new one; printed);
// PAGEFS_MODEL_OPS the number of operations per variant. A failure prints the
// last operations, numbered, so a run can be replayed with the same seed.
#include <gtest/gtest.h>

#include "tests/engine/model_harness.h"

namespace pagefs::test::model {
namespace {

// ---- the variants -------------------------------------------------------------------

TEST_F(ModelTest, RandomOperationsMatchModelWithAConstantlyEvictingCache) {
  run(Variant{.device_bytes = 256ull << 20,
              .cache_bytes = 1ull << 20,
              .default_ops = 5000,
              .room_divisor = 6,
              .full_divisor = 0});
}

TEST_F(ModelTest, RandomOperationsMatchModelWithALargeCache) {
  run(Variant{.device_bytes = 256ull << 20,
              .cache_bytes = 64ull << 20,
              .default_ops = 5000,
              .room_divisor = 6,
              .full_divisor = 0});
}

TEST_F(ModelTest, RandomOperationsMatchModelOnANearlyFullDevice) {
  run(Variant{.device_bytes = 24ull << 20,
              .cache_bytes = 4ull << 20,
              .default_ops = 6000,
              .room_divisor = 1000,
              .full_divisor = 50});
}

}  // namespace
}  // namespace pagefs::test::model
