#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault_device.h"
#include "engine/file_device.h"
#include "engine/mem_device.h"

namespace pagefs {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kMiB = 1024 * 1024;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

// A zeroed buffer aligned for O_DIRECT; len a multiple of kBlock.
Buffer aligned(size_t len) {
  auto* p = static_cast<std::byte*>(std::aligned_alloc(kBlock, len));
  std::memset(p, 0, len);
  return Buffer(p);
}

// Bytes that differ for every (tag, position), so misplaced blocks are caught.
void fill(std::byte* p, size_t len, uint64_t tag) {
  std::mt19937_64 rng(tag);
  for (size_t i = 0; i < len; i++) p[i] = static_cast<std::byte>(rng());
}

void fill_byte(std::byte* p, size_t len, unsigned char value) {
  std::memset(p, value, len);
}

// PAGEFS_SEED repeats a run; otherwise a fresh seed, printed on failure via SCOPED_TRACE.
uint64_t test_seed() {
  if (const char* env = std::getenv("PAGEFS_SEED")) return std::strtoull(env, nullptr, 0);
  return std::random_device()();
}

int count_differing_bits(const std::byte* a, const std::byte* b, size_t len) {
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    bits += std::popcount(static_cast<unsigned>(std::to_integer<uint8_t>(a[i] ^ b[i])));
  }
  return bits;
}

// A private directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base ? base : "/tmp") + "/pagefs_device_test.XXXXXX";
    path_ = mkdtemp(templ.data()) ? templ : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// MemDevice

TEST(MemDeviceTest, RoundTripsAVectoredBatch) {
  MemDevice dev(1 * kMiB);
  Buffer a = aligned(3 * kBlock), b = aligned(kBlock);
  fill(a.get(), 3 * kBlock, 1);
  fill(b.get(), kBlock, 2);
  const iovec first[] = {{a.get(), kBlock}, {a.get() + kBlock, 2 * kBlock}};
  const iovec second[] = {{b.get(), kBlock}};
  const IoRequest writes[] = {{8 * kBlock, first}, {100 * kBlock, second}};
  ASSERT_TRUE(dev.write(writes).ok());

  Buffer out = aligned(4 * kBlock);
  const iovec back[] = {{out.get(), 3 * kBlock}};
  const iovec back2[] = {{out.get() + 3 * kBlock, kBlock}};
  const IoRequest reads[] = {{8 * kBlock, back}, {100 * kBlock, back2}};
  ASSERT_TRUE(dev.read(reads).ok());
  EXPECT_EQ(0, std::memcmp(out.get(), a.get(), 3 * kBlock));
  EXPECT_EQ(0, std::memcmp(out.get() + 3 * kBlock, b.get(), kBlock));
  EXPECT_EQ(0, std::memcmp(dev.raw() + 100 * kBlock, b.get(), kBlock));
  EXPECT_EQ(2u, dev.write_count());
  EXPECT_EQ(2u, dev.read_count());
}

TEST(MemDeviceTest, RejectsUnalignedOffset) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(kBlock);
  EXPECT_EQ(EINVAL, dev.write_at(512, buf.get(), kBlock).error());
  EXPECT_EQ(EINVAL, dev.read_at(kBlock + 1, buf.get(), kBlock).error());
  EXPECT_EQ(0u, dev.write_count());
}

TEST(MemDeviceTest, RejectsUnalignedLength) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(2 * kBlock);
  EXPECT_EQ(EINVAL, dev.write_at(0, buf.get(), 1000).error());
  EXPECT_EQ(EINVAL, dev.read_at(0, buf.get(), kBlock + 512).error());
}

TEST(MemDeviceTest, RejectsUnalignedBufferAddress) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(2 * kBlock);
  EXPECT_EQ(EINVAL, dev.write_at(0, buf.get() + 512, kBlock).error());
  EXPECT_EQ(EINVAL, dev.read_at(0, buf.get() + 8, kBlock).error());
}

TEST(MemDeviceTest, RejectsOutOfRangeIo) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(2 * kBlock);
  EXPECT_EQ(EINVAL, dev.write_at(1 * kMiB - kBlock, buf.get(), 2 * kBlock).error());
  EXPECT_EQ(EINVAL, dev.read_at(1 * kMiB, buf.get(), kBlock).error());
  // An offset so large that offset + length wraps around.
  EXPECT_EQ(EINVAL, dev.read_at(UINT64_MAX - kBlock + 1, buf.get(), kBlock).error());
  EXPECT_TRUE(dev.read_at(1 * kMiB - kBlock, buf.get(), kBlock).ok());
}

