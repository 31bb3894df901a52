// POSIX conformance through a real mount: the permission model (the mount
// uses default_permissions) checked as unprivileged users, sticky and setgid
// directories, ownership of new files, clearing of setuid/setgid.
#include "tests/mount/posix_helpers.h"

namespace pagefs::test {
namespace {

TEST_F(PosixPerm, UnprivilegedUserIsHeldToModeBits) {
  ASSERT_EQ(mkdir(p("d755").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("d755/x")));
  ASSERT_EQ(mkdir(p("d755/sub").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("secret"), "secret", 0600));
  ASSERT_TRUE(make_file(p("rootfile"), "root", 0644));
  ASSERT_EQ(setxattr(p("rootfile").c_str(), "user.u", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(setxattr(p("rootfile").c_str(), "trusted.t", "1", 1, 0), 0) << std::strerror(errno);
  // Readable but not searchable by others; searchable by nobody (owner 0600).
  ASSERT_EQ(mkdir(p("noexec").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("noexec/f")));
  ASSERT_EQ(chmod(p("noexec").c_str(), 0644), 0);
  ASSERT_EQ(mkdir(p("noexec2").c_str(), 0755), 0);
  ASSERT_TRUE(make_file(p("noexec2/f")));
  ASSERT_EQ(chown(p("noexec2").c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(p("noexec2").c_str(), 0600), 0);
  ASSERT_EQ(mkdir(p("userdir").c_str(), 0755), 0);
  ASSERT_EQ(chown(p("userdir").c_str(), 65534, 65534), 0);
  ASSERT_TRUE(make_file(p("userdir/grpfile")));
  ASSERT_EQ(chown(p("userdir/grpfile").c_str(), 65534, 0), 0);

  EXPECT_CHILD_OK(as(65534, 65534, [](Checks& c) {
    // No write permission on a root 0755 directory.
    CK(c, open_err("d755/new", O_CREAT | O_WRONLY), "EACCES");
    CK(c, E(mkdir("d755/newdir", 0755)), "EACCES");
    CK(c, E(symlink("x", "d755/sl")), "EACCES");
    CK(c, E(mkfifo("d755/fifo", 0644)), "EACCES");
    CK(c, E(unlink("d755/x")), "EACCES");
    CK(c, E(rmdir("d755/sub")), "EACCES");
    CK(c, E(rename("d755/x", "d755/y")), "EACCES");
    // Files of root.
    CK(c, open_err("secret", O_RDONLY), "EACCES");
    CK(c, open_err("rootfile", O_WRONLY), "EACCES");
    CK(c, open_err("rootfile", O_RDONLY), "OK");
    CK(c, E(access("rootfile", W_OK)), "EACCES");
    CK(c, E(access("rootfile", R_OK)), "OK");
    CK(c, E(truncate("rootfile", 0)), "EACCES");
    CK(c, E(chmod("rootfile", 0666)), "EPERM");
    CK(c, E(chown("rootfile", 65534, 65534)), "EPERM");
    CK(c, E(chown("rootfile", uid_t(-1), 65534)), "EPERM");
    const timespec explicit_times[2] = {{1000, 0}, {2000, 0}};
    CK(c, E(utimensat(AT_FDCWD, "rootfile", explicit_times, 0)), "EPERM");
    CK(c, E(utimensat(AT_FDCWD, "rootfile", nullptr, 0)), "EACCES");
    CK(c, E(setxattr("rootfile", "user.v", "1", 1, 0)), "EACCES");
    CK(c, E(setxattr("rootfile", "trusted.v", "1", 1, 0)), "EPERM");
    char buf[256];
    CK(c, E(getxattr("rootfile", "user.u", buf, sizeof buf)), "OK");
    // ext4 hides trusted.* from callers without CAP_SYS_ADMIN.
    ssize_t n = listxattr("rootfile", buf, sizeof buf);
    std::string names = n > 0 ? std::string(buf, size_t(n)) : "";
    CK_TRUE(c, names.find("user.u") != std::string::npos, "listxattr shows user.u");
    CK_TRUE(c, names.find("trusted.t") == std::string::npos,
            "listxattr as non-root hides trusted.t (ext4 does)");
    // Search permission.
    struct stat st;
    CK(c, E(stat("noexec/f", &st)), "EACCES");
    CK(c, E(stat("noexec2/f", &st)), "EACCES");
    CK(c, open_err("noexec/f", O_RDONLY), "EACCES");
    CK(c, E(chdir("noexec")), "EACCES");
    CK(c, E(chdir("noexec2")), "EACCES");
    // Read permission without search: the names can be listed.
    CK(c, open_err("noexec", O_RDONLY | O_DIRECTORY), "OK");
    CK(c, open_err("noexec2", O_RDONLY | O_DIRECTORY), "OK");
    // Own files.
    CK(c, open_err("userdir/own", O_CREAT | O_EXCL | O_WRONLY, 0644), "OK");
    CK(c, E(stat("userdir/own", &st)), "OK");
    CK(c, std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid), "65534:65534");
    CK(c, E(chmod("userdir/own", 0600)), "OK");
    stat("userdir/own", &st);
    CK(c, mode_str(st.st_mode), "0600");
    CK(c, E(chown("userdir/own", 0, uid_t(-1))), "EPERM");
    CK(c, E(chown("userdir/own", uid_t(-1), 0)), "EPERM");
    CK(c, E(chown("userdir/own", 65534, 65534)), "OK");
    CK(c, E(utimensat(AT_FDCWD, "userdir/own", explicit_times, 0)), "OK");
    stat("userdir/own", &st);
    CK(c, std::to_string(st.st_mtim.tv_sec), "2000");
    CK(c, E(chmod("userdir/own", 0400)), "OK");
    CK(c, open_err("userdir/own", O_WRONLY), "EACCES");
    CK(c, open_err("userdir/own", O_RDONLY), "OK");
    // chmod g+s on an own file whose group is not ours: S_ISGID silently dropped.
    CK(c, E(chmod("userdir/grpfile", 02755)), "OK");
    stat("userdir/grpfile", &st);
    CK(c, mode_str(st.st_mode), "0755");
    // Unlink in own directory.
    CK(c, E(unlink("userdir/own")), "OK");
  }));

  struct stat st = lst(p("rootfile"));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, 0u);
  std::vector<std::string> names = list_dir(p("d755"));
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"sub", "x"}));
  unmount_and_check();
}

