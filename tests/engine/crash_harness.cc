// The recording side of the crash tests: see crash_harness.h.
#include "tests/engine/crash_harness.h"

#include <gtest/gtest.h>
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
#include <mutex>
#include <thread>

#include "engine/crc32c.h"
#include "engine/formatter.h"
#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/report.h"
#include "tests/test_env.h"

namespace pagefs::test::crash {
namespace {

constexpr size_t kLogLines = 40;
const Caller kCaller{1000, 1000};

}  // namespace

uint64_t test_seed() {
  static const uint64_t seed = testenv::seed_from_env();
  return seed;
}

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

namespace {

std::mutex g_log_mu;
std::deque<std::string> g_log;  // guarded by g_log_mu; the last kLogLines lines

}  // namespace

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

void clear_log() {
  std::lock_guard lock(g_log_mu);
  g_log.clear();
}

// ---- a watchdog: an engine hang becomes a failure with the seed ------------------------

namespace {

std::atomic<int64_t> g_progress_s{0};  // steady-clock seconds of the last progress
std::atomic<bool> g_watching{false};   // a crash test is running

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void progress() {
  g_progress_s.store(now_s());
}

void start_watchdog() {
  progress();
  g_watching = true;
  static std::once_flag once;
  std::call_once(once, [] {
    std::thread([] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        if (!g_watching || now_s() - g_progress_s.load() < kWatchdogSeconds) continue;
        std::fprintf(stderr,
                     "crash test: no progress for %d s, the engine hangs (PAGEFS_SEED=%" PRIu64
                     ")\n%s",
                     kWatchdogSeconds, test_seed(), log_tail().c_str());
        std::abort();
      }
    }).detach();
  });
}

void stop_watchdog() {
  g_watching = false;
}

// ---- fsck in-process --------------------------------------------------------------------

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

FsckOutcome run_fsck_overlay(Device& device) {
  RecoveryResult rr;
  std::string message;
  auto overlay = OverlayDevice::open(device, &rr, &message);
  if (!overlay.ok()) return FsckOutcome{-1, "OverlayDevice::open: " + message};
  return run_fsck(**overlay, "overlay");
}

// ---- the logical state --------------------------------------------------------------------

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

namespace {

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

}  // namespace

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

std::string Op::text() const {
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
  if (kind == OpKind::kRename && mode != 0) s += " flags=" + std::to_string(mode);
  if (kind == OpKind::kTruncate) s += " to " + std::to_string(off);
  if (kind == OpKind::kSetxattr) s += " len=" + std::to_string(len);
  return s;
}

namespace {

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

}  // namespace

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
      PAGEFS_TRY(fs.rename(dir, name, to_dir, base_name(op.arg), uint32_t(op.mode), kCaller));
      return release_if_unlinked(fs, victim, release);
    }
    default:
      return run_data_op(fs, op);
  }
}

// ---- images and recordings ----------------------------------------------------------------

std::unique_ptr<MemDevice> copy_device(const MemDevice& from) {
  auto to = std::make_unique<MemDevice>(from.size_bytes());
  std::memcpy(to->raw(), from.raw(), from.size_bytes());
  return to;
}

Result<std::unique_ptr<FileSystem>> mount_over(Device& device, const MountOptions& options,
                                               std::string* message) {
  return FileSystem::mount(std::make_unique<FaultDevice>(device, 0), options, message);
}

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

namespace {

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
  rec->events_after.push_back(recorder.event_count());
  rec->durable.push_back(durable);
}

}  // namespace

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

// ---- concurrent recordings -------------------------------------------------------------

bool read_subtree(FileSystem& fs, const std::string& path, State* out, std::string* error) {
  out->clear();
  auto ino = resolve(fs, path);
  if (!ino.ok()) return failed(error, "resolve " + path, ino.error());
  auto attr = fs.getattr(*ino);
  if (!attr.ok()) return failed(error, "getattr " + path, attr.error());
  Node n;
  if (!describe(fs, *attr, &n, error)) return false;
  (*out)[path] = std::move(n);
  return walk(fs, *ino, path, out, error);
}

State subtree(const State& s, const std::string& path) {
  State out;
  for (auto it = s.lower_bound(path); it != s.end(); ++it) {
    if (it->first != path && it->first.compare(0, path.size() + 1, path + "/") != 0) break;
    out.insert(*it);
  }
  return out;
}

