// Fault injection per operation: every changing operation is run again and
// again on the same populated image, with ENOSPC injected at each of its
// allocations in turn, then EIO at each of its device reads, then EIO at each
// of its device writes. After each run:
//   - a call that failed left every tree item and the free-space count as
//     they were, or the filesystem turned read-only and said why in the log;
//   - where it stayed writable, the next operations succeed;
//   - after unmount, fsck (as fsck -n sees the device) is clean.
// The image is remounted before each run, so the operation finds a cold cache
// and its reads reach the device; the cache is small, so eviction and commits
// happen inside operations too.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "engine/posix_acl.h"
#include "tests/engine/crash_harness.h"

namespace pagefs {
namespace {

using test::crash::clear_log;
using test::crash::copy_device;
using test::crash::keep_log_line;
using test::crash::log_tail;
using test::crash::run_fsck_overlay;

constexpr uint64_t kDeviceBytes = 24ull << 20;
constexpr int kMaxSteps = 400;  // faults tried per operation and kind
const Caller kUser{1000, 1000};

enum class Fault { kAllocation, kRead, kWrite };

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kAllocation:
      return "ENOSPC at allocation";
    case Fault::kRead:
      return "EIO at device read";
    case Fault::kWrite:
      return "EIO at device write";
  }
  return "?";
}

// Every tree item, byte for byte, and the free pages: what "nothing changed"
// means for a failed call.
struct Snapshot {
  std::map<std::tuple<uint64_t, uint8_t, uint64_t>, std::string> items;
  uint64_t free_pages = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(FileSystem& fs) {
  FileSystem::Impl& impl = fs.internals_for_testing();
  std::shared_lock lock(impl.mu_);
  Snapshot s;
  Status st = impl.tree_->scan(Key::min(), Key::max(), [&](const Key& k, auto v) {
    s.items[{k.ino, k.kind, k.off}] =
        std::string(reinterpret_cast<const char*>(v.data()), v.size());
    return true;
  });
  EXPECT_TRUE(st.ok());
  s.free_pages = impl.space_->free_pages_after_commit();
  return s;
}

std::string describe_difference(const Snapshot& got, const Snapshot& want) {
  std::string out;
  for (const auto& [k, v] : want.items) {
    auto it = got.items.find(k);
    if (it == got.items.end() || it->second != v) {
      out += "  item (" + std::to_string(std::get<0>(k)) + ", " + std::to_string(std::get<1>(k)) +
             ", " + std::to_string(std::get<2>(k)) + ") " +
             (it == got.items.end() ? "missing" : "changed") + "\n";
    }
  }
  for (const auto& [k, v] : got.items) {
    if (!want.items.count(k)) {
      out += "  item (" + std::to_string(std::get<0>(k)) + ", " + std::to_string(std::get<1>(k)) +
             ", " + std::to_string(std::get<2>(k)) + ") added\n";
    }
  }
  if (got.free_pages != want.free_pages) {
    out += "  free pages " + std::to_string(got.free_pages) + ", were " +
           std::to_string(want.free_pages) + "\n";
  }
  return out;
}

// The populated image's inodes, looked up once.
struct Names {
  InodeNo d, e, s, a, b, big, many, acl;
  InodeNo tmp;  // a tmpfile, for the cases that need one
};

InodeNo ino_of(FileSystem& fs, InodeNo dir, const std::string& name) {
  auto a = fs.lookup(dir, name);
  return InodeNo{a.ok() ? a->ino : 0};
}

Names names_of(FileSystem& fs) {
  Names n;
  n.d = ino_of(fs, kRootInode, "d");
  n.e = ino_of(fs, kRootInode, "e");
  n.many = ino_of(fs, kRootInode, "many");
  n.s = ino_of(fs, n.d, "s");
  n.a = ino_of(fs, n.d, "a");
  n.b = ino_of(fs, n.d, "b");
  n.big = ino_of(fs, kRootInode, "big");
  n.acl = ino_of(fs, kRootInode, "acl");
  return n;
}

// An ACL in xattr form: u::rwx, `users` named users r-x, g::r-x, m::rwx, o::r--.
std::string acl_value(uint32_t users) {
  std::vector<uint16_t> tags = {0x01};
  tags.insert(tags.end(), users, 0x02);
  tags.insert(tags.end(), {0x04, 0x10, 0x20});
  std::string v(4 + 8 * tags.size(), '\0');
  v[0] = 2;
  for (size_t i = 0; i < tags.size(); i++) {
    const uint16_t perm = tags[i] == 0x20 ? 4 : tags[i] == 0x02 || tags[i] == 0x04 ? 5 : 7;
    const uint32_t id = tags[i] == 0x02 ? 5000 + uint32_t(i) : UINT32_MAX;
    std::memcpy(v.data() + 4 + 8 * i, &tags[i], 2);
    std::memcpy(v.data() + 6 + 8 * i, &perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &id, 4);
  }
  return v;
}

std::string bytes(size_t len, char seed) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; i++) s[i] = char(seed + i * 7 + i / 4096);
  return s;
}