TEST_F(PosixPerm, StickyDirectoryProtectsOthersEntries) {
  ASSERT_EQ(mkdir(p("sticky").c_str(), 0777), 0);
  ASSERT_EQ(chmod(p("sticky").c_str(), 01777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("sticky/a", O_CREAT | O_WRONLY, 0644), "OK");
    CK(c, E(mkdir("sticky/adir", 0755)), "OK");
  }));
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    CK(c, open_err("sticky/b", O_CREAT | O_WRONLY, 0666), "OK");
    CK(c, open_err("sticky/b3", O_CREAT | O_WRONLY, 0666), "OK");
    CK(c, E(mkdir("sticky/bdir", 0777)), "OK");
  }));
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(unlink("sticky/b")), "EPERM");
    CK(c, E(rename("sticky/b", "sticky/b2")), "EPERM");
    CK(c, E(rename("sticky/a", "sticky/b")), "EPERM");
    CK(c, E(rmdir("sticky/bdir")), "EPERM");
    CK(c, E(rename("sticky/bdir", "sticky/bdir2")), "EPERM");
    CK(c, E(rename("sticky/a", "sticky/a2")), "OK");
    CK(c, E(unlink("sticky/a2")), "OK");
    CK(c, E(rmdir("sticky/adir")), "OK");
  }));
  EXPECT_EQ(lst(p("sticky/b")).st_uid, 1001u);
  EXPECT_EQ(lst(p("sticky/bdir")).st_uid, 1001u);
  // The directory's owner may remove anything in it.
  ASSERT_EQ(chown(p("sticky").c_str(), 1002, 1002), 0);
  EXPECT_EQ(lst(p("sticky")).st_mode & 07777, 01777u);
  EXPECT_CHILD_OK(as(1002, 1002, [](Checks& c) { CK(c, E(unlink("sticky/b")), "OK"); }));
  // Root may remove anything.
  EXPECT_EQ(unlink(p("sticky/b3").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(rmdir(p("sticky/bdir").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(list_dir(p("sticky")), std::vector<std::string>{});
  unmount_and_check();
}

TEST_F(PosixPerm, SetgidDirectoryGivesItsGroup) {
  ASSERT_EQ(mkdir(p("sg").c_str(), 0777), 0);
  ASSERT_EQ(chown(p("sg").c_str(), 1000, 2000), 0);
  ASSERT_EQ(chmod(p("sg").c_str(), 02777), 0);
  ASSERT_EQ(lst(p("sg")).st_mode & 07777, 02777u);

  ASSERT_TRUE(make_file(p("sg/rootfile")));
  struct stat st = lst(p("sg/rootfile"));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 2000u);
  ASSERT_EQ(mkdir(p("sg/sub").c_str(), 0755), 0);
  st = lst(p("sg/sub"));
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  ASSERT_EQ(mkdir(p("sg/sub/deeper").c_str(), 0700), 0);
  st = lst(p("sg/sub/deeper"));
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 02700u);
  ASSERT_EQ(symlink("rootfile", p("sg/link").c_str()), 0);
  EXPECT_EQ(lst(p("sg/link")).st_gid, 2000u);
  ASSERT_EQ(mkfifo(p("sg/fifo").c_str(), 0644), 0);
  EXPECT_EQ(lst(p("sg/fifo")).st_gid, 2000u);

  // Not a member of 2000.
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    struct stat s;
    CK(c, open_err("sg/u1", O_CREAT | O_WRONLY, 0644), "OK");
    stat("sg/u1", &s);
    CK(c, std::to_string(s.st_uid) + ":" + std::to_string(s.st_gid), "1001:2000");
    // S_ISGID requested by a non-member of the group is stripped (VFS).
    CK(c, open_err("sg/u2", O_CREAT | O_WRONLY, 02755), "OK");
    stat("sg/u2", &s);
    CK(c, mode_str(s.st_mode), "0755");
    CK(c, E(mkdir("sg/udir", 0755)), "OK");
    stat("sg/udir", &s);
    CK(c, mode_str(s.st_mode) + " gid " + std::to_string(s.st_gid), "02755 gid 2000");
  }));
  // A member keeps S_ISGID it asks for.
  EXPECT_CHILD_OK(as(1000, 1000,
                     [](Checks& c) {
                       struct stat s;
                       CK(c, open_err("sg/m", O_CREAT | O_WRONLY, 02755), "OK");
                       stat("sg/m", &s);
                       CK(c, mode_str(s.st_mode) + " gid " + std::to_string(s.st_gid),
                          "02755 gid 2000");
                     },
                     {2000}));

  ASSERT_TRUE(fs_.remount());
  st = lst(p("sg/udir"));
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(lst(p("sg/u1")).st_gid, 2000u);
  unmount_and_check();
}

