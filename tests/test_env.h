// Knobs the randomized tests read from the environment.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace pagefs::testenv {

// An unsigned number from the environment (decimal, or 0x hex), or `fallback`.
inline uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

// PAGEFS_SEED picks the seed: a number, or "random" for a new one each run.
// Without it the seed is fixed, so a run of the suite is reproducible.
inline uint64_t seed_from_env() {
  const char* v = std::getenv("PAGEFS_SEED");
  if (v != nullptr && std::string(v) == "random") return std::random_device{}();
  return env_u64("PAGEFS_SEED", 20261121);
}

}  // namespace pagefs::testenv