// /d/{a,b,s/c}, /d/a2 a link to /d/a, /e empty, /big of 300 KiB, /l a
// symlink, /many with 400 files (so the tree has several levels), and xattrs
// (on /d/a and /big some in data pages); /d/b has an access ACL, and /acl a
// default ACL of 200 entries (in data pages) and one of its own.
// A crowded image also has 300 more names in /d, 40 xattrs on /d/a and every
// leaf filled in an order that leaves some of them full.
std::unique_ptr<MemDevice> make_image(bool crowded) {
  auto dev = std::make_unique<MemDevice>(kDeviceBytes);
  std::string msg;
  EXPECT_TRUE(format_device(*dev, FormatOptions{}, &msg).ok()) << msg;
  auto mounted = FileSystem::mount(std::make_unique<FaultDevice>(*dev, 1),
                                   MountOptions{.cache_bytes = 8 << 20}, &msg);
  EXPECT_TRUE(mounted.ok()) << msg;
  FileSystem& fs = **mounted;
  InodeNo d{fs.mkdir(kRootInode, "d", 0755, kUser)->ino};
  (void)fs.mkdir(kRootInode, "e", 0755, kUser);
  InodeNo s{fs.mkdir(d, "s", 0755, kUser)->ino};
  InodeNo a{fs.mknod(d, "a", S_IFREG | 0644, 0, kUser)->ino};
  (void)fs.mknod(d, "b", S_IFREG | 0644, 0, kUser);
  (void)fs.mknod(s, "c", S_IFREG | 0644, 0, kUser);
  EXPECT_TRUE(fs.link(a, d, "a2").ok());
  std::string data = bytes(20000, 'a');
  EXPECT_TRUE(fs.write(a, 0, data.data(), data.size()).ok());
  EXPECT_TRUE(fs.setxattr(a, "user.x", "value", 0).ok());
  EXPECT_TRUE(fs.setxattr(a, "user.big", bytes(30000, 'X'), 0).ok());  // in data pages
  InodeNo big{fs.mknod(kRootInode, "big", S_IFREG | 0600, 0, kUser)->ino};
  data = bytes(300 << 10, 'B');
  EXPECT_TRUE(fs.write(big, 0, data.data(), data.size()).ok());
  EXPECT_TRUE(fs.setxattr(big, "user.big", bytes(65536, 'Y'), 0).ok());
  EXPECT_TRUE(fs.symlink(kRootInode, "l", "d/a", kUser).ok());
  EXPECT_TRUE(fs.setxattr(ino_of(fs, d, "b"), kAclAccessXattr, acl_value(2), 0).ok());
  InodeNo acl{fs.mkdir(kRootInode, "acl", 0755, kUser)->ino};
  EXPECT_TRUE(fs.setxattr(acl, kAclDefaultXattr, acl_value(200), 0).ok());
  EXPECT_TRUE(fs.setxattr(acl, kAclAccessXattr, acl_value(1), 0).ok());
  InodeNo many{fs.mkdir(kRootInode, "many", 0755, kUser)->ino};
  for (int i = 0; i < 400; i++) {
    EXPECT_TRUE(fs.mknod(many, "file-" + std::to_string(i), S_IFREG | 0644, 0, kUser).ok());
  }
  for (int i = 0; crowded && i < 300; i++) {
    EXPECT_TRUE(
        fs.mknod(d, "name-" + std::to_string(i * 7919 % 300), S_IFREG | 0644, 0, kUser).ok());
  }
  for (int i = 0; crowded && i < 40; i++) {
    EXPECT_TRUE(fs.setxattr(a, "user.attr" + std::to_string(i), std::string(60, 'x'), 0).ok());
  }
  EXPECT_TRUE(fs.unmount().ok());
  return dev;
}