TEST(MemDeviceTest, RejectsEmptyRequestsAndBuffers) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(kBlock);
  const IoRequest no_buffers[] = {{0, {}}};
  EXPECT_EQ(EINVAL, dev.write(no_buffers).error());
  EXPECT_EQ(EINVAL, dev.write_at(0, buf.get(), 0).error());
}

TEST(MemDeviceTest, RefusesWholeBatchIfAnyRequestIsInvalid) {
  MemDevice dev(1 * kMiB);
  Buffer buf = aligned(kBlock);
  fill_byte(buf.get(), kBlock, 0x5a);
  const iovec good[] = {{buf.get(), kBlock}};
  const IoRequest batch[] = {{0, good}, {100, good}};
  EXPECT_EQ(EINVAL, dev.write(batch).error());
  EXPECT_EQ(std::byte{0}, dev.raw()[0]);
}

TEST(MemDeviceTest, ReadOnlyRefusesWrites) {
  MemDevice dev(1 * kMiB);
  dev.set_read_only(true);
  Buffer buf = aligned(kBlock);
  EXPECT_TRUE(dev.read_only());
  EXPECT_EQ(EROFS, dev.write_at(0, buf.get(), kBlock).error());
  EXPECT_TRUE(dev.read_at(0, buf.get(), kBlock).ok());
}

TEST(MemDeviceTest, CountsFlushes) {
  MemDevice dev(1 * kMiB);
  ASSERT_TRUE(dev.flush().ok());
  ASSERT_TRUE(dev.flush().ok());
  EXPECT_EQ(2u, dev.flush_count());
}

// ---------------------------------------------------------------------------
// FileDevice

class FileDeviceTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kFileBytes = 16 * kMiB;

  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    path_ = dir_.path() + "/device.img";
    std::filesystem::resize_file(create(), kFileBytes);
  }

  const std::string& create() {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    if (f != nullptr) std::fclose(f);
    return path_;
  }

  std::unique_ptr<FileDevice> open_device(FileDeviceOptions opts = {}) {
    std::string message;
    auto dev = FileDevice::open(path_, opts, &message);
    EXPECT_TRUE(dev.ok()) << message;
    return dev.ok() ? std::move(dev).value() : nullptr;
  }

  TempDir dir_;
  std::string path_;
};

TEST_F(FileDeviceTest, ReportsGeometry) {
  auto dev = open_device();
  ASSERT_NE(nullptr, dev);
  EXPECT_EQ(kFileBytes, dev->size_bytes());
  EXPECT_GE(dev->block_size(), kBlock);
  EXPECT_TRUE(std::has_single_bit(dev->block_size()));
  EXPECT_FALSE(dev->read_only());
  dev->check_invariants();
}

TEST_F(FileDeviceTest, RoundTripsBatchLargerThanQueueDepthAcrossReopen) {
  constexpr size_t kRequests = 200, kIovPerRequest = 3;
  constexpr size_t kBytes = kRequests * kIovPerRequest * kBlock;
  Buffer data = aligned(kBytes);
  fill(data.get(), kBytes, 42);
  // Request r covers 3 blocks at device block 4r; its buffers are taken backwards.
  std::vector<iovec> iovs;
  for (size_t i = 0; i < kRequests * kIovPerRequest; i++) {
    iovs.push_back({data.get() + (kRequests * kIovPerRequest - 1 - i) * kBlock, kBlock});
  }
  std::vector<IoRequest> writes;
  for (size_t r = 0; r < kRequests; r++) {
    writes.push_back({r * 4 * kBlock, std::span<const iovec>(&iovs[r * 3], 3)});
  }
  auto dev = open_device({.rings = 2, .queue_depth = 16});
  ASSERT_NE(nullptr, dev);
  ASSERT_TRUE(dev->write(writes).ok());
  ASSERT_TRUE(dev->flush().ok());
  dev.reset();

  dev = open_device({.rings = 1, .queue_depth = 8});
  ASSERT_NE(nullptr, dev);
  Buffer out = aligned(kBytes);
  std::vector<iovec> out_iovs(kRequests);
  std::vector<IoRequest> reads;
  for (size_t r = 0; r < kRequests; r++) {
    out_iovs[r] = {out.get() + r * 3 * kBlock, 3 * kBlock};
    reads.push_back({r * 4 * kBlock, std::span<const iovec>(&out_iovs[r], 1)});
  }
  ASSERT_TRUE(dev->read(reads).ok());
  for (size_t i = 0; i < kRequests * kIovPerRequest; i++) {
    ASSERT_EQ(0, std::memcmp(out.get() + i * kBlock, iovs[i].iov_base, kBlock)) << "block " << i;
  }
}

