// Crash images of a recording and their checks: see crash_checker.h.
#include "tests/engine/crash_checker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "engine/filesystem.h"
#include "engine/format.h"
#include "fsck/checker.h"

namespace pagefs::test::crash {
namespace {

constexpr size_t kExerciseEvery = 8;  // every Nth image also takes a write after recovery

}  // namespace

uint64_t g_total_states = 0;

// At c right after a flush there is nothing in flight: one image, the durable
// one. Otherwise: none in flight (only at the first point after the flush, as
// it is the same image for every point of the interval), all, a random subset,
// and a subset with one write torn.
std::vector<Variant> CrashChecker::variants(size_t c, std::optional<size_t> flush) {
  std::vector<size_t> inflight;
  for (size_t i = flush ? *flush + 1 : 0; i < c; i++) {
    if (rec_.events[i].kind == FaultDevice::Event::Kind::kWrite) inflight.push_back(i);
  }
  std::vector<Variant> out;
  if (inflight.empty()) return {Variant{"durable only"}};
  if (c == (flush ? *flush + 2 : 1)) out.push_back(Variant{"none in flight"});
  out.push_back(Variant{"all in flight", inflight});
  if (inflight.size() >= 2) out.push_back(subset_variant(inflight, false));
  out.push_back(subset_variant(inflight, true));
  return out;
}

Variant CrashChecker::subset_variant(const std::vector<size_t>& inflight, bool torn) {
  Variant v;
  size_t victim = inflight[std::uniform_int_distribution<size_t>(0, inflight.size() - 1)(rng_)];
  for (size_t i : inflight) {
    if (torn && i == victim) continue;
    if (rng_() & 1) v.writes.push_back(i);
  }
  v.name = "subset {";
  for (size_t i : v.writes) v.name += std::to_string(i) + " ";
  v.name += "}";
  if (!torn) return v;
  v.torn = victim;
  auto sectors = uint32_t(rec_.events[victim].data.size() / FaultDevice::kSectorBytes);
  bool prefix = (rng_() & 1) != 0;
  uint32_t keep = std::uniform_int_distribution<uint32_t>(0, sectors - 1)(rng_);
  for (uint32_t s = 0; s < sectors; s++) {
    if (prefix ? s < keep : (rng_() & 1) != 0) v.torn_sectors.push_back(s);
  }
  v.name += " + event " + std::to_string(victim) + " torn (" + (prefix ? "prefix " : "random ") +
            std::to_string(v.torn_sectors.size()) + "/" + std::to_string(sectors) + " sectors)";
  return v;
}

void CrashChecker::build(const Variant& v) {
  std::memcpy(scratch_->raw(), durable_->raw(), kDeviceBytes);
  auto w = v.writes.begin();
  auto apply_torn = [&] {
    const FaultDevice::Event& e = rec_.events[*v.torn];
    for (uint32_t s : v.torn_sectors) {
      uint64_t at = uint64_t(s) * FaultDevice::kSectorBytes;
      std::memcpy(scratch_->raw() + e.offset + at, e.data.data() + at, FaultDevice::kSectorBytes);
    }
  };
  bool torn_done = !v.torn.has_value();
  for (; w != v.writes.end(); ++w) {
    if (!torn_done && *v.torn < *w) apply_torn(), torn_done = true;
    apply(*scratch_, *w);
  }
  if (!torn_done) apply_torn();
}

// The events of the last two flush intervals before c and a few after it,
// with journal headers decoded.
std::string CrashChecker::describe_events(size_t c) const {
  size_t from = c, flushes = 0;
  while (from > 0 && flushes < 3) {
    from--;
    if (rec_.events[from].kind == FaultDevice::Event::Kind::kFlush) flushes++;
  }
  std::string out;
  for (size_t i = from; i < std::min(rec_.events.size(), c + 4); i++) {
    const FaultDevice::Event& e = rec_.events[i];
    out += (i == c ? "  -> " : "     ") + std::to_string(i) + ": ";
    if (e.kind == FaultDevice::Event::Kind::kFlush) {
      out += "flush\n";
      continue;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "write page %" PRIu64 " +%zu pages", e.offset / 4096,
                  e.data.size() / 4096);
    out += buf;
    JournalHeader h;
    std::memcpy(&h, e.data.data(), sizeof h);
    if (h.magic == kJournalMagic) {
      std::snprintf(buf, sizeof buf, " (journal %s seq %" PRIu64 " lsn %" PRIu64 " images %u)",
                    h.kind == uint16_t(JournalKind::kTxn) ? "record" : "commit", h.sequence, h.lsn,
                    h.image_count);
      out += buf;
    }
    out += "\n";
  }
  return out;
}

bool CrashChecker::fail(size_t c, const Variant& v, const std::string& why) {
  size_t flush_at = 0;
  for (size_t i = 0; i < c; i++) {
    if (rec_.events[i].kind == FaultDevice::Event::Kind::kFlush) flush_at = i;
  }
  ADD_FAILURE() << "crash state failed: " << rec_.label << "\n  PAGEFS_SEED=" << test_seed()
                << " (recording seed " << seed_ << "), base image " << base_.name
                << "\n  crash point " << c << " of " << rec_.events.size()
                << " events (last flush: event " << flush_at << "), variant: " << v.name << "\n"
                << why << "\nevents (-> marks the crash point):\n"
                << describe_events(c) << "operations:\n"
                << describe_ops(rec_) << "engine log:\n"
                << log_tail();
  return false;
}

bool CrashChecker::check_image(size_t c, const Variant& v) {
  progress();
  build(v);
  clear_log();
  std::string why;
  FsckOutcome before = run_fsck_overlay(*scratch_);
  if (before.code != fsck::kExitClean) {
    why = "fsck through OverlayDevice (before recovery) exited " + std::to_string(before.code) +
          ":\n" + before.text;
  }
  bool exercise = ++images_ % kExerciseEvery == 0;
  State after;
  std::string mounted;
  if (!check_mounted(c, exercise, &mounted, &after)) return fail(c, v, why + mounted);
  why += why.empty() ? ""
                     : "(the recovered tree is the state after operation " +
                           std::to_string(matched_) + ")\n";
  FsckOutcome outcome = run_fsck(*scratch_, "recovered");
  if (outcome.code != fsck::kExitClean) {
    why += "fsck after recovery and unmount exited " + std::to_string(outcome.code) + ":\n" +
           outcome.text;
  }
  if (!why.empty()) return fail(c, v, why);
  return !exercise || check_remount(c, v, after);
}

// The image took a write after recovery and was unmounted: it must mount
// again with the same state and pass fsck.
bool CrashChecker::check_remount(size_t c, const Variant& v, const State& after) {
  std::string message, why;
  auto fs = mount_over(*scratch_, MountOptions{kCheckCacheBytes}, &message);
  State again;
  if (!fs.ok()) return fail(c, v, "remount after the post-recovery write: " + message);
  if (!read_state(**fs, &again, &why)) return fail(c, v, "remount: " + why);
  if (!same_state(again, after)) {
    return fail(c, v, "state after remount differs:\n" + state_diff(again, after));
  }
  if (!(*fs)->unmount().ok()) return fail(c, v, "second unmount failed");
  FsckOutcome outcome = run_fsck(*scratch_, "remounted");
  if (outcome.code == fsck::kExitClean) return true;
  return fail(c, v,
              "fsck after the post-recovery write exited " + std::to_string(outcome.code) + ":\n" +
                  outcome.text);
}

// Mounts the crash image, compares its state with states[lo..hi], optionally
// writes a file and fsyncs, and unmounts. `after` gets the final state.
// The states of one sequence of operations a crash at c may leave: from the
// last one made durable before c to the one in progress at c. `take`
// selects the sequence's states (all of them, or one thread's).
std::pair<size_t, size_t> CrashChecker::bounds(size_t c,
                                               const std::function<bool(size_t)>& take) const {
  size_t lo = SIZE_MAX, hi = SIZE_MAX, first = SIZE_MAX, last = 0;
  for (size_t k = 0; k < rec_.states.size(); k++) {
    if (!take(k)) continue;
    if (first == SIZE_MAX) first = k;
    last = k;
    if (rec_.events_after[k] <= c && rec_.durable[k]) lo = k;
    if (hi == SIZE_MAX && rec_.events_after[k] >= c) hi = k;
  }
  if (lo == SIZE_MAX) lo = first;
  if (hi == SIZE_MAX) hi = last;
  return {lo, std::max(hi, lo)};
}

// Concurrent recordings: every thread's directory must be in one of the
// states that thread's own operations allow, independently of the others.
bool CrashChecker::match_threads(size_t c, const State& got, std::string* why) {
  for (int t = 0; t < rec_.threads; t++) {
    auto [lo, hi] = bounds(c, [&](size_t k) { return rec_.thread_of[k] == t; });
    const std::string dir = "/t" + std::to_string(t);
    State mine = subtree(got, dir);
    bool match = false;
    for (size_t k = lo; k <= hi && !match; k++) {
      match = rec_.thread_of[k] == t && same_state(mine, rec_.states[k]);
    }
    if (!match) {
      *why = dir + " is none of the states after its operations " + std::to_string(lo) + ".." +
             std::to_string(hi) + "; difference from the state after " + std::to_string(hi) +
             ":\n" + state_diff(mine, rec_.states[hi]);
      return false;
    }
  }
  return true;
}

bool CrashChecker::check_mounted(size_t c, bool exercise, std::string* why, State* after) {
  std::string message;
  MountOptions options{kCheckCacheBytes};
  options.commit_interval_s = kNoTimedCommit_s;
  auto fs = mount_over(*scratch_, options, &message);
  if (!fs.ok()) return *why = "mount (recovery) failed: " + message, false;
  State got;
  if (!read_state(**fs, &got, why)) return false;
  if (rec_.threads > 0 && !match_threads(c, got, why)) return false;
  auto [lo, hi] = bounds(c, [](size_t) { return true; });
  bool match = rec_.threads > 0;
  for (size_t j = lo; j <= hi && !match; j++) {
    match = same_state(got, rec_.states[j]);
    if (match) matched_ = j;
  }
  if (!match) {
    *why = "recovered state is none of the states after operations " + std::to_string(lo) + ".." +
           std::to_string(hi) + "; difference from the state after " + std::to_string(hi) + ":\n" +
           state_diff(got, rec_.states[hi]);
    if (lo != hi) {
      *why += "difference from the state after " + std::to_string(lo) + ":\n" +
              state_diff(got, rec_.states[lo]);
    }
    return false;
  }
  if (exercise) {
    Op create{OpKind::kCreate, "/after-recovery"};
    Op write{OpKind::kWrite, "/after-recovery", "", 0, 20000, 0, seed_};
    Status st = run_op(**fs, create, true);
    if (st.ok()) st = run_op(**fs, write, true);
    if (st.ok()) st = (*fs)->fsync(kRootInode, false);
    if (!st.ok()) return *why = "write after recovery: " + errno_name(st.error()), false;
    if (!read_state(**fs, &got, why)) return false;
  }
  *after = std::move(got);
  Status st = (*fs)->unmount();
  if (!st.ok()) return *why = "unmount after recovery: " + errno_name(st.error()), false;
  return true;
}

std::vector<size_t> crash_points(const Recording& rec, size_t first, size_t max_points,
                                 std::mt19937_64& rng) {
  const size_t n = rec.events.size();
  std::vector<size_t> all;
  for (size_t c = first; c <= n; c++) all.push_back(c);
  if (all.size() <= max_points) return all;
  std::vector<size_t> flushes, others;
  for (size_t c : all) {
    bool beside = (c < n && rec.events[c].kind == FaultDevice::Event::Kind::kFlush) ||
                  (c > 0 && rec.events[c - 1].kind == FaultDevice::Event::Kind::kFlush);
    (beside ? flushes : others).push_back(c);
  }
  std::shuffle(flushes.begin(), flushes.end(), rng);
  std::shuffle(others.begin(), others.end(), rng);
  flushes.resize(std::min(flushes.size(), max_points * 2 / 3));
  others.resize(std::min(others.size(), max_points - flushes.size()));
  flushes.insert(flushes.end(), others.begin(), others.end());
  std::sort(flushes.begin(), flushes.end());
  return flushes;
}

}  // namespace pagefs::test::crash
