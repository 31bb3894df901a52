// Crash tests through a real mount: kill -9 the daemon in the middle of a
// workload, then check that every file the workload had made durable is there,
// byte for byte.
//
// A child process writes files of random sizes (up to kMaxFileBytes) into a
// few directories. For each one it fsyncs the file and its directory and only
// then appends "put NAME SIZE CRC" to a manifest kept outside the mount (in the
// test's own directory), fsyncing the manifest too. Some files replace an
// existing one atomically: written to NAME.tmp, fsynced, a "pending" line
// appended, renamed over NAME, the directory fsynced, then the "put" line. After
// a crash a pending name may hold either version. Some files are rewritten in
// place through a shared map, with msync(MS_SYNC) as the only sync: a
// "rewrite" line first (until the "put" line the file may hold any mix), the
// stores, msync, then the "put" line, which the new bytes must then match.
//
// Each round kills the daemon (only our own child) at a random moment, waits
// for the workload to stop, unmounts the dead mount, runs fsck -n (must exit
// 0), remounts and verifies every manifest entry. At the end the filesystem is
// unmounted cleanly and fsck -n must exit 0 again.
//
// Environment: PAGEFS_SEED fixes the seed (default: fixed; "random" for a new one; printed);
// PAGEFS_CRASH_ROUNDS the number of rounds (default kSmokeRounds).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/mount/mount_helper.h"
#include "tests/test_env.h"

namespace pagefs::test {
namespace {

constexpr int kSmokeRounds = 5;
constexpr uint64_t kImageBytes = 1 * kGiB;
constexpr uint64_t kMaxFileBytes = 3 * kMiB;
constexpr size_t kMaxFiles = 120;  // past this the workload only replaces files
constexpr int kDirs = 4;
constexpr size_t kChunkBytes = 128 * kKiB;
const char* const kMountOptions = "cache_size=64M,commit=1";

struct Version {
  uint64_t size = 0;
  uint32_t crc = 0;
  uint64_t seed = 0;
};

// What the manifest promises for one name: the confirmed version, and the
// version a replacement was installing when the daemon died, if any. Nothing
// is promised while a rewrite through a map was under way.
struct Entry {
  std::optional<Version> put;
  std::optional<Version> pending;
  bool rewriting = false;
};

std::map<std::string, Entry> read_manifest(const std::string& path) {
  std::map<std::string, Entry> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string kind, name;
    Version v;
    if (!(fields >> kind >> name >> v.size >> v.crc >> v.seed)) continue;  // a torn last line
    Entry& e = out[name];
    if (kind == "put") {
      e.put = v;
      e.pending.reset();
      e.rewriting = false;
    } else if (kind == "pending") {
      e.pending = v;
    } else if (kind == "rewrite") {
      e.rewriting = true;
    }
  }
  return out;
}

// ---- the workload (runs in a child process) ----------------------------------------------

class Workload {
 public:
  Workload(std::string mnt, std::string manifest, uint64_t seed, int round)
      : mnt_(std::move(mnt)), manifest_(std::move(manifest)), rng_(seed), round_(round) {}

