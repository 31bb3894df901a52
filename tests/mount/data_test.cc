// File data through a real mount: many files, large files, sparse files,
// fallocate, copy_file_range, concurrent writers and the cache budget.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/crc32c.h"
#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct stat fstat_of(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0) << std::strerror(errno);
  return st;
}

size_t count_entries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  EXPECT_NE(d, nullptr) << std::strerror(errno);
  if (d == nullptr) return 0;
  size_t n = 0;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) ++n;
  }
  closedir(d);
  return n;
}

// Writes `bytes` of pattern(seed) to a new file in chunks of `chunk` bytes.
// Returns "" or a description of the failure (usable from any thread).
std::string write_pattern_file(const std::string& path, uint64_t seed, uint64_t bytes,
                               size_t chunk) {
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) return path + ": open: " + std::strerror(errno);
  std::string buf(chunk, '\0');
  for (uint64_t off = 0; off < bytes; off += chunk) {
    size_t n = size_t(std::min<uint64_t>(chunk, bytes - off));
    fill_pattern(seed, off, buf.data(), n);
    ssize_t w = pwrite(fd, buf.data(), n, off_t(off));
    if (w != ssize_t(n)) {
      std::string err = path + ": pwrite at " + std::to_string(off) + " returned " +
                        std::to_string(w) + ": " + std::strerror(errno);
      close(fd);
      return err;
    }
  }
  if (close(fd) != 0) return path + ": close: " + std::strerror(errno);
  return "";
}

// Reads the file back in chunks and compares each chunk's CRC32C with the
// pattern's. Returns "" or the first mismatch.
std::string verify_pattern_file(const std::string& path, uint64_t seed, uint64_t bytes,
                                size_t chunk) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return path + ": open: " + std::strerror(errno);
  std::string got(chunk, '\0'), want(chunk, '\0');
  std::string err;
  uint64_t off = 0;
  for (; off < bytes && err.empty(); off += chunk) {
    size_t n = size_t(std::min<uint64_t>(chunk, bytes - off));
    ssize_t r = pread(fd, got.data(), n, off_t(off));
    fill_pattern(seed, off, want.data(), n);
    if (r != ssize_t(n)) {
      err = path + ": pread at " + std::to_string(off) + " returned " + std::to_string(r) + ": " +
            std::strerror(errno);
    } else if (crc32c(got.data(), n) != crc32c(want.data(), n)) {
      size_t i = 0;
      while (i < n && got[i] == want[i]) ++i;
      err = path + ": wrong bytes at offset " + std::to_string(off + i);
    }
  }
  char extra;
  if (err.empty() && pread(fd, &extra, 1, off_t(bytes)) != 0) err = path + ": longer than written";
  close(fd);
  return err;
}

class MountData : public MountTest {};

TEST_F(MountData, HundredThousandFilesInOneDirectory) {
  constexpr int kFiles = 100'000;
  ASSERT_TRUE(fs_.start(1 * kGiB));
  const std::string dir = fs_.path("many");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  auto start = Clock::now();
  char name[64];
  for (int i = 0; i < kFiles; ++i) {
    snprintf(name, sizeof name, "/file-%07d", i);
    int fd = open((dir + name).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << "file " << i << ": " << std::strerror(errno);
    ASSERT_EQ(close(fd), 0);
  }
  double create_s = seconds_since(start);
  printf("[ info ] created %d files in %.2f s (%.0f files/s)\n", kFiles, create_s,
         kFiles / create_s);

  start = Clock::now();
  for (int i = 0; i < kFiles; i += 997) {
    snprintf(name, sizeof name, "/file-%07d", i);
    struct stat st;
    ASSERT_EQ(stat((dir + name).c_str(), &st), 0) << name << ": " << std::strerror(errno);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_size, 0);
  }
  struct stat missing;
  EXPECT_EQ(stat((dir + "/file-9999999").c_str(), &missing), -1);
  EXPECT_EQ(errno, ENOENT);
  start = Clock::now();
  EXPECT_EQ(count_entries(dir), size_t(kFiles));
  printf("[ info ] readdir of %d entries in %.2f s\n", kFiles, seconds_since(start));

  ASSERT_TRUE(fs_.remount());
  start = Clock::now();
  EXPECT_EQ(count_entries(dir), size_t(kFiles));
  printf("[ info ] readdir after remount in %.2f s\n", seconds_since(start));
  unmount_and_check();
}

