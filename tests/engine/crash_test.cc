// Crash tests of the engine over the fault-injecting device.
//
// A workload runs on a FaultDevice that records every write (offset and bytes)
// and every flush. After each operation the test notes the number of events
// logged and the logical state of the tree: for every path its type, mode, link
// count, size, inode number, times, contents and xattrs. Operations stay small
// (writes of at most 64 KiB) so that each one is atomic: a commit only happens
// between operations.
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
// Environment: PAGEFS_SEED fixes the seed (default: fixed; "random" for a new one; always printed);
// PAGEFS_CRASH_STATES is the number of crash states the two enumerating tests
// share (default kSmokeStates); PAGEFS_CRASH_LONG=1 multiplies it by 20. A
// failure prints the seed, the workload, the crash point, the variant, the
// difference from the nearest allowed state, fsck's report and the engine log.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/crc32c.h"
#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/format.h"
#include "engine/formatter.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/report.h"
#include "tests/test_env.h"

namespace pagefs {
namespace {

constexpr uint64_t kDeviceBytes = 16ull << 20;
constexpr size_t kMaxEvents = size_t{1} << 20;
constexpr uint32_t kNoTimedCommit_s = 365u * 24 * 3600;  // commits only when the test asks
constexpr uint64_t kCheckCacheBytes = 2ull << 20;        // mounts of crash images
constexpr uint64_t kSmokeStates = 2400;                  // both enumerating tests together
constexpr uint64_t kMaxOpBytes = 64ull << 10;
constexpr uint64_t kMaxFileBytes = 512ull << 10;
constexpr size_t kExerciseEvery = 8;     // every Nth image also takes a write after recovery
constexpr size_t kMaxRandomPoints = 90;  // crash points sampled from one long workload
constexpr size_t kLogLines = 40;
constexpr int kStickyRounds = 48;
const Caller kCaller{1000, 1000};

uint64_t test_seed() {
  static const uint64_t seed = testenv::seed_from_env();
  return seed;
}

// Crash states one enumerating test may check: half the shared budget.
uint64_t state_budget() {
  uint64_t n = testenv::env_u64("PAGEFS_CRASH_STATES", kSmokeStates);
  if (testenv::env_u64("PAGEFS_CRASH_LONG", 0) != 0) n *= 20;
  return std::max<uint64_t>(1, n / 2);
}

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// Deterministic bytes for writes and xattr values.
std::string pattern(uint64_t seed, size_t len) {
  std::string out(len, '\0');
  uint64_t x = mix(seed, len) | 1;
  for (size_t i = 0; i < len; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(&out[i], &x, std::min<size_t>(8, len - i));
  }
  return out;
}

std::string errno_name(int e) {
  return e == 0 ? "ok" : std::string(strerrorname_np(e));
}

// ---- the engine log, kept for failure messages ----------------------------------------

std::mutex g_log_mu;
std::deque<std::string> g_log;  // guarded by g_log_mu; the last kLogLines lines

void keep_log_line(LogLevel, const char* line) {
  std::lock_guard lock(g_log_mu);
  g_log.emplace_back(line);
  if (g_log.size() > kLogLines) g_log.pop_front();
}

std::string log_tail() {
  std::lock_guard lock(g_log_mu);
  std::string out;
  for (const auto& l : g_log) out += "  | " + l + "\n";
  return out;
}

// ---- a watchdog: an engine hang becomes a failure with the seed ------------------------

constexpr int kWatchdogSeconds = 120;
std::atomic<int64_t> g_progress_s{0};  // steady-clock seconds of the last progress

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void progress() {
  g_progress_s.store(now_s());
}

// Aborts the process when no crash state or workload finishes for
// kWatchdogSeconds: the engine hangs.
void start_watchdog() {
  static std::once_flag once;
  std::call_once(once, [] {
    progress();
    std::thread([] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        if (now_s() - g_progress_s.load() < kWatchdogSeconds) continue;
        std::fprintf(stderr,
                     "crash test: no progress for %d s, the engine hangs (PAGEFS_SEED=%" PRIu64
                     ")\n%s",
                     kWatchdogSeconds, test_seed(), log_tail().c_str());
        std::abort();
      }
    }).detach();
  });
}