TEST_F(FileDeviceTest, RoundTripsRequestWithMoreBuffersThanIovMax) {
  constexpr size_t kBuffers = 1100;  // IOV_MAX is 1024
  Buffer data = aligned(kBuffers * kBlock);
  fill(data.get(), kBuffers * kBlock, 7);
  std::vector<iovec> iovs;
  for (size_t i = 0; i < kBuffers; i++) iovs.push_back({data.get() + i * kBlock, kBlock});
  auto dev = open_device();
  ASSERT_NE(nullptr, dev);
  const IoRequest write[] = {{kBlock, iovs}};
  ASSERT_TRUE(dev->write(write).ok());
  Buffer out = aligned(kBuffers * kBlock);
  ASSERT_TRUE(dev->read_at(kBlock, out.get(), kBuffers * kBlock).ok());
  EXPECT_EQ(0, std::memcmp(out.get(), data.get(), kBuffers * kBlock));
}

// Each thread owns a 2 MiB region; 8 threads share 4 rings, so some wait for one.
TEST_F(FileDeviceTest, ConcurrentThreadsEachRoundTripTheirOwnRegion) {
  constexpr int kThreads = 8, kRounds = 20, kBlocksPerBatch = 16;
  auto dev = open_device({.rings = 4, .queue_depth = 8});
  ASSERT_NE(nullptr, dev);
  std::atomic<int> failures{0};
  auto worker = [&](int t) {
    const uint64_t region = t * (kFileBytes / kThreads);
    Buffer in = aligned(kBlocksPerBatch * kBlock), out = aligned(kBlocksPerBatch * kBlock);
    for (int round = 0; round < kRounds; round++) {
      fill(in.get(), kBlocksPerBatch * kBlock, t * 1000 + round);
      std::vector<iovec> iov_in, iov_out;
      std::vector<IoRequest> writes, reads;
      for (int b = 0; b < kBlocksPerBatch; b++) {
        iov_in.push_back({in.get() + b * kBlock, kBlock});
        iov_out.push_back({out.get() + b * kBlock, kBlock});
      }
      for (int b = 0; b < kBlocksPerBatch; b++) {
        const uint64_t offset = region + (round * kBlocksPerBatch + b) % 512 * kBlock;
        writes.push_back({offset, std::span<const iovec>(&iov_in[b], 1)});
        reads.push_back({offset, std::span<const iovec>(&iov_out[b], 1)});
      }
      if (!dev->write(writes).ok() || !dev->read(reads).ok() ||
          std::memcmp(in.get(), out.get(), kBlocksPerBatch * kBlock) != 0) {
        failures++;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(0, failures.load());
  dev->check_invariants();
}

TEST_F(FileDeviceTest, ReadOnlyDeviceRefusesWritesButReads) {
  auto dev = open_device({.read_only = true});
  ASSERT_NE(nullptr, dev);
  EXPECT_TRUE(dev->read_only());
  Buffer buf = aligned(kBlock);
  EXPECT_EQ(EROFS, dev->write_at(0, buf.get(), kBlock).error());
  EXPECT_TRUE(dev->read_at(0, buf.get(), kBlock).ok());
  EXPECT_TRUE(dev->flush().ok());
}

TEST_F(FileDeviceTest, SecondOpenWhileOpenIsBusy) {
  auto first = open_device();
  ASSERT_NE(nullptr, first);
  std::string message;
  auto second = FileDevice::open(path_, {}, &message);
  EXPECT_EQ(EBUSY, second.error());
  EXPECT_NE(std::string::npos, message.find("in use")) << message;
  EXPECT_NE(std::string::npos, message.find(path_)) << message;
  auto reader = FileDevice::open(path_, {.read_only = true}, &message);
  EXPECT_EQ(EBUSY, reader.error());
}

TEST_F(FileDeviceTest, LockIsReleasedWhenTheDeviceIsDestroyed) {
  auto first = open_device();
  ASSERT_NE(nullptr, first);
  first.reset();
  EXPECT_NE(nullptr, open_device());
}

TEST_F(FileDeviceTest, ReadOnlyOpensShareTheLock) {
  auto first = open_device({.read_only = true});
  auto second = open_device({.read_only = true});
  EXPECT_NE(nullptr, first);
  EXPECT_NE(nullptr, second);
}

TEST_F(FileDeviceTest, OpenWithoutLockIgnoresOtherHolders) {
  auto first = open_device();
  auto second = open_device({.exclusive_lock = false});
  EXPECT_NE(nullptr, first);
  EXPECT_NE(nullptr, second);
}

TEST_F(FileDeviceTest, MissingPathFailsWithENOENTAndAMessage) {
  const std::string missing = dir_.path() + "/missing.img";
  std::string message;
  auto dev = FileDevice::open(missing, {}, &message);
  EXPECT_EQ(ENOENT, dev.error());
  EXPECT_EQ("cannot open " + missing + ": No such file or directory", message);
}

TEST_F(FileDeviceTest, DirectoryIsRejected) {
  std::string message;
  auto dev = FileDevice::open(dir_.path(), {}, &message);
  EXPECT_EQ(EINVAL, dev.error());
  EXPECT_NE(std::string::npos, message.find("not a regular file or a block device")) << message;
}

TEST_F(FileDeviceTest, InvalidOptionsAreRejected) {
  std::string message;
  EXPECT_EQ(EINVAL, FileDevice::open(path_, {.rings = 0}, &message).error());
  EXPECT_EQ(EINVAL, FileDevice::open(path_, {.queue_depth = 0}, &message).error());
  EXPECT_FALSE(message.empty());
}

TEST_F(FileDeviceTest, RejectsUnalignedAndOutOfRangeIo) {
  auto dev = open_device();
  ASSERT_NE(nullptr, dev);
  Buffer buf = aligned(2 * kBlock);
  EXPECT_EQ(EINVAL, dev->write_at(512, buf.get(), kBlock).error());
  EXPECT_EQ(EINVAL, dev->write_at(0, buf.get(), 512).error());
  EXPECT_EQ(EINVAL, dev->write_at(0, buf.get() + 512, kBlock).error());
  EXPECT_EQ(EINVAL, dev->read_at(kFileBytes, buf.get(), kBlock).error());
  EXPECT_EQ(EINVAL, dev->read_at(kFileBytes - kBlock, buf.get(), 2 * kBlock).error());
}

// After the file shrinks under the device, a read reaching past the end comes back
// short; the device resubmits the remainder, gets 0 bytes and reports EIO.
TEST_F(FileDeviceTest, ReadPastTheEndOfAShrunkFileIsEIO) {
  auto dev = open_device();
  ASSERT_NE(nullptr, dev);
  Buffer data = aligned(4 * kBlock);
  fill(data.get(), 4 * kBlock, 3);
  ASSERT_TRUE(dev->write_at(0, data.get(), 4 * kBlock).ok());
  std::filesystem::resize_file(path_, 2 * kBlock);
  Buffer out = aligned(4 * kBlock);
  EXPECT_EQ(EIO, dev->read_at(0, out.get(), 4 * kBlock).error());
  EXPECT_EQ(0, std::memcmp(out.get(), data.get(), 2 * kBlock));
  EXPECT_TRUE(dev->read_at(kBlock, out.get(), kBlock).ok());
}

// ---------------------------------------------------------------------------
// FaultDevice

class FaultDeviceTest : public ::testing::Test {
 protected:
  FaultDeviceTest() : seed_(test_seed()), mem_(1 * kMiB), dev_(mem_, seed_, 1000) {}

  void SetUp() override { trace_.emplace("seed=" + std::to_string(seed_)); }

  // Writes blocks [first, first + count) of the inner device with `value` directly.
  void preset(uint64_t first, uint64_t count, unsigned char value) {
    std::memset(mem_.raw() + first * kBlock, value, count * kBlock);
  }

  const uint64_t seed_;
  MemDevice mem_;
  FaultDevice dev_;

 private:
  struct Trace {
    explicit Trace(const std::string& s) : scope(__FILE__, __LINE__, s) {}
    ::testing::ScopedTrace scope;
  };
  std::optional<Trace> trace_;
};

TEST_F(FaultDeviceTest, PassesIoThroughWhenNoFaultIsSet) {
  Buffer in = aligned(2 * kBlock), out = aligned(2 * kBlock);
  fill(in.get(), 2 * kBlock, seed_);
  ASSERT_TRUE(dev_.write_at(kBlock, in.get(), 2 * kBlock).ok());
  ASSERT_TRUE(dev_.flush().ok());
  ASSERT_TRUE(dev_.read_at(kBlock, out.get(), 2 * kBlock).ok());
  EXPECT_EQ(0, std::memcmp(in.get(), out.get(), 2 * kBlock));
  EXPECT_EQ(1u, mem_.flush_count());
  EXPECT_EQ(1u, dev_.write_count());
}

TEST_F(FaultDeviceTest, DropsWritesAfterTheNth) {
  preset(0, 4, 0xaa);
  dev_.drop_writes_after(2);
  Buffer buf = aligned(kBlock);
  fill_byte(buf.get(), kBlock, 0x55);
  for (uint64_t b = 0; b < 4; b++) ASSERT_TRUE(dev_.write_at(b * kBlock, buf.get(), kBlock).ok());
  EXPECT_TRUE(dev_.crashed());
  EXPECT_EQ(4u, dev_.write_count());
  EXPECT_EQ(2u, dev_.dropped_write_count());
  Buffer out = aligned(kBlock);
  for (uint64_t b = 0; b < 4; b++) {
    ASSERT_TRUE(dev_.read_at(b * kBlock, out.get(), kBlock).ok());
    const auto expected = std::byte{b < 2 ? uint8_t{0x55} : uint8_t{0xaa}};
    EXPECT_EQ(expected, out.get()[0]) << "block " << b;
    EXPECT_EQ(expected, out.get()[kBlock - 1]) << "block " << b;
  }
  ASSERT_TRUE(dev_.flush().ok());
  EXPECT_EQ(0u, mem_.flush_count()) << "a crashed device passes nothing down";
}

TEST_F(FaultDeviceTest, TornWriteAppliesOnlyAPrefixAndCrashes) {
  constexpr uint64_t kBytes = 4 * kBlock;
  preset(0, 8, 0xaa);
  dev_.tear_write(2);
  Buffer buf = aligned(kBytes);
  fill_byte(buf.get(), kBytes, 0x55);
  ASSERT_TRUE(dev_.write_at(4 * kBlock, buf.get(), kBlock).ok());  // write 1: applied
  ASSERT_TRUE(dev_.write_at(0, buf.get(), kBytes).ok());           // write 2: torn
  ASSERT_TRUE(dev_.write_at(4 * kBlock, buf.get(), kBytes).ok());  // write 3: dropped
  ASSERT_TRUE(dev_.torn_sectors().has_value());
  const uint64_t kept = *dev_.torn_sectors() * FaultDevice::kSectorBytes;
  EXPECT_LT(kept, kBytes);
  for (uint64_t i = 0; i < kBytes; i++) {
    ASSERT_EQ(std::byte{i < kept ? uint8_t{0x55} : uint8_t{0xaa}}, mem_.raw()[i]) << "byte " << i;
  }
  EXPECT_EQ(std::byte{0x55}, mem_.raw()[4 * kBlock]);
  EXPECT_EQ(std::byte{0xaa}, mem_.raw()[5 * kBlock]);
  EXPECT_TRUE(dev_.crashed());
}

TEST_F(FaultDeviceTest, FailedReadsReturnEIO) {
  Buffer buf = aligned(kBlock);
  dev_.set_read_error_probability(1);
  EXPECT_EQ(EIO, dev_.read_at(0, buf.get(), kBlock).error());
  dev_.set_read_error_probability(0.5);
  int failed = 0;
  for (int i = 0; i < 200; i++) failed += dev_.read_at(0, buf.get(), kBlock).ok() ? 0 : 1;
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 200);
  dev_.clear_faults();
  EXPECT_TRUE(dev_.read_at(0, buf.get(), kBlock).ok());
}

TEST_F(FaultDeviceTest, FailedWritesReturnEIOAndChangeNothing) {
  Buffer buf = aligned(kBlock);
  fill_byte(buf.get(), kBlock, 0x55);
  dev_.set_write_error_probability(1);
  EXPECT_EQ(EIO, dev_.write_at(0, buf.get(), kBlock).error());
  EXPECT_EQ(std::byte{0}, mem_.raw()[0]);
  EXPECT_EQ(0u, dev_.write_count());
  EXPECT_TRUE(dev_.events().empty());
}

TEST_F(FaultDeviceTest, FailedFlushReturnsEIO) {
  dev_.set_flush_error(true);
  EXPECT_EQ(EIO, dev_.flush().error());
  EXPECT_EQ(0u, mem_.flush_count());
  EXPECT_EQ(0u, dev_.flush_count());
}

TEST_F(FaultDeviceTest, FlipBitChangesExactlyOneBitOnTheDevice) {
  fill(mem_.raw(), 1 * kMiB, seed_);
  std::vector<std::byte> before(mem_.raw(), mem_.raw() + 1 * kMiB);
  ASSERT_TRUE(dev_.flip_bit(5000, 3).ok());
  EXPECT_EQ(1, count_differing_bits(before.data(), mem_.raw(), 1 * kMiB));
  EXPECT_EQ(before[5000] ^ std::byte{0x08}, mem_.raw()[5000]);
  EXPECT_EQ(EINVAL, dev_.flip_bit(1 * kMiB, 0).error());
  EXPECT_EQ(EINVAL, dev_.flip_bit(0, 8).error());
}

TEST_F(FaultDeviceTest, ReadBitFlipCorruptsOnlyTheReturnedData) {
  fill(mem_.raw(), 1 * kMiB, seed_);
  dev_.set_read_bit_flip_probability(1);
  Buffer out = aligned(2 * kBlock);
  ASSERT_TRUE(dev_.read_at(8 * kBlock, out.get(), 2 * kBlock).ok());
  EXPECT_EQ(1, count_differing_bits(out.get(), mem_.raw() + 8 * kBlock, 2 * kBlock));
}

TEST_F(FaultDeviceTest, WritesStayStrictEvenWhenDropped) {
  dev_.drop_writes_after(0);
  Buffer buf = aligned(2 * kBlock);
  EXPECT_EQ(EINVAL, dev_.write_at(512, buf.get(), kBlock).error());
  EXPECT_EQ(EINVAL, dev_.write_at(0, buf.get() + 512, kBlock).error());
}

TEST_F(FaultDeviceTest, RecordsWritesAndFlushesForReplay) {
  Buffer a = aligned(kBlock), b = aligned(kBlock);
  fill_byte(a.get(), kBlock, 0x11);
  fill_byte(b.get(), kBlock, 0x22);
  ASSERT_TRUE(dev_.write_at(0, a.get(), kBlock).ok());
  ASSERT_TRUE(dev_.flush().ok());
  ASSERT_TRUE(dev_.write_at(kBlock, b.get(), kBlock).ok());
  ASSERT_EQ(3u, dev_.events().size());
  EXPECT_EQ(FaultDevice::Event::Kind::kWrite, dev_.events()[0].kind);
  EXPECT_EQ(FaultDevice::Event::Kind::kFlush, dev_.events()[1].kind);
  EXPECT_EQ(kBlock, dev_.events()[2].offset);
  EXPECT_EQ(std::byte{0x22}, dev_.events()[2].data.at(kBlock - 1));

  MemDevice replica(1 * kMiB);
  ASSERT_TRUE(dev_.replay(replica, 2).ok());
  EXPECT_EQ(std::byte{0x11}, replica.raw()[0]);
  EXPECT_EQ(std::byte{0}, replica.raw()[kBlock]);
  EXPECT_EQ(1u, replica.flush_count());
}

TEST_F(FaultDeviceTest, EventLogIsBounded) {
  MemDevice mem(1 * kMiB);
  FaultDevice dev(mem, seed_, 2);
  Buffer buf = aligned(kBlock);
  for (int i = 0; i < 3; i++) ASSERT_TRUE(dev.write_at(0, buf.get(), kBlock).ok());
  EXPECT_EQ(2u, dev.events().size());
  EXPECT_TRUE(dev.events_overflowed());
  EXPECT_EQ(3u, dev.write_count());
}

}  // namespace
}  // namespace pagefs