TEST_F(MountData, OneGibFileReadsBackAfterRemount) {
  constexpr uint64_t kBytes = 1 * kGiB;
  ASSERT_TRUE(fs_.start(kBytes + 512 * kMiB));
  const std::string file = fs_.path("big");
  auto start = Clock::now();
  ASSERT_EQ(write_pattern_file(file, 42, kBytes, kMiB), "");
  printf("[ info ] wrote 1 GiB in %.2f s\n", seconds_since(start));
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(uint64_t(st.st_size), kBytes);

  ASSERT_TRUE(fs_.remount());
  start = Clock::now();
  EXPECT_EQ(verify_pattern_file(file, 42, kBytes, kMiB), "");
  printf("[ info ] read 1 GiB after remount in %.2f s\n", seconds_since(start));
  unmount_and_check();
}

TEST_F(MountData, SparseFileHolesAndFallocate) {
  constexpr uint64_t kLogical = 10 * kGiB;
  constexpr size_t kChunk = 64 * kKiB;
  ASSERT_TRUE(fs_.start(256 * kMiB));
  const std::string file = fs_.path("sparse");
  int fd = open(file.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const std::string head = pattern(7, 0, kChunk), tail = pattern(7, kLogical - kChunk, kChunk);
  ASSERT_EQ(pwrite(fd, head.data(), kChunk, 0), ssize_t(kChunk)) << std::strerror(errno);
  ASSERT_EQ(pwrite(fd, tail.data(), kChunk, off_t(kLogical - kChunk)), ssize_t(kChunk))
      << std::strerror(errno);
  struct stat st = fstat_of(fd);
  EXPECT_EQ(uint64_t(st.st_size), kLogical);
  EXPECT_LT(uint64_t(st.st_blocks) * 512, kMiB);
  EXPECT_GE(uint64_t(st.st_blocks) * 512, 2 * kChunk);

  std::string mid(kChunk, 'x');
  ASSERT_EQ(pread(fd, mid.data(), kChunk, off_t(kLogical / 2)), ssize_t(kChunk));
  EXPECT_EQ(mid, std::string(kChunk, '\0'));
  std::string back(kChunk, '\0');
  ASSERT_EQ(pread(fd, back.data(), kChunk, off_t(kLogical - kChunk)), ssize_t(kChunk));
  EXPECT_EQ(back, tail);

  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0) << std::strerror(errno);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), off_t(kChunk)) << std::strerror(errno);
  EXPECT_EQ(lseek(fd, kChunk, SEEK_DATA), off_t(kLogical - kChunk)) << std::strerror(errno);
  EXPECT_EQ(lseek(fd, off_t(kLogical - kChunk), SEEK_HOLE), off_t(kLogical))
      << std::strerror(errno);
  EXPECT_EQ(lseek(fd, off_t(kLogical), SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  ASSERT_EQ(close(fd), 0);

  // fallocate: the default mode extends the size, KEEP_SIZE does not.
  const std::string f2 = fs_.path("falloc");
  fd = open(f2.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, kMiB), 0) << std::strerror(errno);
  st = fstat_of(fd);
  EXPECT_EQ(uint64_t(st.st_size), kMiB);
  EXPECT_GE(uint64_t(st.st_blocks) * 512, kMiB);
  std::string zeros(kMiB, 'x');
  ASSERT_EQ(pread(fd, zeros.data(), kMiB, 0), ssize_t(kMiB));
  EXPECT_EQ(zeros, std::string(kMiB, '\0'));
  const blkcnt_t blocks_before_keep = st.st_blocks;
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, kMiB, kMiB), 0) << std::strerror(errno);
  st = fstat_of(fd);
  EXPECT_EQ(uint64_t(st.st_size), kMiB);
  EXPECT_GE(uint64_t(st.st_blocks - blocks_before_keep) * 512, kMiB);
  ASSERT_EQ(close(fd), 0);

  // PUNCH_HOLE and ZERO_RANGE on a file full of data.
  const std::string f3 = fs_.path("punch");
  constexpr uint64_t kSize = 2 * kMiB;
  std::string data = pattern(9, 0, kSize);
  ASSERT_TRUE(write_file(f3, data));
  fd = open(f3.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const blkcnt_t full_blocks = fstat_of(fd).st_blocks;
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * kKiB, 256 * kKiB), 0)
      << std::strerror(errno);
  st = fstat_of(fd);
  EXPECT_EQ(uint64_t(st.st_size), kSize);
  EXPECT_LE(uint64_t(full_blocks - st.st_blocks) * 512, 256 * kKiB + 8 * kKiB);
  EXPECT_GE(uint64_t(full_blocks - st.st_blocks) * 512, 256 * kKiB - 8 * kKiB);
  std::fill(data.begin() + 256 * kKiB, data.begin() + 512 * kKiB, '\0');
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, kMiB + 1000, 100'000), 0) << std::strerror(errno);
  std::fill(data.begin() + kMiB + 1000, data.begin() + kMiB + 101'000, '\0');
  EXPECT_EQ(uint64_t(fstat_of(fd).st_size), kSize);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(read_file(f3) == data) << "punched/zeroed file has wrong contents";

  ASSERT_TRUE(fs_.remount());
  EXPECT_TRUE(read_file(f3) == data) << "punched/zeroed file wrong after remount";
  fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(uint64_t(fstat_of(fd).st_size), kLogical);
  EXPECT_EQ(lseek(fd, kChunk, SEEK_DATA), off_t(kLogical - kChunk));
  ASSERT_EQ(pread(fd, back.data(), kChunk, 0), ssize_t(kChunk));
  EXPECT_EQ(back, head);
  close(fd);
  unmount_and_check();
}