TEST_F(PosixPerm, NewObjectsBelongToTheCaller) {
  ASSERT_EQ(mkdir(p("open").c_str(), 0777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("open/f", O_CREAT | O_EXCL | O_WRONLY, 0640), "OK");
    CK(c, E(mkdir("open/d", 0750)), "OK");
    CK(c, E(symlink("f", "open/l")), "OK");
    CK(c, E(mkfifo("open/p", 0600)), "OK");
    CK(c, E(mknod("open/r", S_IFREG | 0600, 0)), "OK");
    CK(c, E(link("open/f", "open/f2")), "OK");
    CK(c, E(mknod("open/chr", S_IFCHR | 0600, makedev(1, 3))), "EPERM");
    // The umask applies.
    umask(027);
    CK(c, open_err("open/masked", O_CREAT | O_EXCL | O_WRONLY, 0666), "OK");
    CK(c, E(mkdir("open/maskeddir", 0777)), "OK");
    struct stat s;
    stat("open/masked", &s);
    CK(c, mode_str(s.st_mode), "0640");
    stat("open/maskeddir", &s);
    CK(c, mode_str(s.st_mode), "0750");
    umask(0);
    // Moving a directory to another parent needs write permission on it (its "..").
    CK(c, E(mkdir("open/ro", 0555)), "OK");
    CK(c, E(rename("open/ro", "open/d/ro")), "EACCES");
    CK(c, E(rename("open/ro", "open/ro2")), "OK");  // same parent: allowed
    // lchown/lchmod on one's own symlink.
    CK(c, E(lchown("open/l", 1000, 1000)), "OK");
  }));
  // Root changes the owner of the symlink itself, not of its target.
  ASSERT_EQ(lchown(p("open/l").c_str(), 123, 456), 0) << std::strerror(errno);
  EXPECT_EQ(lst(p("open/l")).st_uid, 123u);
  EXPECT_EQ(lst(p("open/l")).st_gid, 456u);
  EXPECT_EQ(lst(p("open/f")).st_uid, 1000u);
  ASSERT_EQ(lchown(p("open/l").c_str(), 1000, 1000), 0);
  for (const char* name : {"open/f", "open/d", "open/l", "open/p", "open/r"}) {
    struct stat st = lst(p(name));
    EXPECT_EQ(st.st_uid, 1000u) << name;
    EXPECT_EQ(st.st_gid, 1000u) << name;
  }
  EXPECT_EQ(lst(p("open/f")).st_mode & 07777, 0640u);
  EXPECT_EQ(lst(p("open/d")).st_mode & 07777, 0750u);
  EXPECT_EQ(lst(p("open/f")).st_nlink, 2u);
  ASSERT_TRUE(fs_.remount());
  for (const char* name : {"open/f", "open/d", "open/l", "open/p", "open/r"}) {
    struct stat st = lst(p(name));
    EXPECT_EQ(st.st_uid, 1000u) << name << " after remount";
    EXPECT_EQ(st.st_gid, 1000u) << name << " after remount";
  }
  unmount_and_check();
}

