// rewrite_request turns FUSE_TMPFILE into FUSE_CREATE, changing nothing else,
// and leaves every other request alone.
#include "fs/request_rewrite.h"

#include <gtest/gtest.h>
#include <linux/fuse.h>

#include <cstring>
#include <vector>

namespace pagefs {
namespace {

std::vector<char> request(uint32_t opcode, const char* name) {
  fuse_in_header in{};
  fuse_create_in create{};
  in.opcode = opcode;
  in.unique = 7;
  in.nodeid = 1;
  create.flags = 02;
  create.mode = 0100600;
  size_t name_len = std::strlen(name) + 1;
  in.len = uint32_t(sizeof in + sizeof create + name_len);
  std::vector<char> buf(in.len);
  std::memcpy(buf.data(), &in, sizeof in);
  std::memcpy(buf.data() + sizeof in, &create, sizeof create);
  std::memcpy(buf.data() + sizeof in + sizeof create, name, name_len);
  return buf;
}

uint32_t opcode_of(const std::vector<char>& buf) {
  fuse_in_header in;
  std::memcpy(&in, buf.data(), sizeof in);
  return in.opcode;
}

TEST(RequestRewrite, TmpfileBecomesACreateOfTheSameArguments) {
  std::vector<char> buf = request(FUSE_TMPFILE, kTmpfileName);
  std::vector<char> want = request(FUSE_CREATE, kTmpfileName);
  EXPECT_TRUE(rewrite_request(buf.data(), buf.size()));
  EXPECT_EQ(opcode_of(buf), uint32_t(FUSE_CREATE));
  EXPECT_EQ(buf, want);
}

TEST(RequestRewrite, OtherRequestsAreLeftAlone) {
  std::vector<char> buf = request(FUSE_CREATE, "file");
  std::vector<char> copy = buf;
  EXPECT_FALSE(rewrite_request(buf.data(), buf.size()));
  EXPECT_EQ(buf, copy);
  buf = request(FUSE_MKNOD, "node");
  EXPECT_FALSE(rewrite_request(buf.data(), buf.size()));
  EXPECT_EQ(opcode_of(buf), uint32_t(FUSE_MKNOD));
  // Too short to be a FUSE_TMPFILE with its arguments.
  buf = request(FUSE_TMPFILE, "/");
  EXPECT_FALSE(rewrite_request(buf.data(), sizeof(fuse_in_header) + 4));
  EXPECT_EQ(opcode_of(buf), uint32_t(FUSE_TMPFILE));
}

}  // namespace
}  // namespace pagefs
