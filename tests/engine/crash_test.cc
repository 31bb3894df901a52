// Crash tests of the engine over the fault-injecting device.
//
// The harness records a workload (crash_harness.h: the recording, the logical
// state, base images; crash_workloads.h: systematic and random workloads), and
// CrashChecker (crash_checker.h) builds the crash images of a recording and
// checks each one. These tests pick the workloads and the crash points, and
// test the journal's own defences and the sticky failure state directly.
//
// Environment: PAGEFS_SEED fixes the seed (default: fixed; "random" for a new one; always printed);
// PAGEFS_CRASH_STATES is the number of crash states the two enumerating tests
// share (default kSmokeStates); PAGEFS_CRASH_LONG=1 multiplies it by 20. A
// failure prints the seed, the workload, the crash point, the variant, the
// difference from the nearest allowed state, fsck's report and the engine log.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/format.h"
#include "engine/journal.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "engine/recovery.h"
#include "fsck/checker.h"
#include "tests/engine/crash_checker.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/crash_workloads.h"

namespace pagefs::test::crash {
namespace {

constexpr size_t kMaxRandomPoints = 90;  // crash points sampled from one long workload
constexpr int kStickyRounds = 48;

// ---- the tests ----------------------------------------------------------------------------

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink(keep_log_line);
    start_watchdog();
    progress();
    start_ = std::chrono::steady_clock::now();
    std::printf("PAGEFS_SEED=%" PRIu64 "\n", test_seed());
  }
  void TearDown() override {
    stop_watchdog();
    set_log_sink(nullptr);
    if (HasFailure()) std::printf("to repeat: PAGEFS_SEED=%" PRIu64 "\n", test_seed());
  }

  void report(const Budget& budget, size_t recordings) const {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::printf("crash states checked: %" PRIu64 " (%zu workloads, %.1f s; %" PRIu64
                " in this run so far)\n",
                budget.used, recordings, s, g_total_states);
  }

  std::chrono::steady_clock::time_point start_;
};

// Each recording's crash points during mount are the same for every workload
// on one base image: only the first workload on it checks them.
bool check_recording(const BaseImage& base, const Recording& rec, uint64_t seed, bool with_mount,
                     size_t max_points, Budget& budget) {
  std::mt19937_64 rng(seed);
  size_t first = with_mount ? 0 : rec.events_after[0] + 1;
  CrashChecker checker(base, rec, seed);
  return checker.check_points(crash_points(rec, first, max_points, rng), budget);
}

// The 1-operation sequences with each sync variant (every operation once in
// each round of five), then every pair, then random triples.
std::vector<std::vector<std::pair<Op, int>>> systematic_sequences(std::mt19937_64& rng,
                                                                  size_t triples) {
  const std::vector<Op> ops = alphabet();
  std::vector<std::vector<std::pair<Op, int>>> out;
  for (int round = 0; round < 5; round++) {
    size_t from = out.size();
    for (size_t a = 0; a < ops.size(); a++) out.push_back({{ops[a], int((a + round) % 5)}});
    std::shuffle(out.begin() + from, out.end(), rng);
  }
  size_t from = out.size();
  for (const Op& a : ops) {
    for (const Op& b : ops) out.push_back({{a, int(rng() % 5)}, {b, int(rng() % 5)}});
  }
  std::shuffle(out.begin() + from, out.end(), rng);
  for (size_t t = 0; t < triples; t++) {
    std::vector<std::pair<Op, int>> seq;
    for (int i = 0; i < 3; i++) seq.push_back({ops[rng() % ops.size()], int(rng() % 5)});
    out.push_back(seq);
  }
  return out;
}

