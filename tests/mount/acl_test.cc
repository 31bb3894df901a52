// POSIX ACLs through a real mount: the kernel enforces them (users granted or
// denied by an ACL, checked as those users), new inodes inherit a default ACL
// without the umask, chmod and the ACL mask stay in step, malformed ACLs are
// refused, ACLs survive a remount, and -o noacl turns them off. The
// setfacl/getfacl/cp -a round trip needs the acl package (scripts/deps.sh
// installs it) and is skipped without it.
//
// Checks as other users need root and run in forked children (as_user.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/mount/as_user.h"
#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

constexpr uid_t kGranted = 65534;  // nobody: the user ACLs name
constexpr uid_t kStranger = 65533;
constexpr gid_t kAclGroup = 12345;
constexpr uint32_t kNoId = UINT32_MAX;
constexpr const char* kAccess = "system.posix_acl_access";
constexpr const char* kDefault = "system.posix_acl_default";

enum Tag : uint16_t {
  kUserObj = 0x01,
  kUser = 0x02,
  kGroupObj = 0x04,
  kGroup = 0x08,
  kMask = 0x10,
  kOther = 0x20
};
struct Entry {
  uint16_t tag, perm;
  uint32_t id;
};

// An ACL in Linux's xattr form (version 2, then {tag, perm, id} entries).
std::string acl_xattr(const std::vector<Entry>& entries) {
  std::string v(4 + 8 * entries.size(), '\0');
  v[0] = 2;
  for (size_t i = 0; i < entries.size(); i++) {
    std::memcpy(v.data() + 4 + 8 * i, &entries[i].tag, 2);
    std::memcpy(v.data() + 6 + 8 * i, &entries[i].perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &entries[i].id, 4);
  }
  return v;
}

// The permissions of the entry with `tag` in the stored ACL; -1 if none.
int stored_perm(const std::string& path, const char* name, uint16_t tag) {
  char buf[4096];
  ssize_t n = getxattr(path.c_str(), name, buf, sizeof buf);
  if (n < 4) return -1;
  for (ssize_t at = 4; at + 8 <= n; at += 8) {
    uint16_t t, perm;
    std::memcpy(&t, buf + at, 2);
    std::memcpy(&perm, buf + at + 2, 2);
    if (t == tag) return perm;
  }
  return -1;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_mode & 07777;
}

// open(O_CREAT) with `mode`, so the umask (or a default ACL) has its say.
bool create(const std::string& path, mode_t mode) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_EXCL, mode);
  if (fd < 0) return false;
  return close(fd) == 0;
}

bool put_file(const std::string& path, mode_t mode) {
  if (!write_file(path, "contents")) return false;
  return chmod(path.c_str(), mode) == 0;
}

int set_acl(const std::string& path, const char* name, const std::vector<Entry>& entries) {
  const std::string v = acl_xattr(entries);
  return setxattr(path.c_str(), name, v.data(), v.size(), 0);
}

bool have_acl_tools() {
  return run_command({"getfacl", "--version"}).exit_code == 0 &&
         run_command({"setfacl", "--version"}).exit_code == 0;
}

class AclMount : public MountTest {
 protected:
  void SetUp() override {
    old_umask_ = umask(022);
    ASSERT_TRUE(fs_.start(64 * kMiB, options()));
  }
  void TearDown() override { umask(old_umask_); }
  virtual std::string options() const { return ""; }
  std::string p(std::string_view rel) const { return fs_.path(rel); }

  mode_t old_umask_ = 022;
};

// Checks as other users: root, and a mount other users may enter.
class AclAsUsers : public AclMount {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root (setuid to other users)";
    AclMount::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(chmod(fs_.mountpoint().c_str(), 0755), 0) << std::strerror(errno);
  }
  std::string options() const override { return "allow_other"; }
  std::string as(uid_t uid, const std::function<void(Checks&)>& body,
                 const std::vector<gid_t>& groups = {}) {
    return run_as(fs_.mountpoint(), uid, gid_t(uid), groups, body);
  }
};

