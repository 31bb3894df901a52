#include "tests/engine/repair_fixture.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstdio>
#include <cstring>
#include <functional>

#include "engine/formatter.h"
#include "tests/engine/device_ref.h"
#include "tests/test_env.h"

namespace pagefs::test {
namespace {

std::string text_of(FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
  return s;
}

// Bytes that differ from file to file and from page to page.
std::string pattern(size_t seed, size_t len) {
  std::string s(len, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    s[i] = char(x);
  }
  return s;
}

std::pair<std::string, std::string> split(const std::string& path) {
  const size_t slash = path.rfind('/');
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

void RepairTest::SetUp() {
  dev_ = std::make_unique<MemDevice>(kDeviceBytes);
  std::string msg;
  ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
}

FileSystem* RepairTest::mount() {
  std::string msg;
  auto r = FileSystem::mount(std::make_unique<DeviceRef>(*dev_), MountOptions{16 << 20}, &msg);
  EXPECT_TRUE(r.ok()) << "mount: " << msg;
  fs_ = r.ok() ? std::move(r).value() : nullptr;
  return fs_.get();
}

void RepairTest::unmount() {
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
}

InodeNo RepairTest::add_dir(const std::string& path) {
  auto [dir, name] = split(path);
  auto a = fs_->mkdir(InodeNo{dir == "/" ? 1 : oracle_.at(dir).ino}, name, 0755, Caller{});
  EXPECT_TRUE(a.ok()) << path;
  oracle_[path] = Entry{'d', "", a.ok() ? a->ino : 0};
  return InodeNo{oracle_[path].ino};
}

InodeNo RepairTest::add_file(const std::string& path, const std::string& data) {
  auto [dir, name] = split(path);
  auto a =
      fs_->mknod(InodeNo{dir == "/" ? 1 : oracle_.at(dir).ino}, name, S_IFREG | 0644, 0, Caller{});
  EXPECT_TRUE(a.ok()) << path;
  if (!a.ok()) return InodeNo{};
  if (!data.empty()) {
    auto n = fs_->write(InodeNo{a->ino}, 0, data.data(), data.size());
    EXPECT_TRUE(n.ok() && *n == data.size()) << path;
  }
  oracle_[path] = Entry{'f', data, a->ino};
  return InodeNo{a->ino};
}

void RepairTest::populate() {
  mount();
  add_dir("/docs");
  add_dir("/docs/sub");
  add_dir("/many");
  add_file("/docs/a.txt", "hello, world\n");
  add_file("/docs/big.bin", pattern(1, 300 * 1024));  // three extents
  add_file("/docs/sub/deep.txt", pattern(2, 5000));
  add_file("/empty", "");
  InodeNo hard = add_file("/hard1", pattern(3, 9000));
  ASSERT_TRUE(fs_->link(hard, InodeNo{oracle_["/docs"].ino}, "hard2").ok());
  oracle_["/docs/hard2"] = oracle_["/hard1"];
  auto link = fs_->symlink(kRootInode, "link", "docs/a.txt", Caller{});
  ASSERT_TRUE(link.ok());
  oracle_["/link"] = Entry{'l', "docs/a.txt", link->ino};
  InodeNo sparse = add_file("/sparse", "");
  const std::string tail = pattern(4, 4096);
  ASSERT_TRUE(fs_->write(sparse, 1 << 20, tail.data(), tail.size()).ok());
  oracle_["/sparse"].data = std::string(1 << 20, '\0') + tail;
  ASSERT_TRUE(fs_->setxattr(InodeNo{ino_of("/docs/a.txt")}, "user.note", "kept", 0).ok());
  for (int i = 0; i < kManyFiles; i++) {
    char name[32];
    snprintf(name, sizeof name, "/many/f%03d", i);
    add_file(name, pattern(100 + i, 100 + 37 * i));
  }
  unmount();
}

FsckResult RepairTest::fsck(fsck::Mode mode, bool zero_bad_data) {
  return fsck_on(*dev_, mode, zero_bad_data);
}

FsckResult RepairTest::fsck_on(Device& device, fsck::Mode mode, bool zero_bad_data) {
  FILE* out = std::tmpfile();
  FILE* err = std::tmpfile();
  fsck::RunOptions options;
  options.mode = mode;
  options.zero_bad_data = zero_bad_data;
  options.force = true;  // -p would skip a cleanly unmounted filesystem
  options.out = out;
  options.err = err;
  FsckResult r;
  r.code = fsck::run_fsck(device, "img", options);
  r.out = text_of(out) + text_of(err);
  // PAGEFS_FSCK_ECHO=1 shows every run's report, to see what users would.
  if (testenv::env_u64("PAGEFS_FSCK_ECHO", 0) != 0) {
    std::printf("--- fsck %s ---\n%s",
                mode == fsck::Mode::kCheck   ? "-n"
                : mode == fsck::Mode::kPreen ? "-p"
                                             : "-y",
                r.out.c_str());
  }
  std::fclose(out);
  std::fclose(err);
  return r;
}

void RepairTest::expect_repaired(fsck::Mode mode, const std::string& named) {
  FsckResult check = fsck(fsck::Mode::kCheck);
  EXPECT_EQ(check.code, fsck::kExitUncorrected) << check.out;
  if (!named.empty()) {
    EXPECT_NE(check.out.find(named), std::string::npos) << check.out;
  }
  FsckResult repair = fsck(mode);
  EXPECT_EQ(repair.code, fsck::kExitFixed) << repair.out;
  FsckResult after = fsck(fsck::Mode::kCheck);
  EXPECT_EQ(after.code, fsck::kExitClean) << "after the repair:\n" << repair.out << after.out;
}

void RepairTest::expect_second_run_unchanged() {
  std::vector<std::byte> before(dev_->raw(), dev_->raw() + dev_->size_bytes());
  FsckResult again = fsck(fsck::Mode::kRepair);
  EXPECT_EQ(again.code, fsck::kExitClean) << again.out;
  EXPECT_EQ(std::memcmp(before.data(), dev_->raw(), before.size()), 0)
      << "a second fsck -y changed the device:\n"
      << again.out;
}

Tree RepairTest::walk() {
  Tree tree;
  std::function<void(uint64_t, const std::string&)> visit = [&](uint64_t dir,
                                                                const std::string& path) {
    std::vector<std::pair<std::string, uint64_t>> children;
    Status listed = fs_->readdir(InodeNo{dir}, 0, [&](const DirEntry& e) {
      children.emplace_back(std::string(e.name), e.ino);
      return true;
    });
    EXPECT_TRUE(listed.ok()) << "readdir " << path << ": " << strerror(listed.error());
    for (const auto& [name, ino] : children) {
      const std::string child = (path == "/" ? "" : path) + "/" + name;
      auto attr = fs_->getattr(InodeNo{ino});
      EXPECT_TRUE(attr.ok()) << "getattr " << child;
      if (!attr.ok()) continue;
      Entry e{'f', "", ino};
      if (S_ISDIR(attr->mode)) {
        e.type = 'd';
        visit(ino, child);
      } else if (S_ISLNK(attr->mode)) {
        e.type = 'l';
        auto target = fs_->readlink(InodeNo{ino});
        EXPECT_TRUE(target.ok()) << "readlink " << child;
        if (target.ok()) e.data = *target;
      } else if (attr->size > kDeviceBytes * 4) {
        e.data = "<size " + std::to_string(attr->size) + ">";  // damaged, far too large to read
      } else {
        e.data.resize(attr->size);
        auto n = fs_->read(InodeNo{ino}, 0, e.data.size(), e.data.data());
        if (!n.ok()) e.data = "<EIO>";
      }
      tree[child] = e;
    }
  };
  visit(1, "/");
  return tree;
}

Tree RepairTest::expect_intact(const std::set<std::string>& lost) {
  if (mount() == nullptr) return {};
  Tree tree = walk();
  for (const auto& [path, e] : oracle_) {
    if (lost.count(path) > 0) continue;
    auto it = tree.find(path);
    if (it == tree.end()) {
      ADD_FAILURE() << path << " is missing after the repair";
      continue;
    }
    EXPECT_EQ(it->second.type, e.type) << path;
    EXPECT_TRUE(it->second.data == e.data) << path << " differs after the repair";
  }
  unmount();
  return tree;
}

}  // namespace pagefs::test