  // Writes files until an error (the daemon is gone); returns the exit code.
  int run() {
    // A store into a map faults once the daemon is gone: that ends the
    // workload as a failing call does.
    signal(SIGBUS, [](int) { _exit(0); });
    manifest_fd_ = open(manifest_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (manifest_fd_ < 0) return 2;
    names_.clear();
    for (const auto& [name, e] : read_manifest(manifest_)) names_.push_back(name);
    for (int i = 0;; i++) {
      bool change = !names_.empty() && (names_.size() >= kMaxFiles || rng_() % 10 < 5);
      std::string old_name = change ? names_[rng_() % names_.size()] : std::string();
      bool ok = !change          ? new_file("dir" + std::to_string(rng_() % kDirs) + "/r" +
                                            std::to_string(round_) + "-" + std::to_string(i))
                : rng_() % 5 < 4 ? replace_file(old_name)
                                 : rewrite_through_map(old_name);
      if (!ok) return 0;
    }
  }

 private:
  // Writes the whole file at `path` from a new seed and fsyncs it; fills `v`.
  bool write_file(const std::string& path, Version* v) {
    v->seed = rng_();
    v->size = rng_() % (rng_() % 10 < 3 ? 64 * kKiB : kMaxFileBytes + 1);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = write_and_fsync(fd, v);
    return close(fd) == 0 && ok;
  }

  // Writes v->size bytes from v->seed at offset 0 and fsyncs; fills v->crc.
  bool write_and_fsync(int fd, Version* v) {
    std::string all;
    all.reserve(v->size);
    for (uint64_t off = 0; off < v->size; off += kChunkBytes) {
      std::string chunk = pattern(v->seed, off, std::min<uint64_t>(kChunkBytes, v->size - off));
      if (pwrite(fd, chunk.data(), chunk.size(), off_t(off)) != ssize_t(chunk.size())) {
        return false;
      }
      all += chunk;
    }
    v->crc = checksum(all);
    return fsync(fd) == 0;
  }

  bool sync_dir(const std::string& dir) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
  }

  bool log(const char* kind, const std::string& name, const Version& v) {
    char line[512];
    int n = std::snprintf(line, sizeof line, "%s %s %" PRIu64 " %u %" PRIu64 "\n", kind,
                          name.c_str(), v.size, v.crc, v.seed);
    return write(manifest_fd_, line, size_t(n)) == n && fsync(manifest_fd_) == 0;
  }

  std::string dir_of(const std::string& name) const {
    return mnt_ + "/" + name.substr(0, name.find('/'));
  }

  bool new_file(const std::string& name) {
    Version v;
    if (!write_file(mnt_ + "/" + name, &v) || !sync_dir(dir_of(name))) return false;
    if (!log("put", name, v)) return false;
    names_.push_back(name);
    return true;
  }

  bool replace_file(const std::string& name) {
    Version v;
    std::string path = mnt_ + "/" + name;
    if (!write_file(path + ".tmp", &v) || !log("pending", name, v)) return false;
    if (rename((path + ".tmp").c_str(), path.c_str()) != 0 || !sync_dir(dir_of(name))) {
      return false;
    }
    return log("put", name, v);
  }

  bool rewrite_through_map(const std::string& name) {
    Version v;
    v.seed = rng_();
    v.size = 1 + rng_() % kMaxFileBytes;
    if (!log("rewrite", name, v)) return false;
    int fd = open((mnt_ + "/" + name).c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ftruncate(fd, off_t(v.size)) == 0;
    void* map = ok ? mmap(nullptr, v.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    // A kernel that maps no direct-I/O file shared says ENODEV: pwrite then.
    ok = map != MAP_FAILED ? store_and_msync(static_cast<char*>(map), &v)
                           : errno == ENODEV && write_and_fsync(fd, &v);
    close(fd);
    return ok && log("put", name, v);
  }

  bool store_and_msync(char* map, Version* v) {
    std::string all;
    all.reserve(v->size);
    for (uint64_t off = 0; off < v->size; off += kChunkBytes) {
      std::string chunk = pattern(v->seed, off, std::min<uint64_t>(kChunkBytes, v->size - off));
      std::memcpy(map + off, chunk.data(), chunk.size());
      all += chunk;
    }
    v->crc = checksum(all);
    bool ok = msync(map, v->size, MS_SYNC) == 0;
    return munmap(map, v->size) == 0 && ok;
  }

  const std::string mnt_, manifest_;
  std::mt19937_64 rng_;
  const int round_;
  int manifest_fd_ = -1;
  std::vector<std::string> names_;
};

// ---- the test -----------------------------------------------------------------------------

class CrashMount : public MountTest {
 protected:
  // Starts the workload in a child process; returns its pid.
  pid_t start_workload(uint64_t seed, int round) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      Workload w(fs_.mountpoint(), manifest(), seed, round);
      _exit(w.run());
    }
    return pid;
  }

