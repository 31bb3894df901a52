// Micro-benchmarks of journal record encoding and commit over a MemDevice.
//
// What:
//   - BM_JournalAddImage: Journal::add_image() of one page, i.e. the zstd
//     (level 1) compression of a page image into the staging buffer. Every
//     64 images the transaction is committed with the timer paused.
//   - BM_JournalCommit64: a whole 64-image transaction: 64 add_image() calls
//     then commit(), which assembles the record (header, image table, images),
//     checksums it twice (payload CRC, then the commit record's CRC over the
//     whole record), and writes record + commit page to the device and flushes.
//   - BM_JournalCommitOnly64: the same with the 64 add_image() calls outside
//     the timed region, so only commit() is measured.
// On a MemDevice the write is a memcpy and the flush does nothing, so these
// measure the CPU cost of the journal itself: encode + checksum + copies.
//
// Three kinds of page image (the benchmark argument):
//   0 "tree_leaf":   real B+tree leaf pages, taken from a tree of random
//                    directory entries (40-byte values) built and flushed at
//                    set-up; random insertion leaves them ~70% full on average
//                    (the mean fill is reported as the leaf_fill% counter).
//   1 "half_random": 2 KiB of pseudo-random bytes then 2 KiB of zeros.
//   2 "random":      4 KiB of pseudo-random bytes: file data that does not
//                    compress (compressed, encrypted or media files; fio's).
// The journal_B/page counter is journal space used per image (compressed image,
// table entry, headers, padding and commit page, amortized).
//
// Why: every transaction the filesystem commits (every fsync, and the periodic
// commit) pays add_image() per changed metadata page plus one commit(); this is
// the CPU floor of a commit, to set against device write and flush latency.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/btree.h"
#include "engine/formatter.h"
#include "engine/journal.h"
#include "engine/mem_device.h"
#include "engine/node.h"
#include "engine/space_map.h"

namespace pagefs {
namespace {

constexpr uint32_t kPageSize = 4096;
constexpr size_t kTxnImages = 64;

[[noreturn]] void die(const char* what, int error) {
  std::fprintf(stderr, "journal_bench: %s failed: errno %d\n", what, error);
  std::abort();
}

Superblock read_superblock(MemDevice& dev) {
  alignas(4096) static std::byte page[kPageSize];
  if (Status st = dev.read_at(0, page, kPageSize); !st.ok()) die("read superblock", st.error());
  Superblock sb{};
  std::memcpy(&sb, page, sizeof sb);
  return sb;
}

void format(MemDevice& dev, uint64_t journal_bytes) {
  FormatOptions options;
  options.journal_bytes = journal_bytes;
  std::string msg;
  if (Status st = format_device(dev, options, &msg); !st.ok()) {
    std::fprintf(stderr, "journal_bench: format_device: %s\n", msg.c_str());
    std::abort();
  }
}

// A set of page images, each kPageSize bytes, page aligned.
struct Images {
  std::vector<std::byte*> pages;
  double mean_fill = 0;  // tree leaves: used fraction of the page
  ~Images() {
    for (std::byte* p : pages) std::free(p);
  }
  std::byte* add() {
    pages.push_back(static_cast<std::byte*>(std::aligned_alloc(4096, kPageSize)));
    return pages.back();
  }
};

// Builds a tree of random directory entries on a scratch device, flushes it,
// and copies out every leaf page.
void collect_tree_leaves(Images& out) {
  MemDevice dev(64ull << 20);
  format(dev, 0);
  Superblock sb = read_superblock(dev);
  auto pool = std::move(BufferPool::open(dev, kPageSize, 32ull << 20, false)).value();
  auto space = std::move(SpaceMap::load(*pool, sb)).value();
  TreeRoot root{sb.tree_root, sb.tree_height};
  Btree tree(*pool, *space, root);
  std::mt19937_64 rng(7);
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
  std::string value(sizeof(DirentValue) + 30, '\0');
  for (int i = 0; i < 20000; i++) {
    DirentValue d{rng() % 10'000'000 + 2, 8 /* DT_REG */, 30};
    std::memcpy(value.data(), &d, sizeof d);
    for (size_t c = 0; c < 30; c++) value[sizeof d + c] = kChars[rng() % (sizeof kChars - 1)];
    Key k = Key::of(rng() % 1000 + 2, KeyKind::kDirent, rng());
    Status st = tree.put(k, {reinterpret_cast<const std::byte*>(value.data()), value.size()});
    if (!st.ok()) die("tree put", st.error());
  }
  if (Status st = pool->flush_all(); !st.ok()) die("flush_all", st.error());
  double fill = 0;
  for (uint64_t p = sb.data_start; p < sb.page_count; p++) {
    const std::byte* src = dev.raw() + p * kPageSize;
    PageHeader h;
    std::memcpy(&h, src, sizeof h);
    if (h.magic != kPageMagic || h.type != uint16_t(PageType::kTreeNode)) continue;
    std::byte* page = out.add();
    std::memcpy(page, src, kPageSize);
    Node node(page, kPageSize);
    if (!node.is_leaf()) {
      std::free(out.pages.back());
      out.pages.pop_back();
      continue;
    }
    fill += 1.0 - double(node.free_bytes()) / double(kPageSize - kSlotsOffset);
  }
  if (out.pages.empty()) die("collect leaves (none found)", EINVAL);
  out.mean_fill = fill / double(out.pages.size());
}

void make_half_random(Images& out) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 256; i++) {
    std::byte* page = out.add();
    auto* words = reinterpret_cast<uint64_t*>(page);
    for (size_t w = 0; w < kPageSize / 16; w++) words[w] = rng();
    std::memset(page + kPageSize / 2, 0, kPageSize / 2);
  }
}