namespace {

// One thread's next operation on its directory `dir`, given its subtree now.
Op thread_op(const std::string& dir, const State& now, std::mt19937_64& rng) {
  auto name = [&] { return dir + "/f" + std::to_string(rng() % 5); };
  for (;;) {
    std::string path = name();
    bool exists = now.contains(path);
    switch (rng() % 9) {
      case 0:
        if (!exists) return Op{OpKind::kCreate, path};
        break;
      case 1:
      case 2:
        if (exists) return Op{OpKind::kWrite, path, "", rng() % 40000, 1 + rng() % 30000, 0, rng()};
        break;
      case 3:
        if (exists) return Op{OpKind::kTruncate, path, "", rng() % 50000};
        break;
      case 4: {
        std::string to = name();
        if (exists && to != path) return Op{OpKind::kRename, path, to};
        break;
      }
      case 5:
        if (exists) return Op{OpKind::kUnlink, path};
        break;
      case 6:
        if (exists) return Op{OpKind::kSetxattr, path, "user.x", 0, 1 + rng() % 200, 0, rng()};
        break;
      default:
        return Op{OpKind::kFsync, dir, "", 0, 0, int(rng() % 2)};
    }
  }
}

struct ThreadLog {
  std::vector<Op> ops;
  std::vector<int> results;
  std::vector<State> states;
  std::vector<size_t> events_after;
  std::vector<bool> durable;
  std::string error;
};

void run_thread(FileSystem& fs, const FaultDevice& recorder, const std::string& dir, size_t ops,
                uint64_t seed, ThreadLog* log) {
  std::mt19937_64 rng(seed);
  State now;
  if (!read_subtree(fs, dir, &now, &log->error)) return;
  for (size_t i = 0; i < ops; i++) {
    Op op = thread_op(dir, now, rng);
    Status st = run_op(fs, op, true);
    if (!st.ok()) {
      log->error = op.text() + ": " + errno_name(st.error());
      return;
    }
    if (!read_subtree(fs, dir, &now, &log->error)) return;
    log->ops.push_back(op);
    log->results.push_back(0);
    log->states.push_back(now);
    log->events_after.push_back(recorder.event_count());
    log->durable.push_back(op.kind == OpKind::kFsync);
  }
}

}  // namespace

bool record_concurrent(const BaseImage& base, int threads, size_t ops, uint64_t seed,
                       Recording* rec) {
  auto device = copy_device(*base.device);
  FaultDevice recorder(*device, seed, kMaxEvents);
  std::string message, error;
  auto fs = FileSystem::mount(std::make_unique<FaultDevice>(recorder, 0), base.options, &message);
  if (!fs.ok()) return ADD_FAILURE() << rec->label << ": mount: " << message, false;
  rec->threads = threads;
  for (int t = 0; t < threads; t++) {
    Status st = run_op(**fs, Op{OpKind::kMkdir, "/t" + std::to_string(t)}, true);
    if (!st.ok())
      return ADD_FAILURE() << rec->label << ": mkdir: " << errno_name(st.error()), false;
  }
  if (!(*fs)->fsync(kRootInode, false).ok()) return ADD_FAILURE() << "fsync", false;
  State all;
  if (!read_state(**fs, &all, &error)) return ADD_FAILURE() << error, false;
  rec->states.push_back(all);
  rec->thread_of.push_back(-1);
  rec->events_after.push_back(recorder.event_count());
  rec->durable.push_back(true);
  for (int t = 0; t < threads; t++) {  // each thread's first state: its empty directory
    std::string dir = "/t" + std::to_string(t);
    rec->ops.push_back(Op{OpKind::kMkdir, dir});
    rec->results.push_back(0);
    rec->states.push_back(subtree(all, dir));
    rec->thread_of.push_back(t);
    rec->events_after.push_back(rec->events_after[0]);
    rec->durable.push_back(true);
  }
  std::vector<ThreadLog> logs(threads);
  std::vector<std::thread> running;
  for (int t = 0; t < threads; t++) {
    running.emplace_back(run_thread, std::ref(**fs), std::cref(recorder), "/t" + std::to_string(t),
                         ops, mix(seed, t), &logs[t]);
  }
  for (std::thread& th : running) th.join();
  for (int t = 0; t < threads; t++) {
    if (!logs[t].error.empty())
      return ADD_FAILURE() << rec->label << ": thread " << t << ": " << logs[t].error, false;
    for (size_t i = 0; i < logs[t].states.size(); i++) {
      rec->ops.push_back(logs[t].ops[i]);
      rec->results.push_back(0);
      rec->states.push_back(std::move(logs[t].states[i]));
      rec->thread_of.push_back(t);
      rec->events_after.push_back(logs[t].events_after[i]);
      rec->durable.push_back(logs[t].durable[i]);
    }
  }
  Status st = (*fs)->unmount();
  fs->reset();
  if (!st.ok()) return ADD_FAILURE() << rec->label << ": unmount", false;
  rec->events = recorder.events();
  EXPECT_FALSE(recorder.events_overflowed());
  return !::testing::Test::HasFailure();
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

}  // namespace pagefs::test::crash
