// Micro-benchmarks of B+tree lookup and insert over a cached tree.
//
// What: a MemDevice is formatted with format_device, then a Btree (over a
// BufferPool without transactions, as mkfs and the tests use it) is filled
// with 100k or 1M random directory-entry keys, Key::of(dir, kDirent, random
// cookie) with 40-byte DirentValue-shaped values (ino, type, 30-byte name).
// The pool is large enough to hold the whole tree, so after the fill no
// operation touches the device:
//   - BM_BtreeGet: get() of random existing keys (root-to-leaf descent, one
//     fetch_meta hit per level, a binary search per node, a value copy).
//   - BM_BtreeInsert: insert() of new random keys (descent, slotted-page
//     insert, and the occasional split allocating a node from the SpaceMap).
//     The tree keeps growing across runs; the device is sized so it never
//     fills.
//
// Why: every metadata operation of the filesystem (lookup, create, readdir,
// the extent lookups of file I/O) is one or more tree operations; these are
// their CPU cost with all pages cached, i.e. the in-memory ceiling of the
// metadata path, and how it scales with tree height (100k vs 1M items).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/btree.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "engine/space_map.h"

namespace pagefs {
namespace {

constexpr uint32_t kPageSize = 4096;
constexpr uint64_t kDirectories = 1000;
constexpr size_t kNameLen = 30;  // value = 10-byte DirentValue + 30 = 40 bytes

[[noreturn]] void die(const char* what, int error) {
  std::fprintf(stderr, "btree_bench: %s failed: errno %d\n", what, error);
  std::abort();
}

// A directory entry's value: DirentValue followed by a pseudo-random name.
std::string dirent_value(std::mt19937_64& rng) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
  std::string v(sizeof(DirentValue) + kNameLen, '\0');
  DirentValue d{rng() % 10'000'000 + 2, 8 /* DT_REG */, uint8_t(kNameLen)};
  std::memcpy(v.data(), &d, sizeof d);
  for (size_t i = 0; i < kNameLen; i++) v[sizeof d + i] = kChars[rng() % (sizeof kChars - 1)];
  return v;
}

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

Key random_key(std::mt19937_64& rng) {
  return Key::of(rng() % kDirectories + 2, KeyKind::kDirent, rng());
}

struct TreeEnv {
  explicit TreeEnv(uint64_t items)
      // ~60 bytes per item in leaves at ~70% fill: ~90 MB for 1M items.
      : dev(items >= 1'000'000 ? (768ull << 20) : (128ull << 20)), rng(items) {
    std::string msg;
    if (Status st = format_device(dev, FormatOptions{}, &msg); !st.ok()) {
      std::fprintf(stderr, "format_device: %s\n", msg.c_str());
      std::abort();
    }
    alignas(4096) static std::byte page[kPageSize];
    if (Status st = dev.read_at(0, page, kPageSize); !st.ok()) die("read superblock", st.error());
    std::memcpy(&sb, page, sizeof sb);
    // The pool holds the whole device: nothing is ever evicted.
    auto p = BufferPool::open(dev, kPageSize, dev.size_bytes() / 2, false);
    if (!p.ok()) die("BufferPool::open", p.error());
    pool = std::move(p).value();
    auto s = SpaceMap::load(*pool, sb);
    if (!s.ok()) die("SpaceMap::load", s.error());
    space = std::move(s).value();
    root = TreeRoot{sb.tree_root, sb.tree_height};
    tree = std::make_unique<Btree>(*pool, *space, root);
    keys.reserve(items);
    while (keys.size() < items) {
      Key k = random_key(rng);
      Status st = tree->insert(k, bytes(dirent_value(rng)));
      if (st.error() == EEXIST) continue;
      if (!st.ok()) die("insert", st.error());
      keys.push_back(k);
    }
    // Lookups in an order unrelated to insertion.
    std::shuffle(keys.begin(), keys.end(), rng);
  }

  MemDevice dev;
  std::mt19937_64 rng;
  Superblock sb{};
  std::unique_ptr<BufferPool> pool;
  std::unique_ptr<SpaceMap> space;
  TreeRoot root;
  std::unique_ptr<Btree> tree;
  std::vector<Key> keys;  // every key inserted at set-up
};

// One tree per size, built on first use and kept for the later benchmarks.
TreeEnv& tree_env(uint64_t items) {
  static std::map<uint64_t, std::unique_ptr<TreeEnv>> envs;
  auto& env = envs[items];
  if (!env) env = std::make_unique<TreeEnv>(items);
  return *env;
}

void report_shape(benchmark::State& state, TreeEnv& env) {
  state.counters["height"] = env.root.height;
  state.counters["pool_hit%"] =
      100.0 * double(env.pool->stats().hits) /
      double(std::max<uint64_t>(env.pool->stats().hits + env.pool->stats().misses, 1));
}

void BM_BtreeGet(benchmark::State& state) {
  TreeEnv& env = tree_env(uint64_t(state.range(0)));
  std::string out;
  size_t i = 0;
  for (auto _ : state) {
    const Key& k = env.keys[i];
    if (++i == env.keys.size()) i = 0;
    Result<bool> r = env.tree->get(k, &out);
    if (!r.ok() || !*r) {
      state.SkipWithError("get: key missing");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  report_shape(state, env);
}
BENCHMARK(BM_BtreeGet)->Arg(100'000)->Arg(1'000'000);

void BM_BtreeInsert(benchmark::State& state) {
  TreeEnv& env = tree_env(uint64_t(state.range(0)));
  // Values and keys are made outside the timed region, a batch at a time.
  constexpr size_t kBatch = 4096;
  std::vector<Key> keys(kBatch);
  std::vector<std::string> values(kBatch);
  size_t next = kBatch;
  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      for (size_t j = 0; j < kBatch; j++) {
        keys[j] = random_key(env.rng);
        values[j] = dirent_value(env.rng);
      }
      next = 0;
      state.ResumeTiming();
    }
    Status st = env.tree->insert(keys[next], bytes(values[next]));
    next++;
    if (!st.ok() && st.error() != EEXIST) {
      state.SkipWithError("insert failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["free_MiB"] = double(env.space->free_pages() * kPageSize) / (1 << 20);
  report_shape(state, env);
}
BENCHMARK(BM_BtreeInsert)->Arg(100'000)->Arg(1'000'000);

}  // namespace
}  // namespace pagefs