// ---- fsck in-process --------------------------------------------------------------------

struct FsckOutcome {
  int code = -1;
  std::string text;  // the report and the summary line
};

// Runs the checker with its stdout (the summary line) captured in a memfd.
FsckOutcome run_fsck(Device& device, const char* name) {
  static const int capture_fd = memfd_create("fsck-stdout", MFD_CLOEXEC);
  char* buf = nullptr;
  size_t len = 0;
  FILE* report_out = open_memstream(&buf, &len);
  FsckOutcome outcome;
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  (void)!ftruncate(capture_fd, 0);
  lseek(capture_fd, 0, SEEK_SET);
  dup2(capture_fd, STDOUT_FILENO);
  {
    fsck::Report report(report_out, nullptr);
    fsck::Checker checker(device, name, fsck::CheckOptions{}, report);
    outcome.code = checker.run();
  }
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  std::fclose(report_out);
  outcome.text.assign(buf, len);
  std::free(buf);
  char out[4096];
  ssize_t n = pread(capture_fd, out, sizeof out, 0);
  if (n > 0) outcome.text.append(out, size_t(n));
  return outcome;
}

// fsck -n's view of an image: the journal applied through an overlay.
FsckOutcome run_fsck_overlay(Device& device) {
  RecoveryResult rr;
  std::string message;
  auto overlay = OverlayDevice::open(device, &rr, &message);
  if (!overlay.ok()) return FsckOutcome{-1, "OverlayDevice::open: " + message};
  return run_fsck(**overlay, "overlay");
}

// ---- the logical state --------------------------------------------------------------------

struct Node {
  char type = '?';  // 'f' regular, 'd' directory, 'l' symlink
  uint64_t ino = 0;
  uint64_t size = 0;
  std::vector<std::string> xattrs;  // names
  std::string desc;                 // everything the comparison looks at
};
using State = std::map<std::string, Node>;  // path -> node; "/" is the root

bool same_state(const State& a, const State& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto& x, auto& y) {
           return x.first == y.first && x.second.desc == y.second.desc;
         });
}

std::string state_diff(const State& got, const State& want) {
  std::string out;
  for (const auto& [path, n] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      out += "  missing " + path + ": " + n.desc + "\n";
    } else if (it->second.desc != n.desc) {
      out += "  " + path + "\n    got  " + it->second.desc + "\n    want " + n.desc + "\n";
    }
  }
  for (const auto& [path, n] : got) {
    if (!want.contains(path)) out += "  extra " + path + ": " + n.desc + "\n";
  }
  return out.empty() ? "  (equal)\n" : out;
}

std::string child_path(const std::string& dir, std::string_view name) {
  return dir == "/" ? "/" + std::string(name) : dir + "/" + std::string(name);
}

