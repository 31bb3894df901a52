// Large and many extended attributes through a real mount: values up to the
// kernel's 64 KiB limit, size queries and ERANGE, hundreds of names listed,
// the space large values take and give back, and fsck after all of it.
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountXattr : public MountTest {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.start(64 * kMiB)); }
  std::string p(std::string_view rel) const { return fs_.path(rel); }
  uint64_t free_bytes() {
    struct statvfs sv {};
    EXPECT_EQ(statvfs(fs_.mountpoint().c_str(), &sv), 0) << std::strerror(errno);
    return uint64_t(sv.f_bfree) * sv.f_frsize;
  }
};

// The value of `len` bytes for name number `i`.
std::string value_for(size_t i, size_t len) {
  return pattern(1000 + i, 0, len);
}

std::string get(const std::string& path, const std::string& name) {
  ssize_t size = getxattr(path.c_str(), name.c_str(), nullptr, 0);
  if (size < 0) return "error " + std::string(strerrorname_np(errno));
  std::string v(size_t(size), '\0');
  ssize_t n = getxattr(path.c_str(), name.c_str(), v.data(), v.size());
  if (n != size) return "error: the size changed";
  return v;
}

TEST_F(MountXattr, ValuesUpTo64KiBRoundTripAndSurviveARemount) {
  ASSERT_TRUE(write_file(p("f"), "data"));
  const size_t sizes[] = {0, 1, 980, 990, 4096, 4097, 30000, 65535, 65536};
  for (size_t i = 0; i < std::size(sizes); i++) {
    const std::string v = value_for(i, sizes[i]);
    ASSERT_EQ(
        setxattr(p("f").c_str(), ("user.v" + std::to_string(i)).c_str(), v.data(), v.size(), 0), 0)
        << sizes[i] << " bytes: " << std::strerror(errno);
  }
  const std::string big = value_for(99, 65537);
  EXPECT_EQ(setxattr(p("f").c_str(), "user.too_big", big.data(), big.size(), 0), -1);
  EXPECT_EQ(errno, E2BIG);

  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < std::size(sizes); i++) {
      const std::string name = "user.v" + std::to_string(i);
      EXPECT_EQ(getxattr(p("f").c_str(), name.c_str(), nullptr, 0), ssize_t(sizes[i]));
      EXPECT_TRUE(get(p("f"), name) == value_for(i, sizes[i])) << sizes[i] << " bytes";
    }
    std::string small(100, '\0');
    EXPECT_EQ(getxattr(p("f").c_str(), "user.v8", small.data(), small.size()), -1);
    EXPECT_EQ(errno, ERANGE);
    ASSERT_TRUE(fs_.remount());
  }
  unmount_and_check();
}

TEST_F(MountXattr, HundredsOfNamesAreAllListed) {
  ASSERT_TRUE(write_file(p("f"), "data"));
  std::set<std::string> want;
  for (int i = 0; i < 600; i++) {
    const std::string name = "user.attribute-number-" + std::to_string(i);
    const std::string v = value_for(size_t(i), i % 50 == 0 ? 5000 : 20);
    ASSERT_EQ(setxattr(p("f").c_str(), name.c_str(), v.data(), v.size(), 0), 0)
        << name << ": " << std::strerror(errno);
    want.insert(name);
  }
  ASSERT_TRUE(fs_.remount());
  ssize_t size = listxattr(p("f").c_str(), nullptr, 0);
  ASSERT_GT(size, 0) << std::strerror(errno);
  std::string list(size_t(size), '\0');
  ASSERT_EQ(listxattr(p("f").c_str(), list.data(), list.size()), size);
  std::set<std::string> got;
  for (size_t at = 0; at < list.size(); at += strlen(list.c_str() + at) + 1) {
    got.insert(list.c_str() + at);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(listxattr(p("f").c_str(), list.data(), list.size() - 1), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_TRUE(get(p("f"), "user.attribute-number-450") == value_for(450, 5000));
  unmount_and_check();
}

// A large value's pages are allocated when it is set and free again when it
// is replaced by a small one, removed, or its file is deleted.
TEST_F(MountXattr, LargeValuesGiveTheirSpaceBack) {
  ASSERT_TRUE(write_file(p("f"), "data"));
  ASSERT_EQ(setxattr(p("f").c_str(), "user.small", "s", 1, 0), 0);
  const uint64_t start = free_bytes();
  const std::string v = value_for(1, 65536);
  for (const char* name : {"user.a", "user.b", "user.c", "user.d"}) {
    ASSERT_EQ(setxattr(p("f").c_str(), name, v.data(), v.size(), 0), 0) << std::strerror(errno);
  }
  EXPECT_LE(free_bytes(), start - 4 * 65536);
  ASSERT_EQ(setxattr(p("f").c_str(), "user.a", "short", 5, XATTR_REPLACE), 0);
  ASSERT_EQ(removexattr(p("f").c_str(), "user.b"), 0);
  EXPECT_LE(free_bytes(), start - 2 * 65536);
  EXPECT_GT(free_bytes(), start - 3 * 65536);
  ASSERT_EQ(unlink(p("f").c_str()), 0);
  ASSERT_TRUE(fs_.remount());
  EXPECT_GE(free_bytes(), start);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
