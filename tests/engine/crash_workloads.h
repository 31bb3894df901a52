// The workloads of the crash tests: sequences of operations (crash_harness.h)
// over the base tree, systematic or random.
//
// Thread-safety: a workload is used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/engine/crash_harness.h"

namespace pagefs::test::crash {

// The systematic alphabet, every operation valid on the base tree.
std::vector<Op> alphabet();

// Runs each step's operation, then its syncs, aimed by the state it left.
// sync: 0 none, 1 fsync the file, 2 fdatasync it, 3 fsync its directory, 4 both.
NextOp systematic_workload(std::vector<std::pair<Op, int>> steps);

// Random operations that are valid on the state they are drawn from.
class RandomWorkload {
 public:
  RandomWorkload(uint64_t seed, size_t ops) : rng_(seed), left_(ops) {}

  std::optional<Op> next(const State& s) {
    if (left_ == 0) return std::nullopt;
    left_--;
    for (;;) {
      if (std::optional<Op> op = draw(s)) return op;
    }
  }

 private:
  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  std::vector<std::string> paths(const State& s, const std::string& types) const {
    std::vector<std::string> out;
    for (const auto& [p, n] : s) {
      if (p != "/" && types.find(n.type) != std::string::npos) out.push_back(p);
    }
    return out;
  }

  std::optional<std::string> any(const State& s, const std::string& types) {
    auto v = paths(s, types);
    if (v.empty()) return std::nullopt;
    return v[pick(v.size())];
  }

  // A directory at depth <= 1 and a name not in it.
  std::optional<std::string> fresh_path(const State& s, bool dir) {
    std::vector<std::string> dirs = {"/"};
    for (const auto& p : paths(s, "d")) {
      if (std::count(p.begin(), p.end(), '/') <= 1) dirs.push_back(p);
    }
    std::string path =
        child_path(dirs[pick(dirs.size())], (dir ? "d" : "f") + std::to_string(pick(6)));
    if (s.contains(path)) return std::nullopt;
    return path;
  }

  static bool empty_dir(const State& s, const std::string& dir) {
    auto it = s.upper_bound(dir + "/");
    return it == s.end() || it->first.compare(0, dir.size() + 1, dir + "/") != 0;
  }

  std::optional<Op> draw(const State& s);
  std::optional<Op> draw_data(const State& s, unsigned kind);
  std::optional<Op> draw_rename(const State& s);

  std::mt19937_64 rng_;
  size_t left_;
};

}  // namespace pagefs::test::crash