// How an operation meets its image: the cache it mounts with, and whether
// other changes wait in the running transaction, so that the operation's
// commit point commits them and a small cache evicts in the middle of it.
struct Setting {
  const char* name;
  bool crowded;
  uint64_t cache_bytes;
  bool busy_transaction;
};

const Setting kSettings[] = {
    {"roomy", false, 1 << 20, false},
    {"crowded", true, 256 << 10, true},
};

const MemDevice& image_of(const Setting& setting) {
  static std::unique_ptr<MemDevice> images[2] = {make_image(false), make_image(true)};
  return *images[setting.crowded ? 1 : 0];
}

struct OpCase {
  const char* name;
  // Returns the call's status; a write returns ok with a short count as
  // `*short_count` when it kept only some chunks.
  std::function<Status(FileSystem&, const Names&)> run;
};

Status as_status(const Result<size_t>& r) {
  return r.ok() ? ok_status() : Status(Err{r.error()});
}

template <class T>
Status as_status(const Result<T>& r) {
  return r.ok() ? ok_status() : Status(Err{r.error()});
}

Status write_all(FileSystem& fs, InodeNo ino, uint64_t off, const std::string& data) {
  auto n = fs.write(ino, off, data.data(), data.size());
  if (!n.ok()) return Err{n.error()};
  return ok_status();
}

Status truncate(FileSystem& fs, InodeNo ino, uint64_t size) {
  SetAttr c;
  c.set_size = true;
  c.size = size;
  return as_status(fs.setattr(ino, c));
}