#define EXPECT_CHILD_OK(call)                \
  do {                                       \
    const std::string report_ = (call);      \
    EXPECT_TRUE(report_.empty()) << report_; \
  } while (0)

TEST_F(AclAsUsers, AnAclGrantsOneUserAndTheModeStillDeniesOthers) {
  ASSERT_TRUE(put_file(p("f"), 0600));
  ASSERT_EQ(set_acl(p("f"), kAccess,
                    {{kUserObj, 6, kNoId},
                     {kUser, 4, kGranted},
                     {kGroupObj, 0, kNoId},
                     {kGroup, 6, kAclGroup},
                     {kMask, 6, kNoId},
                     {kOther, 0, kNoId}}),
            0)
      << std::strerror(errno);
  EXPECT_EQ(mode_of(p("f")), 0660u) << "the mask is the group bits";
  ASSERT_EQ(mkdir(p("d").c_str(), 0700), 0);
  ASSERT_TRUE(put_file(p("d/inside"), 0644));
  ASSERT_EQ(set_acl(p("d"), kAccess,
                    {{kUserObj, 7, kNoId},
                     {kUser, 5, kGranted},
                     {kGroupObj, 0, kNoId},
                     {kMask, 5, kNoId},
                     {kOther, 0, kNoId}}),
            0)
      << std::strerror(errno);

  EXPECT_CHILD_OK(as(kGranted, [](Checks& c) {
    CHECK_AS(c, open_result("f", O_RDONLY), "OK");
    CHECK_AS(c, open_result("f", O_WRONLY), "EACCES");
    CHECK_AS(c, open_result("d/inside", O_RDONLY), "OK");
    CHECK_AS(c, open_result("d/new", O_CREAT | O_WRONLY), "EACCES");
  }));
  EXPECT_CHILD_OK(as(kStranger, [](Checks& c) {
    CHECK_AS(c, open_result("f", O_RDONLY), "EACCES");
    CHECK_AS(c, open_result("d/inside", O_RDONLY), "EACCES");
  }));
  // The named group, as a supplementary group.
  EXPECT_CHILD_OK(
      as(kStranger, [](Checks& c) { CHECK_AS(c, open_result("f", O_RDWR), "OK"); }, {kAclGroup}));
  unmount_and_check();
}

// The kernel leaves the umask to pagefs (FUSE_DONT_MASK), which does not apply
// it under a default ACL and does without one.
TEST_F(AclAsUsers, NewInodesInheritTheDefaultAclAndIgnoreTheUmask) {
  ASSERT_EQ(mkdir(p("shared").c_str(), 0755), 0);
  const std::vector<Entry> shared = {{kUserObj, 7, kNoId},
                                     {kUser, 7, kGranted},
                                     {kGroupObj, 5, kNoId},
                                     {kMask, 7, kNoId},
                                     {kOther, 0, kNoId}};
  ASSERT_EQ(set_acl(p("shared"), kDefault, shared), 0) << std::strerror(errno);
  ASSERT_EQ(set_acl(p("shared"), kAccess, shared), 0) << std::strerror(errno);

  umask(077);
  ASSERT_TRUE(create(p("shared/by_root"), 0666)) << std::strerror(errno);
  ASSERT_EQ(mkdir(p("shared/sub").c_str(), 0777), 0);
  ASSERT_TRUE(create(p("plain"), 0666));  // no default ACL: the umask applies
  umask(022);
  EXPECT_EQ(mode_of(p("shared/by_root")), 0660u) << "umask 077 ignored, the ACL masks";
  EXPECT_EQ(mode_of(p("shared/sub")), 0770u);
  EXPECT_EQ(mode_of(p("plain")), 0600u);
  EXPECT_EQ(stored_perm(p("shared/by_root"), kAccess, kUser), 7);
  EXPECT_EQ(stored_perm(p("shared/by_root"), kAccess, kMask), 6);
  EXPECT_EQ(stored_perm(p("shared/sub"), kDefault, kUser), 7)
      << "a new directory takes the default ACL as its own";
  EXPECT_EQ(getxattr(p("plain").c_str(), kAccess, nullptr, 0), -1);
  EXPECT_EQ(errno, ENODATA);

  EXPECT_CHILD_OK(as(kGranted, [](Checks& c) {
    CHECK_AS(c, open_result("shared/by_root", O_RDWR), "OK");
    CHECK_AS(c, open_result("shared/sub/by_user", O_CREAT | O_WRONLY, 0644), "OK");
  }));
  EXPECT_CHILD_OK(as(kStranger, [](Checks& c) {
    CHECK_AS(c, open_result("shared/by_root", O_RDONLY), "EACCES");
  }));
  EXPECT_EQ(mode_of(p("shared/sub/by_user")), 0640u);
  unmount_and_check();
}

