// Crash images of a recording (see crash_harness.h), and their checks.
//
// A crash image for crash point c (the first c events happened) starts from the
// workload's initial image. Every write before the last flush below c is
// durable. The writes after that flush ("in flight") are applied in one of
// several variants: none, all, a random subset, or a random subset with one
// write torn at 512-byte sectors (a prefix of its sectors, or random sectors).
// Overlapping in-flight writes are applied in issue order: a disk cache holds
// the newest bytes of a sector, so an older write can be lost but never win
// over a newer one; for writes that do not overlap, order does not matter.
//
// Every image must pass fsck through OverlayDevice (what fsck -n sees, before
// recovery), mount (which replays the journal), show exactly the state after
// some operation j with lo <= j <= hi — lo the last fsync that returned before
// the crash, hi the operation in progress at it — unmount, and pass fsck again.
// Some images also take a write after recovery, a remount and a third fsck.
//
// A failure prints the seed, the workload, the crash point, the variant, the
// difference from the nearest allowed state, fsck's report and the engine log.
//
// Thread-safety: a CrashChecker is used from one thread; g_total_states is
// only touched from the test's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"

namespace pagefs::test::crash {

struct Variant {
  std::string name;
  std::vector<size_t> writes;          // event indices applied whole, ascending
  std::optional<size_t> torn;          // event index applied in part
  std::vector<uint32_t> torn_sectors;  // its sectors that reach the device
};

struct Budget {
  uint64_t limit = 0;
  uint64_t used = 0;
  bool exhausted() const { return used >= limit; }
};

// Crash states checked over the whole run, for the summary line.
extern uint64_t g_total_states;

// Builds and checks the crash images of one recording.
class CrashChecker {
 public:
  CrashChecker(const BaseImage& base, const Recording& rec, uint64_t seed)
      : base_(base),
        rec_(rec),
        seed_(seed),
        rng_(seed),
        durable_(copy_device(*base.device)),
        scratch_(std::make_unique<MemDevice>(kDeviceBytes)) {}

  // Checks every variant at each crash point (ascending); false after a failure.
  bool check_points(const std::vector<size_t>& points, Budget& budget) {
    for (size_t c : points) {
      if (budget.exhausted()) return true;
      std::optional<size_t> flush = last_flush(c);
      advance_durable(flush ? *flush + 1 : 0);
      for (const Variant& v : variants(c, flush)) {
        budget.used++, g_total_states++;
        if (!check_image(c, v)) return false;
      }
    }
    return true;
  }

 private:
  std::optional<size_t> last_flush(size_t c) const {
    for (size_t i = c; i-- > 0;) {
      if (rec_.events[i].kind == FaultDevice::Event::Kind::kFlush) return i;
    }
    return std::nullopt;
  }

  void apply(MemDevice& dev, size_t event) const {
    const FaultDevice::Event& e = rec_.events[event];
    std::memcpy(dev.raw() + e.offset, e.data.data(), e.data.size());
  }

  void advance_durable(size_t upto) {
    for (; durable_events_ < upto; durable_events_++) {
      if (rec_.events[durable_events_].kind == FaultDevice::Event::Kind::kWrite) {
        apply(*durable_, durable_events_);
      }
    }
  }

  std::vector<Variant> variants(size_t c, std::optional<size_t> flush);
  Variant subset_variant(const std::vector<size_t>& inflight, bool torn);
  void build(const Variant& v);
  bool check_image(size_t c, const Variant& v);
  bool check_mounted(size_t c, bool exercise, std::string* why, State* after);
  std::pair<size_t, size_t> bounds(size_t c, const std::function<bool(size_t)>& take) const;
  bool match_threads(size_t c, const State& got, std::string* why);
  bool check_remount(size_t c, const Variant& v, const State& after);
  std::string describe_events(size_t c) const;
  bool fail(size_t c, const Variant& v, const std::string& why);

  const BaseImage& base_;
  const Recording& rec_;
  const uint64_t seed_;
  std::mt19937_64 rng_;
  std::unique_ptr<MemDevice> durable_;  // base + every write before durable_events_
  size_t durable_events_ = 0;
  std::unique_ptr<MemDevice> scratch_;
  size_t images_ = 0;
  size_t matched_ = 0;  // the operation whose state the last image recovered to
};

// Every crash point from `first` to the end, or, past max_points, the points
// beside each flush (just before it: the most in flight; just after) and a
// random sample of the others.
std::vector<size_t> crash_points(const Recording& rec, size_t first, size_t max_points,
                                 std::mt19937_64& rng);

}  // namespace pagefs::test::crash