void make_random(Images& out) {
  std::mt19937_64 rng(12);
  for (int i = 0; i < 256; i++) {
    auto* words = reinterpret_cast<uint64_t*>(out.add());
    for (size_t w = 0; w < kPageSize / 8; w++) words[w] = rng();
  }
}

struct JournalEnv {
  JournalEnv() : dev(256ull << 20) {
    format(dev, 64ull << 20);  // a 64 MiB journal: 16 MiB staging
    Superblock sb = read_superblock(dev);
    auto j = Journal::open(dev, sb, sb.journal_tail, sb.journal_sequence);
    if (!j.ok()) die("Journal::open", j.error());
    journal = std::move(j).value();
    collect_tree_leaves(images[0]);
    make_half_random(images[1]);
    make_random(images[2]);
  }

  // Commits whatever is staged; checkpoints (moves the tail to the head)
  // whenever the journal gets low, so it never fills.
  void commit() {
    if (journal->free_bytes() < (8ull << 20)) {
      journal->set_tail(journal->head(), journal->next_sequence());
    }
    if (Status st = journal->commit({}); !st.ok()) die("commit", st.error());
  }

  void add(size_t kind, size_t i) {
    const Images& im = images[kind];
    Status st = journal->add_image(PageNo{1000 + i}, im.pages[i % im.pages.size()]);
    if (!st.ok()) die("add_image", st.error());
  }

  MemDevice dev;
  std::unique_ptr<Journal> journal;
  Images images[3];
};

JournalEnv& journal_env() {
  static JournalEnv env;
  return env;
}

void label(benchmark::State& state, JournalEnv& env, size_t kind, uint64_t head_before,
           uint64_t pages) {
  state.SetLabel(kind == 0 ? "tree_leaf" : kind == 1 ? "half_random" : "random");
  if (kind == 0) state.counters["leaf_fill%"] = 100.0 * env.images[0].mean_fill;
  if (pages) state.counters["journal_B/page"] = double(env.journal->head() - head_before) / pages;
}

void BM_JournalAddImage(benchmark::State& state) {
  JournalEnv& env = journal_env();
  const size_t kind = size_t(state.range(0));
  const uint64_t head_before = env.journal->head();
  size_t i = 0;
  for (auto _ : state) {
    env.add(kind, i++);
    if (env.journal->staged_images() == kTxnImages) {
      state.PauseTiming();
      env.commit();
      state.ResumeTiming();
    }
  }
  env.commit();
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(int64_t(state.iterations()) * kPageSize);
  label(state, env, kind, head_before, state.iterations());
}
BENCHMARK(BM_JournalAddImage)->Arg(0)->Arg(1)->Arg(2);

void BM_JournalCommit64(benchmark::State& state) {
  JournalEnv& env = journal_env();
  const size_t kind = size_t(state.range(0));
  const uint64_t head_before = env.journal->head();
  size_t i = 0;
  for (auto _ : state) {
    for (size_t n = 0; n < kTxnImages; n++) env.add(kind, i++);
    env.commit();
  }
  state.SetItemsProcessed(int64_t(state.iterations() * kTxnImages));
  state.SetBytesProcessed(int64_t(state.iterations() * kTxnImages) * kPageSize);
  label(state, env, kind, head_before, state.iterations() * kTxnImages);
}
BENCHMARK(BM_JournalCommit64)->Arg(0)->Arg(1)->Arg(2);

void BM_JournalCommitOnly64(benchmark::State& state) {
  JournalEnv& env = journal_env();
  const size_t kind = size_t(state.range(0));
  const uint64_t head_before = env.journal->head();
  size_t i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t n = 0; n < kTxnImages; n++) env.add(kind, i++);
    state.ResumeTiming();
    env.commit();
  }
  state.SetItemsProcessed(int64_t(state.iterations() * kTxnImages));
  state.SetBytesProcessed(int64_t(state.iterations() * kTxnImages) * kPageSize);
  label(state, env, kind, head_before, state.iterations() * kTxnImages);
}
BENCHMARK(BM_JournalCommitOnly64)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace pagefs