TEST_F(MountData, CopyFileRangeCopiesBytes) {
  ASSERT_TRUE(fs_.start(256 * kMiB));
  const std::string src = fs_.path("src"), dst = fs_.path("dst"), part = fs_.path("part");
  const std::string data = pattern(11, 0, 3 * kMiB + 123);
  ASSERT_TRUE(write_file(src, data));

  int in = open(src.c_str(), O_RDONLY);
  int out = open(dst.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  size_t copied = 0;
  while (copied < data.size()) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, data.size() - copied, 0);
    ASSERT_GT(n, 0) << "copy_file_range after " << copied << ": " << std::strerror(errno);
    copied += size_t(n);
  }
  ASSERT_EQ(close(out), 0);

  out = open(part.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(out, 0);
  loff_t off_in = 1000, off_out = 5000;
  size_t left = 100'000;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &off_in, out, &off_out, left, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    left -= size_t(n);
  }
  ASSERT_EQ(close(out), 0);
  ASSERT_EQ(close(in), 0);

  EXPECT_TRUE(read_file(dst) == data) << "copy differs";
  const std::string expected_part = std::string(5000, '\0') + data.substr(1000, 100'000);
  EXPECT_TRUE(read_file(part) == expected_part) << "partial copy differs";
  ASSERT_TRUE(fs_.remount());
  EXPECT_TRUE(read_file(dst) == data) << "copy differs after remount";
  EXPECT_TRUE(read_file(src) == data) << "source changed";
  unmount_and_check();
}

TEST_F(MountData, ConcurrentWritersEachGetTheirData) {
  constexpr int kThreads = 8;
  constexpr uint64_t kBytes = 64 * kMiB;
  ASSERT_TRUE(fs_.start(1 * kGiB));
  std::vector<std::string> errors(kThreads);
  auto run_all = [&](auto&& body) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { errors[t] = body(t); });
    for (auto& th : threads) th.join();
  };
  auto file = [&](int t) { return fs_.path("writer-" + std::to_string(t)); };

  auto start = Clock::now();
  run_all([&](int t) { return write_pattern_file(file(t), 100 + t, kBytes, 256 * kKiB); });
  printf("[ info ] %d writers x 64 MiB in %.2f s\n", kThreads, seconds_since(start));
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "writer " << t;

  run_all([&](int t) { return verify_pattern_file(file(t), 100 + t, kBytes, kMiB); });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "reader " << t;
  unmount_and_check();
}