std::vector<OpCase> op_cases() {
  return {
      {"create",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.mknod(n.d, "new", S_IFREG | 0644, 0, kUser));
       }},
      {"create in a big directory",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.mknod(n.many, "file-new", S_IFREG | 0644, 0, kUser));
       }},
      {"mkdir", [](FileSystem& fs,
                   const Names& n) { return as_status(fs.mkdir(n.d, "newdir", 0755, kUser)); }},
      {"mknod fifo",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.mknod(n.d, "fifo", S_IFIFO | 0644, 0, kUser));
       }},
      {"symlink",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.symlink(n.d, "sl", std::string(3000, 't'), kUser));
       }},
      {"link", [](FileSystem& fs, const Names& n) { return as_status(fs.link(n.a, n.e, "a3")); }},
      {"tmpfile",
       [](FileSystem& fs, const Names& n) { return as_status(fs.tmpfile(n.d, 0600, kUser)); }},
      {"link a tmpfile",
       [](FileSystem& fs, const Names& n) { return as_status(fs.link(n.tmp, n.e, "named")); }},
      {"unlink of a linked file",
       [](FileSystem& fs, const Names& n) { return fs.unlink(n.d, "a", kUser); }},
      {"unlink to an orphan",
       [](FileSystem& fs, const Names& n) { return fs.unlink(n.d, "b", kUser); }},
      {"unlink in a big directory",
       [](FileSystem& fs, const Names& n) { return fs.unlink(n.many, "file-17", kUser); }},
      {"rmdir", [](FileSystem& fs, const Names&) { return fs.rmdir(kRootInode, "e", kUser); }},
      {"rename across directories",
       [](FileSystem& fs, const Names& n) { return fs.rename(n.d, "a", n.e, "x", 0, kUser); }},
      {"rename over a file",
       [](FileSystem& fs, const Names& n) { return fs.rename(n.d, "b", n.d, "a", 0, kUser); }},
      {"rename noreplace",
       [](FileSystem& fs, const Names& n) {
         return fs.rename(n.d, "b", n.d, "zz", RENAME_NOREPLACE, kUser);
       }},
      {"rename exchange",
       [](FileSystem& fs, const Names& n) {
         return fs.rename(n.d, "a", n.d, "s", RENAME_EXCHANGE, kUser);
       }},
      {"rename a directory",
       [](FileSystem& fs, const Names& n) { return fs.rename(n.d, "s", n.e, "s2", 0, kUser); }},
      {"rename whiteout",
       [](FileSystem& fs, const Names& n) {
         return fs.rename(n.d, "b", n.e, "wb", RENAME_WHITEOUT, kUser);
       }},
      {"rename whiteout over a file",
       [](FileSystem& fs, const Names& n) {
         return fs.rename(n.d, "b", n.d, "a", RENAME_WHITEOUT, kUser);
       }},
      {"rename a directory with a whiteout",
       [](FileSystem& fs, const Names& n) {
         return fs.rename(n.d, "s", n.many, "s2", RENAME_WHITEOUT, kUser);
       }},
      {"write over live data",
       [](FileSystem& fs, const Names& n) { return write_all(fs, n.a, 100, bytes(9000, 'w')); }},
      {"write of many chunks",
       [](FileSystem& fs, const Names& n) {
         return write_all(fs, n.big, 200 << 10, bytes(400 << 10, 'W'));
       }},
      {"truncate shorter",
       [](FileSystem& fs, const Names& n) { return truncate(fs, n.big, 10000); }},
      {"truncate longer",
       [](FileSystem& fs, const Names& n) { return truncate(fs, n.b, 1 << 20); }},
      {"fallocate",
       [](FileSystem& fs, const Names& n) { return fs.fallocate(n.b, 0, 0, 600 << 10); }},
      {"fallocate keep size",
       [](FileSystem& fs, const Names& n) {
         return fs.fallocate(n.big, FALLOC_FL_KEEP_SIZE, 250 << 10, 300 << 10);
       }},
      {"punch hole",
       [](FileSystem& fs, const Names& n) {
         return fs.fallocate(n.big, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 200000);
       }},
      {"zero range",
       [](FileSystem& fs, const Names& n) {
         return fs.fallocate(n.big, FALLOC_FL_ZERO_RANGE, 3000, 250000);
       }},
      {"copy_file_range",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.copy_file_range(n.big, 0, n.b, 0, 300 << 10));
       }},
      {"chmod",
       [](FileSystem& fs, const Names& n) {
         SetAttr c;
         c.set_mode = true;
         c.mode = 0600;
         return as_status(fs.setattr(n.a, c));
       }},
      {"setxattr new",
       [](FileSystem& fs, const Names& n) { return fs.setxattr(n.a, "user.new", "abc", 0); }},
      {"setxattr replace",
       [](FileSystem& fs, const Names& n) {
         return fs.setxattr(n.a, "user.x", std::string(700, 'v'), XATTR_REPLACE);
       }},
      {"removexattr", [](FileSystem& fs, const Names& n) { return fs.removexattr(n.a, "user.x"); }},
      {"setxattr of a large value",
       [](FileSystem& fs, const Names& n) {
         return fs.setxattr(n.a, "user.large", bytes(65536, 'L'), XATTR_CREATE);
       }},
      {"setxattr replacing a large value",
       [](FileSystem& fs, const Names& n) {
         return fs.setxattr(n.a, "user.big", bytes(20000, 'R'), XATTR_REPLACE);
       }},
      {"removexattr of a large value",
       [](FileSystem& fs, const Names& n) { return fs.removexattr(n.a, "user.big"); }},
      {"setxattr of an access ACL",
       [](FileSystem& fs, const Names& n) {
         return fs.setxattr(n.a, kAclAccessXattr, acl_value(3), 0, S_ISGID);
       }},
      {"chmod of a file with an access ACL",
       [](FileSystem& fs, const Names& n) {
         SetAttr c;
         c.set_mode = true;
         c.mode = 0604;
         return as_status(fs.setattr(n.b, c));
       }},
      {"create inheriting a default ACL",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.mknod(n.acl, "new", S_IFREG | 0640, 0, kUser));
       }},
      {"mkdir inheriting a default ACL",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.mkdir(n.acl, "newdir", 0750, kUser));
       }},
      {"set attribute flags",
       [](FileSystem& fs, const Names& n) {
         return as_status(fs.set_flags(n.a, kInodeFlagAppend | kInodeFlagNoDump, Caller{}));
       }},
      {"free an unlinked file",
       [](FileSystem& fs, const Names& n) {
         // The unlink is set up by the case; the call under test is the free.
         return fs.release_inode(n.big);
       }},
  };
}

