// The workloads of the crash tests: see crash_workloads.h.
#include "tests/engine/crash_workloads.h"

#include <linux/falloc.h>
#include <linux/fs.h>

#include <algorithm>
#include <deque>
#include <memory>

#include "engine/filesystem.h"
#include "engine/format.h"
#include "engine/xattr_item.h"

namespace pagefs::test::crash {
namespace {

constexpr uint64_t kMaxFileBytes = 512ull << 10;

}  // namespace

std::vector<Op> alphabet() {
  return {
      {OpKind::kCreate, "/d/n"},
      {OpKind::kWrite, "/a", "", 4096, 8192, 0, 11},
      {OpKind::kWrite, "/b", "", 40960, 10000, 0, 12},
      {OpKind::kWrite, "/a", "", 0, kMaxOpBytes, 0, 13},
      {OpKind::kWrite, "/big", "", 100000, 30000, 0, 14},
      {OpKind::kTruncate, "/a", "", 3000},
      {OpKind::kTruncate, "/b", "", 100000},
      {OpKind::kTruncate, "/big", "", 0},
      {OpKind::kFallocate, "/b", "", 40960, 40960, 0},
      {OpKind::kFallocate, "/a", "", 16384, 32768, FALLOC_FL_KEEP_SIZE},
      {OpKind::kFallocate, "/b", "", 4096, 12288, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
      {OpKind::kLink, "/a", "/d/a2"},
      {OpKind::kUnlink, "/b"},
      {OpKind::kUnlink, "/d/c"},
      {OpKind::kRename, "/a", "/d/z"},
      {OpKind::kRename, "/d/c", "/b"},
      {OpKind::kRename, "/d", "/e"},
      {OpKind::kMkdir, "/d/sub"},
      {OpKind::kRmdir, "/e"},
      {OpKind::kSetxattr, "/b", "user.y", 0, 300, 0, 15},
      {OpKind::kRemovexattr, "/a", "user.x"},
      {OpKind::kSymlink, "/d/l", "../a"},
      {OpKind::kWrite, "/d/c", "", 0, 20000, 0, 16},
  };
}

namespace {

// The path an operation leaves behind (to fsync), or its parent if none.
std::string sync_target(const Op& op, const State& s) {
  std::string path = op.kind == OpKind::kLink || op.kind == OpKind::kRename ? op.arg : op.path;
  auto it = s.find(path);
  if (it == s.end() || it->second.type == 'l') return parent_path(path);
  return path;
}

}  // namespace

NextOp systematic_workload(std::vector<std::pair<Op, int>> steps) {
  auto queue = std::make_shared<std::deque<Op>>();
  auto pending = std::make_shared<std::deque<std::pair<Op, int>>>(steps.begin(), steps.end());
  auto last = std::make_shared<std::optional<std::pair<Op, int>>>();
  return [=](const State& s) -> std::optional<Op> {
    if (*last) {  // the step just ran: queue its syncs, now that its effect is known
      auto [op, sync] = **last;
      last->reset();
      std::string file = sync_target(op, s);
      if (sync == 1 || sync == 2 || sync == 4)
        queue->push_back({OpKind::kFsync, file, "", 0, 0, sync == 2});
      if (sync >= 3) queue->push_back({OpKind::kFsync, parent_path(file)});
    }
    if (!queue->empty()) {
      Op op = queue->front();
      queue->pop_front();
      return op;
    }
    if (pending->empty()) return std::nullopt;
    *last = pending->front();
    pending->pop_front();
    return (*last)->first;
  };
}

std::optional<Op> RandomWorkload::draw_data(const State& s, unsigned kind) {
  std::optional<std::string> file = any(s, "f");
  if (!file) return std::nullopt;
  uint64_t size = s.at(*file).size;
  if (kind == 0 && size >= 4096 && pick(3) == 0) {  // whole pages it has: an overwrite in place
    uint64_t pages = size / 4096, n = 1 + pick(std::min<uint64_t>(pages, 16));
    return Op{OpKind::kWrite, *file, "", 4096 * pick(pages - n + 1), 4096 * n, 0, rng_()};
  }
  uint64_t off = pick(std::min(size + 16384, kMaxFileBytes));
  uint64_t len = 1 + pick(pick(4) == 0 ? kMaxOpBytes : 9000);
  if (off + len > kMaxFileBytes) return std::nullopt;
  if (kind == 0) return Op{OpKind::kWrite, *file, "", off, len, 0, rng_()};
  if (kind == 1)
    return Op{OpKind::kTruncate, *file, "", pick(std::min(2 * size + 4096, kMaxFileBytes))};
  const int modes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
  return Op{OpKind::kFallocate, *file, "", off, len, modes[pick(3)]};
}

std::optional<Op> RandomWorkload::draw_rename(const State& s) {
  std::optional<std::string> from = any(s, "fdl");
  if (!from) return std::nullopt;
  const Node& src = s.at(*from);
  std::optional<std::string> to;
  if (pick(2) == 0) {
    to = fresh_path(s, src.type == 'd');
  } else {
    to = any(s, src.type == 'd' ? "d" : "fl");
    if (to && (s.at(*to).ino == src.ino || (src.type == 'd' && !empty_dir(s, *to)))) to.reset();
  }
  if (!to || *to == *from || to->starts_with(*from + "/")) return std::nullopt;
  // Now and then the source name is left as a whiteout, as overlayfs asks.
  int flags = pick(4) == 0 ? RENAME_WHITEOUT : 0;
  return Op{OpKind::kRename, *from, *to, 0, 0, flags};
}

std::optional<Op> RandomWorkload::draw(const State& s) {
  unsigned roll = unsigned(pick(100));
  if (roll < 30) return draw_data(s, 0);
  if (roll < 37) return draw_data(s, 1);
  if (roll < 44) return draw_data(s, 2);
  if (roll < 50) {
    auto p = fresh_path(s, false);
    return p ? std::optional<Op>(Op{OpKind::kCreate, *p}) : std::nullopt;
  }
  if (roll < 54) {
    auto p = fresh_path(s, true);
    return p ? std::optional<Op>(Op{OpKind::kMkdir, *p}) : std::nullopt;
  }
  if (roll < 56) {
    auto p = fresh_path(s, false);
    return p ? std::optional<Op>(Op{OpKind::kSymlink, *p, "target-" + std::to_string(pick(9))})
             : std::nullopt;
  }
  if (roll < 60) {
    auto from = any(s, "f");
    auto to = fresh_path(s, false);
    return from && to ? std::optional<Op>(Op{OpKind::kLink, *from, *to}) : std::nullopt;
  }
  if (roll < 65) {
    auto p = any(s, "fl");
    return p ? std::optional<Op>(Op{OpKind::kUnlink, *p}) : std::nullopt;
  }
  if (roll < 67) {
    auto p = any(s, "d");
    if (!p || !empty_dir(s, *p)) return std::nullopt;
    return Op{OpKind::kRmdir, *p};
  }
  if (roll < 74) return draw_rename(s);
  if (roll < 80) {
    auto p = any(s, "fd");
    // Some values past the largest inline one: those live in data pages.
    uint64_t big = max_inline_xattr_value(kDefaultPageSize, 7, true) + 3000;  // "user.kN"
    uint64_t len = 1 + pick(pick(8) == 0 ? big : 200);
    return p ? std::optional<Op>(
                   Op{OpKind::kSetxattr, *p, "user.k" + std::to_string(pick(3)), 0, len, 0, rng_()})
             : std::nullopt;
  }
  if (roll < 83) {
    auto p = any(s, "fd");
    if (!p || s.at(*p).xattrs.empty()) return std::nullopt;
    return Op{OpKind::kRemovexattr, *p, s.at(*p).xattrs[pick(s.at(*p).xattrs.size())]};
  }
  auto p = pick(4) == 0 ? std::optional<std::string>("/") : any(s, "fd");
  return p ? std::optional<Op>(Op{OpKind::kFsync, *p, "", 0, 0, int(pick(2))}) : std::nullopt;
}

}  // namespace pagefs::test::crash