TEST_F(CrashTest, ShortSequencesRecoverToAnOperationBoundary) {
  std::vector<BaseImage> bases;
  bases.push_back(make_base("journal 4M, cache 8M", 0, 8ull << 20));
  bases.push_back(make_base("journal 1M, cache 256K", 1ull << 20, 256ull << 10));
  ASSERT_FALSE(HasFailure());
  std::mt19937_64 rng(mix(test_seed(), 1));
  auto sequences = systematic_sequences(rng, 100000);
  Budget budget{state_budget()};
  size_t recordings = 0;
  for (size_t i = 0; i < sequences.size() && !budget.exhausted(); i++) {
    const BaseImage& base = bases[i % bases.size()];
    Recording rec;
    rec.label = "short sequence #" + std::to_string(i) + " on " + base.name;
    ASSERT_TRUE(record(base, systematic_workload(sequences[i]), true, false, &rec));
    recordings++;
    ASSERT_TRUE(
        check_recording(base, rec, mix(test_seed(), 100 + i), i < bases.size(), SIZE_MAX, budget));
  }
  report(budget, recordings);
}

TEST_F(CrashTest, RandomLongSequencesRecoverToAnOperationBoundary) {
  std::vector<BaseImage> bases;
  bases.push_back(make_base("journal 4M, cache 8M", 0, 8ull << 20));
  bases.push_back(make_base("journal 1M, cache 256K", 1ull << 20, 256ull << 10));
  ASSERT_FALSE(HasFailure());
  Budget budget{state_budget()};
  size_t recordings = 0;
  for (size_t i = 0; !budget.exhausted(); i++) {
    const BaseImage& base = bases[i % bases.size()];
    uint64_t seed = mix(test_seed(), 1000000 + i);
    RandomWorkload workload(seed, 30 + seed % 71);
    Recording rec;
    rec.label = "random sequence #" + std::to_string(i) + " on " + base.name;
    bool release = (seed >> 8) % 2 == 0;
    ASSERT_TRUE(record(
        base, [&](const State& s) { return workload.next(s); }, release, true, &rec));
    recordings++;
    ASSERT_TRUE(check_recording(base, rec, seed, i < bases.size(), kMaxRandomPoints, budget));
  }
  report(budget, recordings);
}

// Several threads at once, each on its own directory, commits and
// checkpoints running beside them: after a crash at any point, every
// thread's directory is in a state between its last fsync and its operation
// in progress, whatever the others were doing.
TEST_F(CrashTest, ConcurrentWorkloadsRecoverPerThread) {
  std::vector<BaseImage> bases;
  bases.push_back(make_base("journal 4M, cache 8M", 0, 8ull << 20));
  bases.push_back(make_base("journal 1M, cache 256K", 1ull << 20, 256ull << 10));
  ASSERT_FALSE(HasFailure());
  Budget budget{state_budget()};
  size_t recordings = 0;
  for (size_t i = 0; !budget.exhausted(); i++) {
    const BaseImage& base = bases[i % bases.size()];
    uint64_t seed = mix(test_seed(), 2000000 + i);
    Recording rec;
    rec.label = "concurrent workload #" + std::to_string(i) + " (3 threads) on " + base.name;
    ASSERT_TRUE(record_concurrent(base, 3, 20 + seed % 30, seed, &rec));
    recordings++;
    ASSERT_TRUE(check_recording(base, rec, seed, false, kMaxRandomPoints, budget));
  }
  report(budget, recordings);
}

// ---- the journal's own defences ----------------------------------------------------------

// Three transactions, one per fsync, small enough that none is checkpointed.
std::vector<Op> three_transactions() {
  return {
      {OpKind::kCreate, "/t1"},
      {OpKind::kWrite, "/t1", "", 0, 20000, 0, 21},
      {OpKind::kFsync, "/t1"},
      {OpKind::kWrite, "/a", "", 0, 8192, 0, 22},
      {OpKind::kSetxattr, "/b", "user.z", 0, 100, 0, 23},
      {OpKind::kFsync, "/"},
      {OpKind::kRename, "/d/c", "/c2"},
      {OpKind::kTruncate, "/big", "", 4096},
      {OpKind::kFsync, "/"},
  };
}