TEST_F(PosixPerm, SetidBitsClearedOnWriteTruncateAndChown) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), "data"));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  ASSERT_EQ(lst(p("w/f")).st_mode & 07777, 06777u);

  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    int fd = open("w/f", O_WRONLY);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "x", 1)), "OK");
    close(fd);
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");  // write by a non-root owner
  }));                                   // write by the owner

  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(truncate("w/f", 1)), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // truncate by the owner

  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, open_err("w/f", O_WRONLY | O_TRUNC), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // open(O_TRUNC) by the owner

  // Another user with write permission (not the owner) writing.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1001, 1001, [](Checks& c) {
    int fd = open("w/f", O_WRONLY | O_APPEND);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "y", 1)), "OK");
    close(fd);
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0777");
  }));  // write by another user

  // Root (CAP_FSETID) writing keeps the bits.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  {
    int fd = open(p("w/f").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "z", 1), 1);
    close(fd);
    EXPECT_EQ(lst(p("w/f")).st_mode & 07777, 06777u) << "root's write must keep the bits";
  }

  // chown by root clears S_ISUID, and S_ISGID when group-executable.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06755), 0);
  ASSERT_EQ(chown(p("w/f").c_str(), 1001, uid_t(-1)), 0);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "0755") << "after root chown of a 06755 file";
  ASSERT_EQ(chmod(p("w/f").c_str(), 06745), 0);
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "02745") << "after root chown of a 06745 file";
  // chown by the owner to its own group clears both.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06755), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, E(chown("w/f", uid_t(-1), 1000)), "OK");
    struct stat s;
    stat("w/f", &s);
    CK(c, mode_str(s.st_mode), "0755");
  }));  // chown by the owner
  // Directories keep S_ISGID on chown.
  ASSERT_EQ(mkdir(p("w/sgdir").c_str(), 0775), 0);
  ASSERT_EQ(chmod(p("w/sgdir").c_str(), 02775), 0);
  ASSERT_EQ(chown(p("w/sgdir").c_str(), 1000, 1000), 0);
  EXPECT_EQ(mode_str(lst(p("w/sgdir")).st_mode), "02775");
  unmount_and_check();
}