// What a run did, for the verdict and the failure message.
struct Outcome {
  Status status;
  bool injected = false;   // the fault was met
  bool failed_fs = false;  // the filesystem turned read-only
  std::string trouble;     // empty: all good
};

class FaultOpsTest : public ::testing::TestWithParam<std::tuple<int, int>> {
 protected:
  void SetUp() override { set_log_sink(keep_log_line); }
  void TearDown() override { set_log_sink(nullptr); }

  // Mounts a fresh copy of the image, sets the case up, takes the snapshot
  // and empties the cache of clean pages, so the operation's reads reach the
  // device.
  void mount_for(const OpCase& op, Snapshot* before) {
    dev_ = copy_device(image_of(*setting_));
    mount();
    names_ = names_of(*fs_);
    prepare(op);
    if (setting_->busy_transaction) {
      for (int i = 0; i < 400; i += 7) {
        SetAttr c;
        c.set_mode = true;
        c.mode = 0640;
        ASSERT_TRUE(fs_->setattr(ino_of(*fs_, names_.many, "file-" + std::to_string(i)), c).ok());
      }
    }
    *before = snapshot(*fs_);
    fs_->internals_for_testing().pool_->drop_clean();
  }

  // Mounts dev_; `fault_` is the FaultDevice under it.
  void mount() {
    auto fault = std::make_unique<FaultDevice>(*dev_, 7);
    fault_ = fault.get();
    std::string msg;
    auto mounted = FileSystem::mount(
        std::move(fault),
        MountOptions{.cache_bytes = setting_->cache_bytes, .commit_interval_s = 365u * 24 * 3600},
        &msg);
    ASSERT_TRUE(mounted.ok()) << msg;
    fs_ = std::move(mounted).value();
  }

  void prepare(const OpCase& op) {
    if (std::string(op.name) == "free an unlinked file") {
      ASSERT_TRUE(fs_->unlink(kRootInode, "big", kUser).ok());
    }
    if (std::string(op.name) == "link a tmpfile") {
      auto t = fs_->tmpfile(names_.d, 0600, kUser, Hold::kYes);
      ASSERT_TRUE(t.ok());
      names_.tmp = InodeNo{t->ino};
    }
  }

  void arm(Fault kind, int step) {
    FileSystem::Impl& impl = fs_->internals_for_testing();
    injected_before_ = fault_->injected_faults();
    switch (kind) {
      case Fault::kAllocation:
        allocations_before_ = impl.space_->allocation_count();
        impl.space_->fail_allocation(step);
        break;
      case Fault::kRead:
        fault_->fail_read_call(fault_->read_call_count() + step);
        break;
      case Fault::kWrite:
        fault_->fail_write_request(fault_->write_count() + step);
        break;
    }
  }

  bool met(Fault kind, int step) {
    FileSystem::Impl& impl = fs_->internals_for_testing();
    if (kind == Fault::kAllocation) {
      return impl.space_->allocation_count() - allocations_before_ >= uint64_t(step);
    }
    return fault_->injected_faults() > injected_before_;
  }

  void disarm() {
    fs_->internals_for_testing().space_->fail_allocation(0);
    fault_->clear_faults();
  }

