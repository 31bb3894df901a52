// pagefs as the upper and work directory of an overlay mount, the way
// container runtimes use a volume: the lower layer is a plain directory, the
// changes made through the overlay land on pagefs as files, whiteouts
// (RENAME_WHITEOUT, or character devices 0/0) and trusted.overlay.* xattrs,
// and the overlay shows the same after pagefs is unmounted and mounted again.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

bool is_whiteout(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

bool has_xattr(const std::string& path, const char* name) {
  char value[4096];
  return getxattr(path.c_str(), name, value, sizeof value) > 0;
}

int errno_of(int rc) {
  return rc == 0 ? 0 : errno;
}

int rename2(const std::string& from, const std::string& to, unsigned flags) {
  return int(syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

class MountOverlay : public MountTest {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "mounting overlayfs needs root";
    lower_ = fs_.dir() + "/lower";
    merged_ = fs_.dir() + "/merged";
    ASSERT_EQ(mkdir(lower_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(merged_.c_str(), 0755), 0);
  }
  void TearDown() override { unmount_overlay(); }

  std::string upper(const std::string& rel = "") const {
    return fs_.path("upper") + (rel.empty() ? "" : "/" + rel);
  }
  std::string merged(const std::string& rel) const { return merged_ + "/" + rel; }

  // Mounts the overlay; `redirect_dir_` says whether directories of the lower
  // layer may be renamed (overlay's redirect_dir=on) or give EXDEV.
  // ENODEV: the kernel has no overlayfs, and the test is skipped.
  int mount_overlay() {
    std::string base =
        "lowerdir=" + lower_ + ",upperdir=" + upper() + ",workdir=" + fs_.path("work");
    redirect_dir_ = true;
    int rc = mount("overlay", merged_.c_str(), "overlay", 0, (base + ",redirect_dir=on").c_str());
    if (rc != 0 && errno == EINVAL) {
      redirect_dir_ = false;
      rc = mount("overlay", merged_.c_str(), "overlay", 0, base.c_str());
    }
    if (rc != 0) return errno;
    overlay_mounted_ = true;
    return 0;
  }
  void unmount_overlay() {
    if (!overlay_mounted_) return;
    if (umount2(merged_.c_str(), 0) != 0) {
      ADD_FAILURE() << "umount overlay: " << std::strerror(errno);
      umount2(merged_.c_str(), MNT_DETACH);
    }
    overlay_mounted_ = false;
  }

  // The merged view the test leaves, checked before and after a remount.
  void expect_final_view() {
    EXPECT_EQ(sorted(list_dir(merged(""))),
              (std::vector<std::string>{"b", "c2", "dir", "new", "ren2", "updir2"}));
    EXPECT_EQ(read_file(merged("new")), "new");
    EXPECT_EQ(read_file(merged("b")), "lower b, more");
    EXPECT_EQ(read_file(merged("c2")), "lower c");
    EXPECT_EQ(list_dir(merged("dir")), (std::vector<std::string>{"fresh"}));
    EXPECT_EQ(read_file(merged("ren2/z")), "z");
    EXPECT_EQ(read_file(merged("updir2/f")), "f");
    // The lower layer is never written.
    EXPECT_EQ(read_file(lower_ + "/a"), "lower a");
    EXPECT_EQ(read_file(lower_ + "/b"), "lower b");
    EXPECT_EQ(sorted(list_dir(lower_ + "/dir")), (std::vector<std::string>{"x", "y"}));
  }

  std::string lower_, merged_;
  bool overlay_mounted_ = false;
  bool redirect_dir_ = true;
};

TEST_F(MountOverlay, PagefsServesAsUpperAndWorkDirectory) {
  ASSERT_TRUE(write_file(lower_ + "/a", "lower a"));
  ASSERT_TRUE(write_file(lower_ + "/b", "lower b"));
  ASSERT_TRUE(write_file(lower_ + "/c", "lower c"));
  ASSERT_EQ(mkdir((lower_ + "/dir").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(lower_ + "/dir/x", "x"));
  ASSERT_TRUE(write_file(lower_ + "/dir/y", "y"));
  ASSERT_EQ(mkdir((lower_ + "/ren").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(lower_ + "/ren/z", "z"));
  ASSERT_TRUE(fs_.start(128 << 20));
  ASSERT_EQ(mkdir(upper().c_str(), 0755), 0);
  ASSERT_EQ(mkdir(fs_.path("work").c_str(), 0755), 0);
  int error = mount_overlay();
  if (error == ENODEV) GTEST_SKIP() << "the kernel has no overlayfs";
  ASSERT_EQ(error, 0) << "mount overlay: " << std::strerror(error);

  // A new file lands on pagefs.
  ASSERT_TRUE(write_file(merged("new"), "new"));
  EXPECT_EQ(read_file(upper("new")), "new");
  // Deleting a lower file leaves a whiteout on pagefs.
  ASSERT_EQ(unlink(merged("a").c_str()), 0);
  EXPECT_FALSE(exists(merged("a")));
  EXPECT_TRUE(is_whiteout(upper("a")));
  // Changing a lower file copies it up.
  {
    int fd = open(merged("b").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(write(fd, ", more", 6), 6);
    close(fd);
  }
  EXPECT_EQ(read_file(upper("b")), "lower b, more");
  // Renaming a lower file copies it up under the new name and whites out the old.
  ASSERT_EQ(rename(merged("c").c_str(), merged("c2").c_str()), 0) << std::strerror(errno);
  EXPECT_TRUE(is_whiteout(upper("c")));
  EXPECT_EQ(read_file(upper("c2")), "lower c");
  // Metadata changes copy up too, directory and all.
  ASSERT_EQ(chmod(merged("dir/x").c_str(), 0600), 0);
  struct stat st {};
  ASSERT_EQ(stat(upper("dir/x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(unlink(merged("dir/y").c_str()), 0);
  EXPECT_TRUE(is_whiteout(upper("dir/y")));
  EXPECT_EQ(list_dir(merged("dir")), (std::vector<std::string>{"x"}));
  // A directory removed and made again is opaque: the lower entries stay hidden.
  ASSERT_EQ(unlink(merged("dir/x").c_str()), 0);
  ASSERT_EQ(rmdir(merged("dir").c_str()), 0) << std::strerror(errno);
  EXPECT_TRUE(is_whiteout(upper("dir")));
  ASSERT_EQ(mkdir(merged("dir").c_str(), 0755), 0);
  EXPECT_TRUE(has_xattr(upper("dir"), "trusted.overlay.opaque"));
  EXPECT_TRUE(list_dir(merged("dir")).empty());
  ASSERT_TRUE(write_file(merged("dir/fresh"), "fresh"));
  // A directory of the upper layer alone is renamed by pagefs.
  ASSERT_EQ(mkdir(merged("updir").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(merged("updir/f"), "f"));
  ASSERT_EQ(rename(merged("updir").c_str(), merged("updir2").c_str()), 0) << std::strerror(errno);
  // A directory of the lower layer: overlay records a redirect in an xattr
  // (redirect_dir=on), or answers EXDEV and leaves the copy to mv.
  int renamed = errno_of(rename(merged("ren").c_str(), merged("ren2").c_str()));
  if (redirect_dir_) {
    ASSERT_EQ(renamed, 0) << std::strerror(renamed);
    EXPECT_TRUE(has_xattr(upper("ren2"), "trusted.overlay.redirect"));
    EXPECT_TRUE(is_whiteout(upper("ren")));
  } else {
    ASSERT_EQ(renamed, EXDEV);
    ASSERT_EQ(run_command({"mv", merged("ren"), merged("ren2")}).exit_code, 0);
  }
  expect_final_view();

  // The same view after pagefs was unmounted and mounted again.
  unmount_overlay();
  ASSERT_TRUE(fs_.remount());
  ASSERT_EQ(mount_overlay(), 0);
  expect_final_view();
  unmount_overlay();
  unmount_and_check();
}

// What overlayfs asks of its upper layer, straight through the pagefs mount.
TEST_F(MountOverlay, RenameWhiteoutLeavesACharacterDevice00) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_TRUE(write_file(fs_.path("a"), "a"));
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  ASSERT_EQ(rename2(fs_.path("a"), fs_.path("d/b"), RENAME_WHITEOUT), 0) << std::strerror(errno);
  EXPECT_TRUE(is_whiteout(fs_.path("a")));
  struct stat st {};
  ASSERT_EQ(lstat(fs_.path("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, mode_t(S_IFCHR));
  EXPECT_EQ(read_file(fs_.path("d/b")), "a");
  EXPECT_EQ(rename2(fs_.path("d/b"), fs_.path("a"), RENAME_WHITEOUT | RENAME_EXCHANGE), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_TRUE(fs_.remount());
  EXPECT_TRUE(is_whiteout(fs_.path("a")));
  unmount_and_check();
}

TEST_F(MountOverlay, TrustedXattrsAreStoredForRoot) {
  ASSERT_TRUE(fs_.start(64 << 20));
  ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
  ASSERT_EQ(setxattr(fs_.path("d").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0)
      << std::strerror(errno);
  ASSERT_TRUE(fs_.remount());
  char value[8] = {};
  EXPECT_EQ(getxattr(fs_.path("d").c_str(), "trusted.overlay.opaque", value, sizeof value), 1);
  EXPECT_EQ(value[0], 'y');
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