// A write that clears setuid/setgid changes the mode the kernel has cached.
TEST_F(PosixPerm, CachedModeLosesTheSetidBitsAWriteClears) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), "data"));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  EXPECT_CHILD_OK(as(1000, 1000, [](Checks& c) {
    CK(c, statx_mode("w/f"), "06777");
    int fd = open("w/f", O_WRONLY);
    CK_TRUE(c, fd >= 0, "open w/f");
    CK(c, E(write(fd, "x", 1)), "OK");
    close(fd);
    CK(c, statx_mode("w/f"), "0777");
  }));
  EXPECT_EQ(statx_mode(p("w/f")), "0777");
  unmount_and_check();
}

// fallocate, punch-hole and zero-range clear setuid, and setgid when the file
// is group-executable or the caller is not in its group (Linux's rule since
// 6.2: setattr_should_drop_sgid), unless the caller is root.
TEST_F(PosixPerm, FallocateClearsSetgidForCallersOutsideTheGroup) {
  ASSERT_EQ(mkdir(p("w").c_str(), 0777), 0);
  ASSERT_TRUE(make_file(p("w/f"), std::string(8192, 'd')));
  ASSERT_EQ(chown(p("w/f").c_str(), 1000, 1000), 0);
  struct Case {
    mode_t mode;
    int falloc_mode;
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
    const char* expected;
  };
  const Case cases[] = {
      {02666, 0, 1001, 1001, {}, "0666"},  // not in the group
      {06666, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1001, 1001, {}, "0666"},
      {02666, FALLOC_FL_ZERO_RANGE, 1001, 1001, {}, "0666"},
      {02666, 0, 1001, 1001, {1000}, "02666"},  // a member keeps it
      {02676, 0, 1001, 1001, {1000}, "0676"},   // unless group-executable
      {06666, 0, 1000, 1000, {}, "02666"},      // the owner, in the group
  };
  for (const Case& k : cases) {
    ASSERT_EQ(chmod(p("w/f").c_str(), k.mode), 0);
    std::string report = as(
        k.uid, k.gid,
        [&k](Checks& c) {
          CK(c, statx_mode("w/f"), mode_str(k.mode));
          int fd = open("w/f", O_RDWR);
          CK_TRUE(c, fd >= 0, "open w/f");
          CK(c, E(fallocate(fd, k.falloc_mode, 0, 4096)), "OK");
          close(fd);
          CK(c, statx_mode("w/f"), k.expected);
          struct stat st {};
          stat("w/f", &st);
          CK(c, mode_str(st.st_mode), k.expected);
        },
        k.groups);
    EXPECT_TRUE(report.empty()) << "mode " << mode_str(k.mode) << ", fallocate mode "
                                << k.falloc_mode << ", uid " << k.uid << ":\n"
                                << report;
  }
  // Root keeps both.
  ASSERT_EQ(chmod(p("w/f").c_str(), 06777), 0);
  int fd = open(p("w/f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fallocate(fd, 0, 0, 4096), 0) << std::strerror(errno);
  close(fd);
  EXPECT_EQ(mode_str(lst(p("w/f")).st_mode), "06777");
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