  // One run of `op` with the fault at `step`; false once the fault is no
  // longer met (the operation has fewer steps of that kind).
  bool run_once(const OpCase& op, Fault kind, int step, Outcome* run) {
    Snapshot before;
    mount_for(op, &before);
    clear_log();
    arm(kind, step);
    run->status = op.run(*fs_, names_);
    {
      // A commit or checkpoint the call set off may meet the fault after the
      // call returned, and fail the filesystem a moment later: wait for that
      // work, with the fault still armed, and disarm before another starts.
      FileSystem::Impl& impl = fs_->internals_for_testing();
      impl.committer_->wait_submitted();
      std::lock_guard checkpoint(impl.checkpointer_->mutex());
      run->injected = met(kind, step);
      disarm();
    }
    FileSystem::Impl& impl = fs_->internals_for_testing();
    run->failed_fs = impl.failed_;
    if (!run->injected) {
      if (!run->status.ok()) run->trouble = "failed without a fault: " + errno_text(run->status);
      finish(run);
      return false;
    }
    if (!run->status.ok() && !run->failed_fs) {
      Snapshot after = snapshot(*fs_);
      if (after != before) {
        run->trouble += "the failed call (" + errno_text(run->status) + ") changed the tree:\n" +
                        describe_difference(after, before);
      }
    }
    if (!run->failed_fs) check_still_usable(run);
    if (run->failed_fs && log_tail().find("read-only") == std::string::npos) {
      run->trouble += "the filesystem turned read-only without saying so\n";
    }
    finish(run);
    return true;
  }

  // The next operations must work on a filesystem that stayed writable.
  void check_still_usable(Outcome* run) {
    auto f = fs_->mknod(kRootInode, "after", S_IFREG | 0644, 0, kUser);
    Status st = as_status(f);
    if (st.ok()) st = write_all(*fs_, InodeNo{f->ino}, 0, bytes(10000, 'n'));
    if (st.ok()) st = fs_->unlink(kRootInode, "after", kUser);
    if (st.ok()) st = fs_->release_inode(InodeNo{f->ino});
    // A write-back that failed in the background (the fault met it after
    // the call returned) turns the filesystem read-only at the next change.
    if (!st.ok() && fs_->internals_for_testing().failed_) {
      run->failed_fs = true;
      return;
    }
    if (!st.ok()) run->trouble += "the next operations failed: " + errno_text(st) + "\n";
  }

  // Unmounts (a read-only filesystem refuses with EIO) and runs fsck.
  void finish(Outcome* run) {
    Status unmounted = fs_->unmount();
    if (!unmounted.ok() && !run->failed_fs) {
      run->trouble += "unmount failed: " + errno_text(unmounted) + "\n";
    }
    fs_.reset();
    test::crash::FsckOutcome fsck = run_fsck_overlay(*dev_);
    if (fsck.code != 0)
      run->trouble += "fsck exited " + std::to_string(fsck.code) + ":\n" + fsck.text;
  }

  static std::string errno_text(const Status& st) {
    return st.ok() ? "ok" : test::crash::errno_name(st.error());
  }

  std::unique_ptr<MemDevice> dev_;
  FaultDevice* fault_ = nullptr;
  std::unique_ptr<FileSystem> fs_;
  Names names_;
  uint64_t allocations_before_ = 0;
  uint64_t injected_before_ = 0;
  const Setting* setting_ = nullptr;
};

TEST_P(FaultOpsTest, EveryFaultLeavesNothingChangedOrTheFilesystemReadOnly) {
  const OpCase op = op_cases()[std::get<0>(GetParam())];
  setting_ = &kSettings[std::get<1>(GetParam())];
  for (Fault kind : {Fault::kAllocation, Fault::kRead, Fault::kWrite}) {
    int steps = 0, failed_calls = 0, read_only = 0;
    for (int step = 1; step <= kMaxSteps; step++) {
      Outcome run;
      bool met = run_once(op, kind, step, &run);
      ASSERT_TRUE(run.trouble.empty()) << op.name << ", " << fault_name(kind) << " " << step << ": "
                                       << run.trouble << "engine log:\n"
                                       << log_tail();
      if (!met) break;
      steps++;
      failed_calls += !run.status.ok();
      read_only += run.failed_fs;
    }
    std::printf("%-26s %-8s %-22s %3d steps: %3d calls failed, %3d read-only\n", op.name,
                setting_->name, fault_name(kind), steps, failed_calls, read_only);
  }
}