NextOp fixed_workload(std::vector<Op> ops) {
  auto left = std::make_shared<std::deque<Op>>(ops.begin(), ops.end());
  return [left](const State&) -> std::optional<Op> {
    if (left->empty()) return std::nullopt;
    Op op = left->front();
    left->pop_front();
    return op;
  };
}

struct TxnWrite {
  size_t event;
  JournalHeader header;
};

// The journal record (kTxn) writes among events [from, to), in order.
std::vector<TxnWrite> txn_writes(const Recording& rec, size_t from, size_t to) {
  std::vector<TxnWrite> out;
  for (size_t i = from; i < to; i++) {
    const FaultDevice::Event& e = rec.events[i];
    if (e.kind != FaultDevice::Event::Kind::kWrite) continue;
    JournalHeader h;
    std::memcpy(&h, e.data.data(), sizeof h);
    if (h.magic == kJournalMagic && h.kind == uint16_t(JournalKind::kTxn)) out.push_back({i, h});
  }
  return out;
}

// Mounts `device`, expects exactly `want`, unmounts and expects fsck clean.
void expect_recovers_to(MemDevice& device, const State& want, const std::string& label) {
  FsckOutcome before = run_fsck_overlay(device);
  EXPECT_EQ(before.code, fsck::kExitClean) << label << ": fsck before recovery:\n" << before.text;
  std::string message, error;
  auto fs = mount_over(device, MountOptions{kCheckCacheBytes}, &message);
  ASSERT_TRUE(fs.ok()) << label << ": mount: " << message;
  State got;
  ASSERT_TRUE(read_state(**fs, &got, &error)) << label << ": " << error;
  EXPECT_TRUE(same_state(got, want)) << label << ":\n" << state_diff(got, want) << log_tail();
  ASSERT_TRUE((*fs)->unmount().ok()) << label;
  FsckOutcome after = run_fsck(device, "recovered");
  EXPECT_EQ(after.code, fsck::kExitClean) << label << ": fsck after recovery:\n" << after.text;
}

TEST_F(CrashTest, CorruptJournalRecordStopsRecoveryBeforeIt) {
  BaseImage base = make_base("journal 4M, cache 8M", 0, 8ull << 20);
  ASSERT_FALSE(HasFailure());
  Recording rec;
  rec.label = "three transactions";
  ASSERT_TRUE(record(base, fixed_workload(three_transactions()), true, true, &rec));
  const size_t last_op = rec.states.size() - 2;  // the last fsync, before the unmount
  std::vector<size_t> fsyncs;
  for (size_t k = 1; k <= last_op; k++) {
    if (rec.ops[k - 1].kind == OpKind::kFsync) fsyncs.push_back(k);
  }
  std::vector<TxnWrite> txns = txn_writes(rec, rec.events_after[0], rec.events_after[last_op]);
  ASSERT_EQ(txns.size(), fsyncs.size()) << "expected one journal record per fsync";
  for (size_t t = 0; t < txns.size(); t++) {
    for (uint64_t at : {uint64_t{20}, sizeof(JournalHeader) + txns[t].header.payload_bytes / 2}) {
      std::string label = "record " + std::to_string(t) + ", bit flipped at byte " +
                          std::to_string(at) + " (PAGEFS_SEED=" + std::to_string(test_seed()) + ")";
      auto device = copy_device(*base.device);
      for (size_t i = 0; i < rec.events_after[last_op]; i++) {
        const FaultDevice::Event& e = rec.events[i];
        if (e.kind == FaultDevice::Event::Kind::kWrite) {
          std::memcpy(device->raw() + e.offset, e.data.data(), e.data.size());
        }
      }
      Superblock sb;
      std::string message;
      ASSERT_TRUE(load_superblock(*device, &sb, &message).ok()) << message;
      ASSERT_LE(sb.journal_tail, txns[0].header.lsn) << "checkpointed: nothing left to replay";
      const FaultDevice::Event& e = rec.events[txns[t].event];
      ASSERT_LT(at, e.data.size());
      device->raw()[e.offset + at] ^= std::byte{0x10};
      auto scanned = Journal::scan(*device, sb, [](PageNo, const std::byte*) { return Status(); });
      ASSERT_TRUE(scanned.ok());
      EXPECT_EQ(scanned->transactions, t) << label;
      expect_recovers_to(*device, rec.states[t == 0 ? 0 : fsyncs[t - 1]], label);
    }
  }
}