// Writers into files they have already allocated (by writing them, or with
// fallocate) run beside each other (engine/file_overwrite.cc): four threads
// rewrite random ranges of their own files, aligned or not, from a buffer
// that is not page-aligned (so the kernel splits the larger writes at page
// boundaries of the buffer), with fdatasyncs between, while a fifth reads
// every file. Each file must end exactly as its writer's model says, and
// fsck must find the filesystem clean.
TEST_F(MountData, ParallelOverwritersEachGetTheirBytes) {
  constexpr int kWriters = 4, kWrites = 1500;
  constexpr size_t kFileBytes = 8 * kMiB;
  ASSERT_TRUE(fs_.start(256 * kMiB));
  auto file = [&](int t) { return fs_.path("over-" + std::to_string(t)); };
  std::vector<std::string> model(kWriters), errors(kWriters);
  for (int t = 0; t < kWriters; t++) {
    int fd = open(file(t).c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    model[t].assign(kFileBytes, '\0');
    if (t % 2 == 0) {
      ASSERT_EQ(fallocate(fd, 0, 0, kFileBytes), 0) << strerror(errno);
    } else {
      for (size_t i = 0; i < kFileBytes; i++) model[t][i] = char(i * 7 + t);
      ASSERT_EQ(pwrite(fd, model[t].data(), kFileBytes, 0), ssize_t(kFileBytes));
    }
    close(fd);
  }
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    std::vector<char> buf(256 * kKiB);
    for (int i = 0; !stop; i++) {
      int fd = open(file(i % kWriters).c_str(), O_RDONLY);
      if (fd < 0 || pread(fd, buf.data(), buf.size(), (i * 4099 * 17) % kFileBytes) < 0) {
        errors[0] += "reader: " + std::string(strerror(errno)) + "; ";
      }
      if (fd >= 0) close(fd);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; t++) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<char> buf(300 * kKiB + 16);
      char* data = buf.data() + 16 + t;  // not page-aligned
      int fd = open(file(t).c_str(), O_RDWR);
      if (fd < 0) {
        errors[t] = strerror(errno);
        return;
      }
      for (int i = 0; i < kWrites && errors[t].empty(); i++) {
        const bool pages = rng() % 2 == 0;
        size_t n = pages ? 4096 * (1 + rng() % 64) : 1 + rng() % (300 * kKiB);
        size_t off = pages ? 4096 * (rng() % (kFileBytes / 4096)) : rng() % kFileBytes;
        n = std::min(n, kFileBytes - off);
        for (size_t k = 0; k < n; k++) data[k] = char(rng());
        if (pwrite(fd, data, n, off_t(off)) != ssize_t(n)) errors[t] = strerror(errno);
        std::memcpy(model[t].data() + off, data, n);
        if (i % 100 == 99 && fdatasync(fd) != 0) errors[t] = strerror(errno);
      }
      close(fd);
    });
  }
  for (std::thread& w : writers) w.join();
  stop = true;
  reader.join();
  for (int t = 0; t < kWriters; t++) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    std::string got(kFileBytes + 1, '\0');
    int fd = open(file(t).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pread(fd, got.data(), got.size(), 0), ssize_t(kFileBytes)) << "file " << t;
    close(fd);
    got.resize(kFileBytes);
    EXPECT_TRUE(got == model[t]) << "file " << t << " differs from what its writer wrote";
  }
  unmount_and_check();
}

bool daemon_has_sanitizer(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libasan") != std::string::npos || line.find("libtsan") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Bytes of `file` in the kernel page cache, by fincore(1); -1 if unavailable.
int64_t cached_bytes(const std::string& file) {
  CommandResult r = run_command({"fincore", "--bytes", "--noheadings", "--output", "RES", file});
  if (r.exit_code != 0) return -1;
  return std::strtoll(r.out.c_str(), nullptr, 10);
}

TEST_F(MountData, CacheBudgetBoundsMemoryAndPageCache) {
  constexpr uint64_t kBytes = 1 * kGiB;
  constexpr uint64_t kCache = 64 * kMiB;
  ASSERT_TRUE(fs_.start(kBytes + 512 * kMiB, "cache_size=64M"));
  const std::string file = fs_.path("big");
  ASSERT_EQ(write_pattern_file(file, 5, kBytes, kMiB), "");
  ASSERT_TRUE(fs_.remount("cache_size=64M"));
  const pid_t pid = fs_.daemon_pid();

  int fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(kMiB, '\0');
  uint64_t total = 0, peak_rss = 0;
  uint32_t crc = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    ASSERT_GE(n, 0) << "read at " << total << ": " << std::strerror(errno);
    if (n == 0) break;
    crc = crc32c_extend(crc, buf.data(), size_t(n));
    total += uint64_t(n);
    if (total % (64 * kMiB) == 0) peak_rss = std::max(peak_rss, proc_status_bytes(pid, "VmRSS"));
  }
  close(fd);
  EXPECT_EQ(total, kBytes);
  uint32_t want = 0;
  for (uint64_t off = 0; off < kBytes; off += kMiB) {
    fill_pattern(5, off, buf.data(), kMiB);
    want = crc32c_extend(want, buf.data(), kMiB);
  }
  EXPECT_EQ(crc, want) << "file contents differ";

  const uint64_t hwm = proc_status_bytes(pid, "VmHWM");
  printf("[ info ] daemon VmHWM %.1f MiB, peak sampled VmRSS %.1f MiB (cache 64 MiB)\n",
         double(hwm) / kMiB, double(peak_rss) / kMiB);
  if (daemon_has_sanitizer(pid)) {
    printf("[ info ] sanitizer build: memory bound not checked\n");
  } else {
    EXPECT_LT(hwm, kCache + 48 * kMiB);
    EXPECT_LT(peak_rss, kCache + 48 * kMiB);
  }
  const int64_t cached = cached_bytes(fs_.image());
  printf("[ info ] image bytes in the kernel page cache: %lld\n", (long long)cached);
  ASSERT_GE(cached, 0) << "fincore failed";
  EXPECT_LT(uint64_t(cached), kCache) << "the image should be (almost) absent from the page cache";
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
