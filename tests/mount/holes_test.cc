// Holes through a real mount: SEEK_DATA and SEEK_HOLE.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountHoles : public MountTest {};

TEST_F(MountHoles, NegativeOffsetIsEnxio) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string f = fs_.path("f");
  ASSERT_TRUE(write_file(f, std::string(8192, 'x')));
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (int whence : {SEEK_DATA, SEEK_HOLE}) {
    errno = 0;
    EXPECT_EQ(lseek(fd, -1, whence), -1) << "whence " << whence;
    EXPECT_EQ(errno, ENXIO) << "whence " << whence << ": " << std::strerror(errno);
  }
  close(fd);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