// Tears the last transaction's record or commit page with FaultDevice's
// tear_write: only the sectors before the tear reach the device, every later
// write is lost. The commit header lies in the first sector (the rest of the
// page is zero, as is the unused journal), so a commit page with any sector
// written is whole; with none, or a torn record, the transaction is skipped.
TEST_F(CrashTest, TornJournalWritesAreSkipped) {
  BaseImage base = make_base("journal 4M, cache 8M", 0, 8ull << 20);
  ASSERT_FALSE(HasFailure());
  const std::vector<Op> ops = three_transactions();
  std::map<std::string, int> seen;
  for (uint64_t round = 0; round < 24; round++) {
    const bool tear_commit = round % 2 == 0;
    const uint64_t seed = mix(test_seed(), 5000 + round);
    std::string label = std::string(tear_commit ? "commit" : "record") +
                        " torn, FaultDevice seed " + std::to_string(seed) +
                        " (PAGEFS_SEED=" + std::to_string(test_seed()) + ")";
    auto device = copy_device(*base.device);
    FaultDevice faults(*device, seed, kMaxEvents);
    std::string message, error;
    auto fs = mount_over(faults, base.options, &message);
    ASSERT_TRUE(fs.ok()) << message;
    std::vector<State> states(1);
    ASSERT_TRUE(read_state(**fs, &states[0], &error)) << error;
    uint64_t tear_at = 0;
    for (size_t k = 0; k < ops.size(); k++) {
      // The last fsync commits a transaction without fresh data pages: its
      // record and commit page are the next two writes.
      if (k + 1 == ops.size()) {
        tear_at = faults.write_count() + (tear_commit ? 2 : 1);
        faults.tear_write(tear_at);
      }
      ASSERT_TRUE(run_op(**fs, ops[k], true).ok()) << label << ": " << ops[k].text();
      states.emplace_back();
      ASSERT_TRUE(read_state(**fs, &states.back(), &error)) << error;
    }
    ASSERT_TRUE(faults.torn_sectors().has_value()) << label;
    const uint32_t kept = *faults.torn_sectors();
    const FaultDevice::Event* torn = nullptr;  // write number tear_at
    for (size_t i = 0, writes = 0; i < faults.events().size() && torn == nullptr; i++) {
      const auto& e = faults.events()[i];
      if (e.kind == FaultDevice::Event::Kind::kWrite && ++writes == tear_at) torn = &e;
    }
    ASSERT_NE(torn, nullptr);
    JournalHeader h;
    std::memcpy(&h, torn->data.data(), sizeof h);
    ASSERT_EQ(h.magic, kJournalMagic) << label << ": the torn write is not a journal write";
    ASSERT_EQ(h.kind, uint16_t(tear_commit ? JournalKind::kCommit : JournalKind::kTxn)) << label;
    fs->reset();  // the crash: no unmount
    const bool whole = tear_commit && kept > 0;
    seen[std::string(tear_commit ? "commit" : "record") + (kept > 0 ? " part" : " none")]++;
    label += ", " + std::to_string(kept) + " sectors kept";
    expect_recovers_to(*device, states[whole ? ops.size() : ops.size() - 3], label);
    if (HasFailure()) return;
  }
  for (const auto& [what, n] : seen) std::printf("torn %s: %d\n", what.c_str(), n);
}