  // Waits up to timeout_ms for the workload; kills it (our child) if it hangs.
  int wait_workload(pid_t pid, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  size_t manifest_lines() const {
    std::ifstream in(manifest());
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n++;
    return n;
  }

  // Verifies every manifest entry; returns the number of files whose bytes
  // were checked.
  size_t verify_manifest(std::string* failures) {
    size_t checked = 0;
    for (const auto& [name, e] : read_manifest(manifest())) {
      std::string data = read_file(fs_.path(name));
      if (e.rewriting) continue;  // readable is all that is promised
      uint32_t crc = checksum(data);
      auto matches = [&](const std::optional<Version>& v) {
        return v && v->size == data.size() && v->crc == crc;
      };
      if (!matches(e.put) && !matches(e.pending)) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "%s: %zu bytes crc %08x; manifest: put %" PRIu64 " bytes crc %08x%s\n",
                      name.c_str(), data.size(), crc, e.put ? e.put->size : 0,
                      e.put ? e.put->crc : 0, e.pending ? " (a replacement was pending)" : "");
        *failures += line;
      }
      checked++;
    }
    return checked;
  }

  std::string manifest() const { return fs_.dir() + "/manifest"; }
};

TEST_F(CrashMount, KilledDaemonKeepsEveryFsyncedFile) {
  const uint64_t seed = testenv::seed_from_env();
  const int rounds = int(testenv::env_u64("PAGEFS_CRASH_ROUNDS", kSmokeRounds));
  std::printf("PAGEFS_SEED=%" PRIu64 "\n", seed);
  std::mt19937_64 rng(seed);
  ASSERT_TRUE(fs_.start(kImageBytes, kMountOptions));
  for (int d = 0; d < kDirs; d++) {
    ASSERT_EQ(::mkdir(fs_.path("dir" + std::to_string(d)).c_str(), 0755), 0);
  }
  int root = open(fs_.mountpoint().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  EXPECT_EQ(fsync(root), 0);
  close(root);
  size_t verified = 0, entries = 0;
  for (int round = 0; round < rounds; round++) {
    const auto kill_after = std::chrono::milliseconds(100 + rng() % 1401);
    const size_t lines_before = manifest_lines();
    pid_t child = start_workload(rng(), round);
    ASSERT_GT(child, 0);
    std::this_thread::sleep_for(kill_after);
    ASSERT_EQ(kill(fs_.daemon_pid(), SIGKILL), 0);
    int workload = wait_workload(child, 30'000);
    EXPECT_EQ(workload, 0) << "round " << round << ": the workload exited " << workload;
    int status = fs_.unmount();
    ASSERT_EQ(status, 128 + SIGKILL) << "round " << round << ": " << fs_.last_error();
    ASSERT_EQ(fs_.fsck(), 0) << "round " << round << " (PAGEFS_SEED=" << seed << ", killed after "
                             << kill_after.count() << " ms):\n"
                             << fs_.last_fsck().out << fs_.last_fsck().err;
    ASSERT_TRUE(fs_.mount(kMountOptions)) << "round " << round;
    std::string failures;
    size_t checked = verify_manifest(&failures);
    ASSERT_TRUE(failures.empty()) << "round " << round << " (PAGEFS_SEED=" << seed
                                  << ", killed after " << kill_after.count()
                                  << " ms): fsynced files differ:\n"
                                  << failures << fs_.log_tail();
    std::printf("round %d: killed after %lld ms, %zu manifest lines added, %zu files verified\n",
                round, static_cast<long long>(kill_after.count()), manifest_lines() - lines_before,
                checked);
    verified += checked;
    entries = checked;
  }
  unmount_and_check();
  std::printf("crash rounds: %d, files verified: %zu (%zu in the final manifest)\n", rounds,
              verified, entries);
}

}  // namespace
}  // namespace pagefs::test
