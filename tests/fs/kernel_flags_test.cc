// KernelFlags amends libfuse's INIT reply: the flags pagefs wants are added
// where the kernel offered them, and nothing else in the reply changes.
// Replies are written to a pipe standing in for /dev/fuse.
#include "fs/kernel_flags.h"

#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/log.h"

namespace pagefs {
namespace {

constexpr uint64_t kUnique = 42;
constexpr uint32_t kLibfuseFlags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES;

std::vector<std::string> g_log;

void capture(LogLevel, const char* line) {
  g_log.emplace_back(line);
}

// An INIT request offering `offered` (flags2 only with FUSE_INIT_EXT).
std::vector<char> init_request(uint64_t offered) {
  fuse_in_header in{};
  fuse_init_in init{};
  in.len = sizeof in + sizeof init;
  in.opcode = FUSE_INIT;
  in.unique = kUnique;
  init.major = 7;
  init.minor = 45;
  init.flags = uint32_t(offered);
  init.flags2 = uint32_t(offered >> 32);
  std::vector<char> buf(in.len);
  std::memcpy(buf.data(), &in, sizeof in);
  std::memcpy(buf.data() + sizeof in, &init, sizeof init);
  return buf;
}

struct Reply {
  fuse_out_header out{};
  fuse_init_out init{};
};

// libfuse's reply: the header and the argument in two iovecs.
Reply libfuse_reply(int error = 0) {
  Reply r;
  r.out.len = sizeof r.out + sizeof r.init;
  r.out.error = error;
  r.out.unique = kUnique;
  r.init.major = 7;
  r.init.minor = 31;
  r.init.max_readahead = 1 << 20;
  r.init.flags = kLibfuseFlags | FUSE_INIT_EXT;
  r.init.max_write = 1 << 20;
  r.init.max_pages = 256;
  r.init.time_gran = 1;
  return r;
}

class KernelFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe(fds_), 0);
    g_log.clear();
    set_log_sink(capture);
    set_log_verbose(true);
  }
  void TearDown() override {
    set_log_sink(nullptr);
    set_log_verbose(false);
    close(fds_[0]);
    close(fds_[1]);
  }

  // Sends `r` through `flags` and returns what reached the "device".
  Reply round_trip(KernelFlags& flags, Reply r) {
    iovec iov[2] = {{&r.out, sizeof r.out}, {&r.init, sizeof r.init}};
    EXPECT_EQ(flags.send(fds_[1], iov, 2), ssize_t(sizeof r.out + sizeof r.init));
    Reply got;
    EXPECT_EQ(read(fds_[0], &got, sizeof got), ssize_t(sizeof got));
    return got;
  }

  int fds_[2] = {-1, -1};
};

TEST_F(KernelFlagsTest, AddsOfferedFlagsAndChangesNothingElse) {
  KernelFlags flags(/*private_cache=*/true);
  uint64_t offered = kLibfuseFlags | FUSE_INIT_EXT | kFuseParallelDirops | kFuseDirectIoAllowMmap;
  std::vector<char> request = init_request(offered);
  flags.note_request(request.data(), request.size());
  Reply sent = libfuse_reply();
  Reply got = round_trip(flags, sent);
  Reply want = sent;
  want.init.flags |= uint32_t(kFuseParallelDirops);
  want.init.flags2 |= uint32_t(kFuseDirectIoAllowMmap >> 32);
  EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0);
  EXPECT_TRUE(flags.granted(kFuseDirectIoAllowMmap));
  EXPECT_TRUE(flags.granted(kFuseParallelDirops));
  ASSERT_EQ(g_log.size(), 1u);
  EXPECT_NE(g_log[0].find("parallel_dirops direct_io_allow_mmap"), std::string::npos) << g_log[0];
}

TEST_F(KernelFlagsTest, OlderKernelKeepsSharedMapsRefusedAndSaysSo) {
  KernelFlags flags(/*private_cache=*/true);
  std::vector<char> request =
      init_request(kLibfuseFlags | FUSE_INIT_EXT | kFuseParallelDirops);  // Linux < 6.6
  flags.note_request(request.data(), request.size());
  Reply got = round_trip(flags, libfuse_reply());
  EXPECT_EQ(got.init.flags2, 0u);
  EXPECT_FALSE(flags.granted(kFuseDirectIoAllowMmap));
  EXPECT_TRUE(flags.granted(kFuseParallelDirops));
  ASSERT_EQ(g_log.size(), 2u);
  EXPECT_NE(g_log[1].find("shared mmap is refused"), std::string::npos) << g_log[1];
}

TEST_F(KernelFlagsTest, KernelCacheModeAsksNoDirectIoFlag) {
  KernelFlags flags(/*private_cache=*/false);
  std::vector<char> request =
      init_request(kLibfuseFlags | FUSE_INIT_EXT | kFuseParallelDirops | kFuseDirectIoAllowMmap);
  flags.note_request(request.data(), request.size());
  Reply got = round_trip(flags, libfuse_reply());
  EXPECT_EQ(got.init.flags2, 0u);
  EXPECT_EQ(got.init.flags, kLibfuseFlags | FUSE_INIT_EXT | uint32_t(kFuseParallelDirops));
  EXPECT_EQ(g_log.size(), 1u);
}

TEST_F(KernelFlagsTest, ErrorRepliesAndOtherRepliesPassUnchanged) {
  KernelFlags flags(/*private_cache=*/true);
  std::vector<char> request =
      init_request(kLibfuseFlags | FUSE_INIT_EXT | kFuseParallelDirops | kFuseDirectIoAllowMmap);
  flags.note_request(request.data(), request.size());
  Reply other = libfuse_reply();
  other.out.unique = kUnique + 1;
  Reply got = round_trip(flags, other);
  EXPECT_EQ(std::memcmp(&got, &other, sizeof got), 0);
  Reply failed = libfuse_reply(-EPROTO);
  got = round_trip(flags, failed);
  EXPECT_EQ(std::memcmp(&got, &failed, sizeof got), 0);
  EXPECT_EQ(flags.replied(), 0u);
  EXPECT_TRUE(g_log.empty());
}

TEST_F(KernelFlagsTest, NoFlags2WithoutInitExt) {
  KernelFlags flags(/*private_cache=*/true);
  std::vector<char> request = init_request(kLibfuseFlags | kFuseParallelDirops);
  flags.note_request(request.data(), request.size());
  Reply sent = libfuse_reply();
  sent.init.flags &= ~uint32_t(FUSE_INIT_EXT);
  Reply got = round_trip(flags, sent);
  EXPECT_EQ(got.init.flags, kLibfuseFlags | uint32_t(kFuseParallelDirops));
  EXPECT_EQ(got.init.flags2, 0u);
}

}  // namespace
}  // namespace pagefs
