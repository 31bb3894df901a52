// The recording side of the crash tests, and what they share: the seed, the
// engine log, a watchdog, fsck in-process, the logical state of a tree, the
// operations workloads are made of, base images and recordings.
//
// A workload runs on a FaultDevice that records every write (offset and bytes)
// and every flush. After each operation the test notes the number of events
// logged and the logical state of the tree: for every path its type, mode, link
// count, size, inode number, times, contents and xattrs. Operations stay small
// (writes of at most 64 KiB) so that each one is atomic: a commit only happens
// between operations.
//
// CrashChecker (crash_checker.h) turns a Recording into crash images and
// checks them; crash_workloads.h makes the operations.
//
// Thread-safety: everything runs on the test's thread, except the engine log
// sink (called from any engine thread, serialized by a mutex) and the watchdog
// (its own thread, which only reads the time of the last progress()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/device.h"
#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/log.h"
#include "engine/mem_device.h"

namespace pagefs::test::crash {

inline constexpr uint64_t kDeviceBytes = 16ull << 20;
inline constexpr size_t kMaxEvents = size_t{1} << 20;
inline constexpr uint32_t kNoTimedCommit_s = 365u * 24 * 3600;  // commits only when the test asks
inline constexpr uint64_t kCheckCacheBytes = 2ull << 20;        // mounts of crash images
inline constexpr uint64_t kSmokeStates = 2400;                  // both enumerating tests together
inline constexpr uint64_t kMaxOpBytes = 64ull << 10;
inline constexpr int kWatchdogSeconds = 120;

// PAGEFS_SEED, read once (see tests/test_env.h).
uint64_t test_seed();

// Crash states one enumerating test may check: half the shared budget
// (PAGEFS_CRASH_STATES, default kSmokeStates; PAGEFS_CRASH_LONG=1 multiplies it by 20).
uint64_t state_budget();

uint64_t mix(uint64_t a, uint64_t b);

// Deterministic bytes for writes and xattr values.
std::string pattern(uint64_t seed, size_t len);

std::string errno_name(int e);

// ---- the engine log, kept for failure messages ----------------------------------------

// A LogSink that keeps the last lines of the engine log.
void keep_log_line(LogLevel, const char* line);
// The kept lines, indented, for a failure message.
std::string log_tail();
// Forgets the kept lines: a new crash image starts a new log.
void clear_log();

// ---- a watchdog: an engine hang becomes a failure with the seed ------------------------

// Notes that a crash state or a workload step finished.
void progress();

// Aborts the process when no crash state or workload finishes for
// kWatchdogSeconds: the engine hangs.
void start_watchdog();
// Disarms it: the tests that follow (in the same binary) may be slow without hanging.
void stop_watchdog();

// ---- fsck in-process --------------------------------------------------------------------

struct FsckOutcome {
  int code = -1;
  std::string text;  // the report and the summary line
};

// Runs fsck's checker on `device`, as fsck -n would: its exit code, report and summary line.
FsckOutcome run_fsck(Device& device, const char* name);

// fsck -n's view of an image: the journal applied through an overlay.
FsckOutcome run_fsck_overlay(Device& device);

// ---- the logical state --------------------------------------------------------------------

struct Node {
  char type = '?';  // 'f' regular, 'd' directory, 'l' symlink
  uint64_t ino = 0;
  uint64_t size = 0;
  std::vector<std::string> xattrs;  // names
  std::string desc;                 // everything the comparison looks at
};
using State = std::map<std::string, Node>;  // path -> node; "/" is the root

bool same_state(const State& a, const State& b);
std::string state_diff(const State& got, const State& want);
std::string child_path(const std::string& dir, std::string_view name);
std::string parent_path(const std::string& path);

// Reads the whole tree of a mounted filesystem into *out; false with *error set
// if any call fails.
bool read_state(FileSystem& fs, State* out, std::string* error);

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
  int mode = 0;       // fallocate mode; rename flags; fsync: 1 for fdatasync
  uint64_t seed = 0;  // bytes of a write or an xattr value

  std::string text() const;
};

// Runs one operation. With `release`, an inode whose last link goes is
// released at once, as the kernel's forget would; otherwise it stays an
// orphan until the next mount.
Status run_op(FileSystem& fs, const Op& op, bool release);

// ---- images and recordings ----------------------------------------------------------------

struct BaseImage {
  std::string name;
  std::unique_ptr<MemDevice> device;
  MountOptions options;  // for the workloads
};

std::unique_ptr<MemDevice> copy_device(const MemDevice& from);

// Mounts `device` through a FaultDevice that injects nothing.
Result<std::unique_ptr<FileSystem>> mount_over(Device& device, const MountOptions& options,
                                               std::string* message);

// A formatted image holding a starting tree, made durable and unmounted, so
// that workloads overwrite live pages: /a (with an xattr), /b, /big, /d/c, /e.
BaseImage make_base(const std::string& name, uint64_t journal_bytes, uint64_t cache_bytes);

struct Recording {
  std::string label;
  // Concurrent recordings (record_concurrent): `threads` threads, each on its
  // own directory /t<N>; state k is then only that directory's subtree, taken
  // by thread thread_of[k] after its operation. 0 for one sequence of
  // operations on the whole tree.
  int threads = 0;
  std::vector<int> thread_of;
  std::vector<Op> ops;                     // ops[k - 1] is operation k
  std::vector<int> results;                // errno of operation k (index k - 1)
  std::vector<State> states;               // [k]: after operation k; [0]: after mount
  std::vector<size_t> events_after;        // [k]: events logged when states[k] was taken
  std::vector<bool> durable;               // [k]: an fsync that returned, the mount or unmount
  std::vector<FaultDevice::Event> events;  // every write and flush, in order
};

// Next operation, given the state after the previous one; nullopt ends the workload.
using NextOp = std::function<std::optional<Op>(const State&)>;

// Runs a workload from `base` on a recording FaultDevice, then unmounts (the
// unmount is the last operation, an fsync of everything).
bool record(const BaseImage& base, const NextOp& next, bool release, bool strict, Recording* rec);

// Runs `threads` threads at once from `base`, each doing `ops` random
// operations (writes, truncates, creates, renames, unlinks, xattrs, fsyncs)
// on files of its own directory /t<N>, on a recording FaultDevice; then
// unmounts. Each thread's states are its directory's subtree.
bool record_concurrent(const BaseImage& base, int threads, size_t ops, uint64_t seed,
                       Recording* rec);

// Reads the subtree under `path` (the directory itself included) into *out.
bool read_subtree(FileSystem& fs, const std::string& path, State* out, std::string* error);
// The entries of `s` at or under `path`.
State subtree(const State& s, const std::string& path);

// The operations of a recording, numbered, with their results and event counts.
std::string describe_ops(const Recording& rec);

}  // namespace pagefs::test::crash