// After a failed journal write or flush the filesystem fails every later
// change with EIO and never reports success; what reached the device is a
// state no older than the last fsync that succeeded.
TEST_F(CrashTest, DeviceFailureIsStickyAndLeavesAnEarlierState) {
  BaseImage base = make_base("journal 4M, cache 8M", 0, 8ull << 20);
  ASSERT_FALSE(HasFailure());
  const char* modes[] = {"every write fails", "half the writes fail", "flush fails"};
  int rounds_with_error = 0;
  for (uint64_t round = 0; round < kStickyRounds; round++) {
    const uint64_t seed = mix(test_seed(), 9000 + round);
    const int mode = int(round % 3);
    const size_t fail_at = 5 + seed % 30;
    std::string label = std::string(modes[mode]) + " from operation " + std::to_string(fail_at) +
                        ", round seed " + std::to_string(seed) +
                        " (PAGEFS_SEED=" + std::to_string(test_seed()) + ")";
    auto device = copy_device(*base.device);
    FaultDevice faults(*device, seed);
    std::string message, error;
    auto fs = mount_over(faults, base.options, &message);
    ASSERT_TRUE(fs.ok()) << message;
    std::vector<State> states(1);
    ASSERT_TRUE(read_state(**fs, &states[0], &error)) << error;
    RandomWorkload workload(seed, fail_at + 20);
    size_t lo = 0, first_error = 0;
    for (size_t k = 1; std::optional<Op> op = workload.next(states.back()); k++) {
      if (k == fail_at) {
        if (mode == 0) faults.set_write_error_probability(1);
        if (mode == 1) faults.set_write_error_probability(0.5);
        if (mode == 2) faults.set_flush_error(true);
        op = Op{OpKind::kFsync, "/"};
      }
      Status st = run_op(**fs, *op, true);
      ASSERT_TRUE(st.ok() || st.error() == EIO)
          << label << ": " << op->text() << ": " << errno_name(st.error());
      ASSERT_FALSE(first_error != 0 && st.ok())
          << label << ": operation " << k << " (" << op->text() << ") succeeded after operation "
          << first_error << " failed";
      if (!st.ok() && first_error == 0) first_error = k;
      if (st.ok() && op->kind == OpKind::kFsync) lo = k;
      states.emplace_back();
      if (st.ok()) {
        ASSERT_TRUE(read_state(**fs, &states.back(), &error)) << error;
      } else {
        states.back() = states[states.size() - 2];
      }
    }
    if (first_error != 0) {  // the device works again: the filesystem stays failed
      faults.clear_faults();
      Status st = run_op(**fs, Op{OpKind::kMkdir, "/after-failure"}, true);
      EXPECT_EQ(st.error(), EIO) << label << ": mkdir once the device works again";
      st = (*fs)->fsync(kRootInode, false);
      EXPECT_EQ(st.error(), EIO) << label << ": fsync once the device works again";
    }
    Status unmounted = (*fs)->unmount();
    EXPECT_TRUE(first_error == 0 || unmounted.error() == EIO) << label << ": unmount succeeded";
    fs->reset();
    rounds_with_error += first_error != 0;
    FsckOutcome before = run_fsck_overlay(*device);
    ASSERT_EQ(before.code, fsck::kExitClean) << label << ":\n" << before.text;
    auto again = mount_over(*device, MountOptions{kCheckCacheBytes}, &message);
    ASSERT_TRUE(again.ok()) << label << ": " << message;
    State got;
    ASSERT_TRUE(read_state(**again, &got, &error)) << error;
    bool match = false;
    for (size_t j = lo; j < states.size() && !match; j++) match = same_state(got, states[j]);
    ASSERT_TRUE(match) << label << ": state is none after operations " << lo << ".."
                       << states.size() - 1 << "; difference from the last:\n"
                       << state_diff(got, states.back()) << log_tail();
    ASSERT_TRUE((*again)->unmount().ok());
    FsckOutcome after = run_fsck(*device, "after failure");
    ASSERT_EQ(after.code, fsck::kExitClean) << label << ":\n" << after.text;
  }
  std::printf("rounds in which the filesystem failed: %d of %d\n", rounds_with_error,
              kStickyRounds);
  EXPECT_GE(rounds_with_error, kStickyRounds / 2);
}

}  // namespace
}  // namespace pagefs::test::crash