std::string parent_path(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool failed(std::string* error, const std::string& what, int e) {
  *error = what + ": " + errno_name(e);
  return false;
}

bool describe_xattrs(FileSystem& fs, InodeNo ino, Node* n, std::string* desc, std::string* error) {
  auto names = fs.listxattr(ino);
  if (!names.ok()) return failed(error, "listxattr", names.error());
  for (size_t at = 0; at < names->size();) {
    std::string name(names->c_str() + at);
    at += name.size() + 1;
    auto value = fs.getxattr(ino, name);
    if (!value.ok()) return failed(error, "getxattr " + name, value.error());
    char buf[64];
    std::snprintf(buf, sizeof buf, "=%08x/%zu", crc32c(value->data(), value->size()),
                  value->size());
    *desc += " " + name + buf;
    n->xattrs.push_back(name);
  }
  return true;
}

bool describe(FileSystem& fs, const Attr& a, Node* n, std::string* error) {
  n->ino = a.ino;
  n->size = a.size;
  n->type = S_ISDIR(a.mode) ? 'd' : S_ISLNK(a.mode) ? 'l' : S_ISREG(a.mode) ? 'f' : '?';
  char head[256];
  std::snprintf(head, sizeof head,
                "%c mode=%o nlink=%u size=%" PRIu64 " ino=%" PRIu64
                " mtime=%ld.%09ld ctime=%ld.%09ld",
                n->type, a.mode, a.nlink, a.size, a.ino, a.mtime.tv_sec, a.mtime.tv_nsec,
                a.ctime.tv_sec, a.ctime.tv_nsec);
  std::string desc = head;
  if (n->type == 'f') {
    std::string data(a.size, '\0');
    auto got = fs.read(InodeNo{a.ino}, 0, data.size(), data.data());
    if (!got.ok()) return failed(error, "read ino " + std::to_string(a.ino), got.error());
    if (*got != data.size()) return failed(error, "short read ino " + std::to_string(a.ino), EIO);
    char buf[32];
    std::snprintf(buf, sizeof buf, " data=%08x", crc32c(data.data(), data.size()));
    desc += buf;
  } else if (n->type == 'l') {
    auto target = fs.readlink(InodeNo{a.ino});
    if (!target.ok()) return failed(error, "readlink", target.error());
    desc += " -> " + *target;
  }
  if (n->type != 'l' && !describe_xattrs(fs, InodeNo{a.ino}, n, &desc, error)) return false;
  n->desc = std::move(desc);
  return true;
}

bool walk(FileSystem& fs, InodeNo dir, const std::string& path, State* out, std::string* error) {
  std::vector<std::string> names;
  Status st = fs.readdir(dir, 0, [&](const DirEntry& e) {
    names.emplace_back(e.name);
    return true;
  });
  if (!st.ok()) return failed(error, "readdir " + path, st.error());
  for (const auto& name : names) {
    std::string child = child_path(path, name);
    auto a = fs.lookup(dir, name);
    if (!a.ok()) return failed(error, "lookup " + child, a.error());
    Node n;
    if (!describe(fs, *a, &n, error)) return false;
    bool is_dir = n.type == 'd';
    (*out)[child] = std::move(n);
    if (is_dir && !walk(fs, InodeNo{a->ino}, child, out, error)) return false;
  }
  return true;
}

bool read_state(FileSystem& fs, State* out, std::string* error) {
  out->clear();
  auto root = fs.getattr(kRootInode);
  if (!root.ok()) return failed(error, "getattr /", root.error());
  Node n;
  if (!describe(fs, *root, &n, error)) return false;
  (*out)["/"] = std::move(n);
  return walk(fs, kRootInode, "/", out, error);
}

// ---- operations ---------------------------------------------------------------------------

enum class OpKind {
  kCreate,
  kMkdir,
  kSymlink,
  kWrite,
  kTruncate,
  kFallocate,
  kLink,
  kUnlink,
  kRmdir,
  kRename,
  kSetxattr,
  kRemovexattr,
  kFsync,
};

struct Op {
  OpKind kind;
  std::string path;
  std::string arg;    // link/rename destination, symlink target, xattr name
  uint64_t off = 0;   // write/fallocate offset, truncate size
  uint64_t len = 0;   // write/fallocate/xattr value length
  int mode = 0;       // fallocate mode; fsync: 1 for fdatasync
  uint64_t seed = 0;  // bytes of a write or an xattr value

  std::string text() const {
    const char* names[] = {"create",    "mkdir",       "symlink", "write", "truncate",
                           "fallocate", "link",        "unlink",  "rmdir", "rename",
                           "setxattr",  "removexattr", "fsync"};
    std::string s = kind == OpKind::kFsync && mode ? "fdatasync" : names[int(kind)];
    s += " " + path;
    if (!arg.empty()) s += " " + arg;
    if (kind == OpKind::kWrite || kind == OpKind::kFallocate) {
      s += " @" + std::to_string(off) + "+" + std::to_string(len);
    }
    if (kind == OpKind::kFallocate) s += " mode=" + std::to_string(mode);
    if (kind == OpKind::kTruncate) s += " to " + std::to_string(off);
    if (kind == OpKind::kSetxattr) s += " len=" + std::to_string(len);
    return s;
  }
};

template <class T>
Status status_of(const Result<T>& r) {
  return r.ok() ? ok_status() : Status(Err{r.error()});
}

Result<InodeNo> resolve(FileSystem& fs, const std::string& path) {
  InodeNo ino = kRootInode;
  for (size_t at = 1; at < path.size();) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    PAGEFS_ASSIGN(Attr a, fs.lookup(ino, path.substr(at, end - at)));
    ino = InodeNo{a.ino};
    at = end + 1;
  }
  return ino;
}