// Adding names until one of them needs a new tree page, with that page's
// allocation failing: the call that meets it fails whole (today's bucket
// order writes the inode before the entry, so this is where a half-done
// create would show).
class SplitFailureTest : public FaultOpsTest {
 protected:
  // Runs `add(i)` for i = 0, 1, ... with the next allocation armed to fail.
  // Each call that meets it must fail with nothing changed, and succeed once
  // the fault is gone. A split may come from any of the items a call adds, so
  // this goes on until `wanted` calls have met the fault.
  void add_until_split(const std::function<Status(int)>& add, int calls = 5000, int wanted = 8) {
    setting_ = &kSettings[0];
    Snapshot unused;
    mount_for(OpCase{"", nullptr}, &unused);
    FileSystem::Impl& impl = fs_->internals_for_testing();
    int splits = 0;
    for (int i = 0; i < calls && splits < wanted; i++) {
      Snapshot before = snapshot(*fs_);
      impl.space_->fail_allocation(1);
      Status st = add(i);
      impl.space_->fail_allocation(0);
      if (st.ok()) continue;
      splits++;
      ASSERT_EQ(st.error(), ENOSPC) << "call " << i;
      Snapshot after = snapshot(*fs_);
      ASSERT_TRUE(after == before) << "call " << i << " changed the tree:\n"
                                   << describe_difference(after, before);
      ASSERT_TRUE(add(i).ok()) << "call " << i << " again";
    }
    EXPECT_EQ(splits, wanted);
    Outcome run;
    finish(&run);
    EXPECT_TRUE(run.trouble.empty()) << run.trouble;
  }
};

TEST_F(SplitFailureTest, CreateNeedingANewTreePageFailsWhole) {
  add_until_split([&](int i) {
    return as_status(fs_->mknod(names_.d, "n" + std::to_string(i), S_IFREG | 0644, 0, kUser));
  });
}

TEST_F(SplitFailureTest, MkdirNeedingANewTreePageFailsWhole) {
  add_until_split(
      [&](int i) { return as_status(fs_->mkdir(names_.d, "m" + std::to_string(i), 0755, kUser)); });
}

TEST_F(SplitFailureTest, LinkNeedingANewTreePageFailsWhole) {
  add_until_split(
      [&](int i) { return as_status(fs_->link(names_.a, names_.e, "l" + std::to_string(i))); });
}

TEST_F(SplitFailureTest, RenameNeedingANewTreePageFailsWhole) {
  // Each round moves one more file from /many into /d.
  add_until_split(
      [&](int i) {
        return fs_->rename(names_.many, "file-" + std::to_string(i), names_.d,
                           "r" + std::to_string(i), 0, kUser);
      },
      /*calls=*/400, /*wanted=*/3);
}

TEST_F(SplitFailureTest, RenameWhiteoutNeedingANewTreePageFailsWhole) {
  // Each round moves one more file from /many into /d and leaves a whiteout.
  add_until_split(
      [&](int i) {
        return fs_->rename(names_.many, "file-" + std::to_string(i), names_.d,
                           "w" + std::to_string(i), RENAME_WHITEOUT, kUser);
      },
      /*calls=*/400, /*wanted=*/3);
}

TEST_F(SplitFailureTest, SetxattrNeedingANewTreePageFailsWhole) {
  add_until_split([&](int i) {
    return fs_->setxattr(names_.a, "user.n" + std::to_string(i), std::string(200, 'v'), 0);
  });
}

INSTANTIATE_TEST_SUITE_P(
    Operations, FaultOpsTest,
    ::testing::Combine(::testing::Range(0, static_cast<int>(op_cases().size())),
                       ::testing::Range(0, static_cast<int>(std::size(kSettings)))),
    [](const ::testing::TestParamInfo<std::tuple<int, int>>& info) {
      std::string name = std::string(op_cases()[std::get<0>(info.param)].name) + "_" +
                         kSettings[std::get<1>(info.param)].name;
      for (char& c : name) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace pagefs