TEST_F(AclAsUsers, ChmodMovesTheMaskAndWithItWhatNamedUsersMayDo) {
  ASSERT_TRUE(put_file(p("f"), 0600));
  ASSERT_EQ(set_acl(p("f"), kAccess,
                    {{kUserObj, 6, kNoId},
                     {kUser, 6, kGranted},
                     {kGroupObj, 4, kNoId},
                     {kMask, 6, kNoId},
                     {kOther, 0, kNoId}}),
            0)
      << std::strerror(errno);
  EXPECT_CHILD_OK(as(kGranted, [](Checks& c) { CHECK_AS(c, open_result("f", O_WRONLY), "OK"); }));

  ASSERT_EQ(chmod(p("f").c_str(), 0640), 0);
  EXPECT_EQ(stored_perm(p("f"), kAccess, kMask), 4);
  EXPECT_EQ(stored_perm(p("f"), kAccess, kUser), 6) << "kept, but masked";
  EXPECT_EQ(stored_perm(p("f"), kAccess, kGroupObj), 4);
  EXPECT_CHILD_OK(as(kGranted, [](Checks& c) {
    CHECK_AS(c, open_result("f", O_WRONLY), "EACCES");
    CHECK_AS(c, open_result("f", O_RDONLY), "OK");
  }));

  ASSERT_EQ(chmod(p("f").c_str(), 0664), 0);
  EXPECT_EQ(stored_perm(p("f"), kAccess, kMask), 6);
  EXPECT_EQ(stored_perm(p("f"), kAccess, kOther), 4);
  EXPECT_CHILD_OK(as(kGranted, [](Checks& c) { CHECK_AS(c, open_result("f", O_WRONLY), "OK"); }));

  ASSERT_TRUE(fs_.remount("allow_other"));
  EXPECT_EQ(mode_of(p("f")), 0664u);
  EXPECT_EQ(stored_perm(p("f"), kAccess, kMask), 6);
  unmount_and_check();
}

TEST_F(AclMount, SettingAnAccessAclSetsTheModeAndAMinimalOneIsNotKept) {
  ASSERT_TRUE(put_file(p("f"), 0600));
  ASSERT_EQ(set_acl(p("f"), kAccess,
                    {{kUserObj, 7, kNoId},
                     {kUser, 5, 4242},
                     {kGroupObj, 4, kNoId},
                     {kMask, 5, kNoId},
                     {kOther, 1, kNoId}}),
            0)
      << std::strerror(errno);
  EXPECT_EQ(mode_of(p("f")), 0751u);
  ASSERT_EQ(
      set_acl(p("f"), kAccess, {{kUserObj, 6, kNoId}, {kGroupObj, 4, kNoId}, {kOther, 0, kNoId}}),
      0)
      << std::strerror(errno);
  EXPECT_EQ(mode_of(p("f")), 0640u);
  EXPECT_EQ(getxattr(p("f").c_str(), kAccess, nullptr, 0), -1)
      << "an ACL the mode says is not stored";
  EXPECT_EQ(errno, ENODATA);
  unmount_and_check();
}