std::string base_name(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// Releases `ino` as the kernel would on its last forget, if nothing links it.
Status release_if_unlinked(FileSystem& fs, std::optional<InodeNo> ino, bool release) {
  if (!release || !ino) return ok_status();
  auto a = fs.getattr(*ino);
  if (!a.ok() || a->nlink > (S_ISDIR(a->mode) ? 1u : 0u)) return ok_status();
  return fs.release_inode(*ino);
}

std::optional<InodeNo> existing(FileSystem& fs, const std::string& path) {
  auto ino = resolve(fs, path);
  return ino.ok() ? std::optional<InodeNo>(*ino) : std::nullopt;
}

Status run_data_op(FileSystem& fs, const Op& op) {
  PAGEFS_ASSIGN(InodeNo ino, resolve(fs, op.path));
  switch (op.kind) {
    case OpKind::kWrite: {
      std::string data = pattern(op.seed, op.len);
      PAGEFS_ASSIGN(size_t n, fs.write(ino, op.off, data.data(), data.size()));
      return n == data.size() ? ok_status() : Status(Err{ENOSPC});
    }
    case OpKind::kTruncate: {
      SetAttr change;
      change.set_size = true;
      change.size = op.off;
      return status_of(fs.setattr(ino, change));
    }
    case OpKind::kFallocate:
      return fs.fallocate(ino, op.mode, op.off, op.len);
    case OpKind::kSetxattr:
      return fs.setxattr(ino, op.arg, pattern(op.seed, op.len), 0);
    case OpKind::kRemovexattr:
      return fs.removexattr(ino, op.arg);
    case OpKind::kFsync:
      return fs.fsync(ino, op.mode != 0);
    default:
      return Err{EINVAL};
  }
}

// Runs one operation. With `release`, an inode whose last link goes is
// released at once, as the kernel's forget would; otherwise it stays an
// orphan until the next mount.
Status run_op(FileSystem& fs, const Op& op, bool release) {
  std::string name = base_name(op.path);
  PAGEFS_ASSIGN(InodeNo dir, resolve(fs, parent_path(op.path)));
  switch (op.kind) {
    case OpKind::kCreate:
      return status_of(fs.mknod(dir, name, S_IFREG | 0644, 0, kCaller));
    case OpKind::kMkdir:
      return status_of(fs.mkdir(dir, name, 0755, kCaller));
    case OpKind::kSymlink:
      return status_of(fs.symlink(dir, name, op.arg, kCaller));
    case OpKind::kLink: {
      PAGEFS_ASSIGN(InodeNo ino, resolve(fs, op.path));
      PAGEFS_ASSIGN(InodeNo to_dir, resolve(fs, parent_path(op.arg)));
      return status_of(fs.link(ino, to_dir, base_name(op.arg)));
    }
    case OpKind::kUnlink:
    case OpKind::kRmdir: {
      std::optional<InodeNo> victim = existing(fs, op.path);
      PAGEFS_TRY(op.kind == OpKind::kUnlink ? fs.unlink(dir, name, kCaller)
                                            : fs.rmdir(dir, name, kCaller));
      return release_if_unlinked(fs, victim, release);
    }
    case OpKind::kRename: {
      PAGEFS_ASSIGN(InodeNo to_dir, resolve(fs, parent_path(op.arg)));
      std::optional<InodeNo> victim = existing(fs, op.arg);
      PAGEFS_TRY(fs.rename(dir, name, to_dir, base_name(op.arg), 0, kCaller));
      return release_if_unlinked(fs, victim, release);
    }
    default:
      return run_data_op(fs, op);
  }
}

// ---- images and recordings ----------------------------------------------------------------

struct BaseImage {
  std::string name;
  std::unique_ptr<MemDevice> device;
  MountOptions options;  // for the workloads
};

std::unique_ptr<MemDevice> copy_device(const MemDevice& from) {
  auto to = std::make_unique<MemDevice>(from.size_bytes());
  std::memcpy(to->raw(), from.raw(), from.size_bytes());
  return to;
}

Result<std::unique_ptr<FileSystem>> mount_over(Device& device, const MountOptions& options,
                                               std::string* message) {
  return FileSystem::mount(std::make_unique<FaultDevice>(device, 0), options, message);
}

// A formatted image holding a starting tree, made durable and unmounted, so
// that workloads overwrite live pages: /a (with an xattr), /b, /big, /d/c, /e.
BaseImage make_base(const std::string& name, uint64_t journal_bytes, uint64_t cache_bytes) {
  BaseImage base{name, std::make_unique<MemDevice>(kDeviceBytes), MountOptions{}};
  base.options.cache_bytes = cache_bytes;
  base.options.commit_interval_s = kNoTimedCommit_s;
  FormatOptions format;
  format.journal_bytes = journal_bytes;
  std::string message;
  Status st = format_device(*base.device, format, &message);
  EXPECT_TRUE(st.ok()) << message;
  auto fs = mount_over(*base.device, base.options, &message);
  EXPECT_TRUE(fs.ok()) << message;
  if (!st.ok() || !fs.ok()) return base;
  const std::vector<Op> setup = {
      {OpKind::kMkdir, "/d"},
      {OpKind::kMkdir, "/e"},
      {OpKind::kCreate, "/a"},
      {OpKind::kWrite, "/a", "", 0, 14000, 0, 1},
      {OpKind::kSetxattr, "/a", "user.x", 0, 40, 0, 2},
      {OpKind::kCreate, "/b"},
      {OpKind::kWrite, "/b", "", 0, 40960, 0, 3},
      {OpKind::kCreate, "/d/c"},
      {OpKind::kWrite, "/d/c", "", 0, 5000, 0, 4},
      {OpKind::kCreate, "/big"},
  };
  for (const Op& op : setup) {
    Status st = run_op(**fs, op, true);
    EXPECT_TRUE(st.ok()) << op.text() << ": " << errno_name(st.error());
  }
  for (uint64_t off = 0; off < (200u << 10); off += kMaxOpBytes) {
    EXPECT_TRUE(
        run_op(**fs, {OpKind::kWrite, "/big", "", off, kMaxOpBytes, 0, 5 + off}, true).ok());
  }
  EXPECT_TRUE((*fs)->fsync(kRootInode, false).ok());
  EXPECT_TRUE((*fs)->unmount().ok());
  return base;
}

struct Recording {
  std::string label;
  std::vector<Op> ops;                     // ops[k - 1] is operation k
  std::vector<int> results;                // errno of operation k (index k - 1)
  std::vector<State> states;               // [k]: after operation k; [0]: after mount
  std::vector<size_t> events_after;        // [k]: events logged when states[k] was taken
  std::vector<bool> durable;               // [k]: an fsync that returned, the mount or unmount
  std::vector<FaultDevice::Event> events;  // every write and flush, in order
};

// Next operation, given the state after the previous one; nullopt ends the workload.
using NextOp = std::function<std::optional<Op>(const State&)>;

// Whether a failed operation is one the workload may legitimately meet: the
// systematic sequences do not check that their operations still apply.
bool structural_error(int e) {
  return e == ENOENT || e == EEXIST || e == ENOTEMPTY || e == EISDIR || e == ENOTDIR ||
         e == EINVAL || e == ENODATA;
}

void take_snapshot(FileSystem& fs, const FaultDevice& recorder, bool durable, Recording* rec) {
  progress();
  State s;
  std::string error;
  EXPECT_TRUE(read_state(fs, &s, &error)) << rec->label << ": " << error;
  rec->states.push_back(std::move(s));
  rec->events_after.push_back(recorder.events().size());
  rec->durable.push_back(durable);
}

// Runs a workload from `base` on a recording FaultDevice, then unmounts (the
// unmount is the last operation, an fsync of everything).
bool record(const BaseImage& base, const NextOp& next, bool release, bool strict, Recording* rec) {
  auto device = copy_device(*base.device);
  FaultDevice recorder(*device, 0, kMaxEvents);
  std::string message;
  auto fs = mount_over(recorder, base.options, &message);
  if (!fs.ok()) {
    ADD_FAILURE() << rec->label << ": mount: " << message;
    return false;
  }
  take_snapshot(**fs, recorder, true, rec);
  while (std::optional<Op> op = next(rec->states.back())) {
    Status st = run_op(**fs, *op, release);
    rec->ops.push_back(*op);
    rec->results.push_back(st.ok() ? 0 : st.error());
    if (!st.ok() && (strict || !structural_error(st.error()))) {
      ADD_FAILURE() << rec->label << ": " << op->text() << ": " << errno_name(st.error());
      return false;
    }
    take_snapshot(**fs, recorder, st.ok() && op->kind == OpKind::kFsync, rec);
  }
  Status st = (*fs)->unmount();
  EXPECT_TRUE(st.ok()) << rec->label << ": unmount: " << errno_name(st.error());
  fs->reset();
  rec->ops.push_back(Op{OpKind::kFsync, "(unmount)"});
  rec->results.push_back(st.ok() ? 0 : st.error());
  rec->states.push_back(rec->states.back());
  rec->events_after.push_back(recorder.events().size());
  rec->durable.push_back(st.ok());
  rec->events = recorder.events();
  EXPECT_FALSE(recorder.events_overflowed());
  return st.ok() && !::testing::Test::HasFailure();
}

std::string describe_ops(const Recording& rec) {
  std::string out = "  0: mount (events <= " + std::to_string(rec.events_after[0]) + ")\n";
  for (size_t k = 1; k < rec.states.size(); k++) {
    out += "  " + std::to_string(k) + ": " + rec.ops[k - 1].text() + " -> " +
           errno_name(rec.results[k - 1]) + " (events <= " + std::to_string(rec.events_after[k]) +
           ")\n";
  }
  return out;
}

// ---- crash images -------------------------------------------------------------------------

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

uint64_t g_total_states = 0;  // over the whole run, for the summary line

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
  bool check_mounted(size_t lo, size_t hi, bool exercise, std::string* why, State* after);
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
  {
    std::lock_guard lock(g_log_mu);
    g_log.clear();
  }
  std::string why;
  FsckOutcome before = run_fsck_overlay(*scratch_);
  if (before.code != fsck::kExitClean) {
    why = "fsck through OverlayDevice (before recovery) exited " + std::to_string(before.code) +
          ":\n" + before.text;
  }
  size_t hi = 0, lo = 0;
  while (rec_.events_after[hi] < c) hi++;
  for (size_t k = 0; k < rec_.states.size() && rec_.events_after[k] <= c; k++) {
    if (rec_.durable[k]) lo = k;
  }
  hi = std::max(hi, lo);
  bool exercise = ++images_ % kExerciseEvery == 0;
  State after;
  std::string mounted;
  if (!check_mounted(lo, hi, exercise, &mounted, &after)) return fail(c, v, why + mounted);
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
bool CrashChecker::check_mounted(size_t lo, size_t hi, bool exercise, std::string* why,
                                 State* after) {
  std::string message;
  MountOptions options{kCheckCacheBytes};
  options.commit_interval_s = kNoTimedCommit_s;
  auto fs = mount_over(*scratch_, options, &message);
  if (!fs.ok()) return *why = "mount (recovery) failed: " + message, false;
  State got;
  if (!read_state(**fs, &got, why)) return false;
  bool match = false;
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

// Every crash point from `first` to the end, or, past max_points, the points
// beside each flush (just before it: the most in flight; just after) and a
// random sample of the others.
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

// ---- workloads ----------------------------------------------------------------------------

// The systematic alphabet, every operation valid on the base tree.
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

// The path an operation leaves behind (to fsync), or its parent if none.
std::string sync_target(const Op& op, const State& s) {
  std::string path = op.kind == OpKind::kLink || op.kind == OpKind::kRename ? op.arg : op.path;
  auto it = s.find(path);
  if (it == s.end() || it->second.type == 'l') return parent_path(path);
  return path;
}

// sync: 0 none, 1 fsync the file, 2 fdatasync it, 3 fsync its directory, 4 both.
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

std::optional<Op> RandomWorkload::draw_data(const State& s, unsigned kind) {
  std::optional<std::string> file = any(s, "f");
  if (!file) return std::nullopt;
  uint64_t size = s.at(*file).size;
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
  return Op{OpKind::kRename, *from, *to};
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
    uint64_t big = max_xattr_value(kDefaultPageSize, 7);  // "user.kN"
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
}  // namespace pagefs