TEST_F(AclMount, MalformedAclsAreRefusedWithEinval) {
  ASSERT_TRUE(put_file(p("f"), 0644));
  ASSERT_EQ(mkdir(p("d").c_str(), 0755), 0);
  const std::vector<std::string> bad = {
      std::string("\2\0\0\0\1\0\7", 7),                       // not a whole entry
      acl_xattr({{kUserObj, 7, kNoId}, {kOther, 0, kNoId}}),  // no owning group
      acl_xattr({{kUserObj, 7, kNoId},
                 {kUser, 7, 1},
                 {kGroupObj, 5, kNoId},
                 {kOther, 0, kNoId}}),  // a named user without a mask
  };
  for (const std::string& v : bad) {
    for (const char* name : {kAccess, kDefault}) {
      const std::string target = std::string(name) == kAccess ? "f" : "d";
      EXPECT_EQ(setxattr(p(target).c_str(), name, v.data(), v.size(), 0), -1) << name;
      EXPECT_EQ(errno, EINVAL) << name;
    }
  }
  EXPECT_EQ(mode_of(p("f")), 0644u);
  unmount_and_check();
}

TEST_F(AclMount, SetfaclGetfaclAndCpKeepAcls) {
  if (!have_acl_tools()) GTEST_SKIP() << "setfacl/getfacl missing (apt-get install acl)";
  ASSERT_TRUE(put_file(p("f"), 0640));
  ASSERT_EQ(mkdir(p("d").c_str(), 0750), 0);
  CommandResult set = run_command({"setfacl", "-m", "u:4242:rw,g:4343:r", p("f")});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  set = run_command({"setfacl", "-m", "d:u:4242:rwx,d:o::-,u:4242:rx", p("d")});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  const std::string want_f =
      "user::rw-\nuser:4242:rw-\ngroup::r--\ngroup:4343:r--\nmask::rw-\nother::---\n\n";
  auto getfacl = [](const std::string& path) {
    CommandResult r = run_command({"getfacl", "--omit-header", "--numeric", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  EXPECT_EQ(getfacl(p("f")), want_f);
  const std::string want_d = getfacl(p("d"));
  EXPECT_NE(want_d.find("default:user:4242:rwx"), std::string::npos) << want_d;

  CommandResult cp = run_command({"cp", "-a", p("f"), p("f.copy")});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  cp = run_command({"cp", "-a", p("d"), p("d.copy")});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  EXPECT_EQ(getfacl(p("f.copy")), want_f);
  EXPECT_EQ(getfacl(p("d.copy")), want_d);
  ASSERT_TRUE(write_file(p("d/new"), "x"));
  EXPECT_NE(getfacl(p("d/new")).find("user:4242:rwx"), std::string::npos) << "inherited";

  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(getfacl(p("f")), want_f);
  EXPECT_EQ(getfacl(p("d.copy")), want_d);
  CommandResult strip = run_command({"setfacl", "-b", p("f")});
  ASSERT_EQ(strip.exit_code, 0) << strip.err;
  EXPECT_EQ(getxattr(p("f").c_str(), kAccess, nullptr, 0), -1);
  EXPECT_EQ(mode_of(p("f")), 0640u) << "setfacl -b keeps the owning group's entry";
  unmount_and_check();
}

class NoAclMount : public AclMount {
 protected:
  std::string options() const override { return "noacl"; }
};

TEST_F(NoAclMount, AclsAreRefusedAndTheUmaskApplies) {
  ASSERT_TRUE(put_file(p("f"), 0644));
  EXPECT_EQ(
      set_acl(p("f"), kAccess, {{kUserObj, 6, kNoId}, {kGroupObj, 4, kNoId}, {kOther, 0, kNoId}}),
      -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ASSERT_TRUE(create(p("g"), 0666));
  EXPECT_EQ(mode_of(p("g")), 0644u);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
