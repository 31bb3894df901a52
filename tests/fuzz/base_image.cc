#include "tests/fuzz/base_image.h"

#include <linux/falloc.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/posix_acl.h"
#include "engine/xattr_item.h"
#include "tests/fuzz/model_writer.h"

namespace pagefs::fuzz {
namespace {

constexpr uint64_t kBuildCacheBytes = 64ull << 20;  // more than the image: no write-back
constexpr uint32_t kNoTimedCommit_s = 365u * 24 * 3600;
constexpr int kBigDirEntries = 4000;

MountOptions build_options() {
  MountOptions options;
  options.cache_bytes = kBuildCacheBytes;
  options.commit_interval_s = kNoTimedCommit_s;
  return options;
}

// Every seventh name is long, every fourteenth as long as a name may be.
std::string entry_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "entry-%05d", i);
  std::string name = buf;
  if (i % 7 == 0) name.resize(i % 14 == 0 ? kNameMax : 100 + i % 100, 'n');
  return "/big/" + name;
}

// Files whose extents and data pages have every shape the format allows.
void write_files(ModelWriter& w) {
  w.create("/small", 100);
  w.create("/page", 4096);
  w.create("/multi", 200 << 10);
  w.create("/frag1");
  w.create("/frag2");
  for (uint64_t i = 0; i < 12; i++) {  // interleaved: each file's pages are scattered
    w.write("/frag1", i * 8192, 8192);
    w.write("/frag2", i * 8192, 8192);
  }
  w.create("/sparse/holes");
  w.write("/sparse/holes", 0, 5000);
  w.write("/sparse/holes", 1 << 20, 9000);
  w.write("/sparse/holes", (3 << 20) + 123, 100);
  w.create("/falloc");
  w.fallocate("/falloc", 0, 0, 96 << 10);
  w.write("/falloc", 16 << 10, 4096);
  w.write("/falloc", 40000, 10);
  w.create("/falloc_keep", 10 << 10);
  w.fallocate("/falloc_keep", FALLOC_FL_KEEP_SIZE, 10 << 10, 90 << 10);
  w.create("/punched", 96 << 10);
  w.fallocate("/punched", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16 << 10, 32 << 10);
  w.create("/truncated", 50 << 10);
  w.truncate("/truncated", 30001);
  w.create("/grown", 3000);
  w.truncate("/grown", 20000);
  w.create("/docs/readme", 5000);
  w.create("/docs/a/b/c/deep", 1234);
}

// An ACL in xattr form: u::rwx, `users` named users r-x, g::r-x, m::rwx,
// o::r-x. Not one the mode says, so it is stored.
std::string acl_value(uint32_t users) {
  std::vector<uint16_t> tags = {0x01};
  tags.insert(tags.end(), users, 0x02);
  tags.insert(tags.end(), {0x04, 0x10, 0x20});
  std::string v(4 + 8 * tags.size(), '\0');
  v[0] = 2;
  for (size_t i = 0; i < tags.size(); i++) {
    const uint16_t perm = tags[i] == 0x10 || tags[i] == 0x01 ? 7 : 5;
    const uint32_t id = tags[i] == 0x02 ? 2000 + uint32_t(i) : UINT32_MAX;
    std::memcpy(v.data() + 4 + 8 * i, &tags[i], 2);
    std::memcpy(v.data() + 6 + 8 * i, &perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &id, 4);
  }
  return v;
}

// POSIX ACLs: the root's default ACL (so the write phase's new inodes
// inherit it), a large one in data pages, and access ACLs.
void write_acls(ModelWriter& w) {
  w.setxattr_value("/", std::string(kAclDefaultXattr), acl_value(2));
  w.setxattr_value("/docs", std::string(kAclDefaultXattr), acl_value(300));  // in pages
  w.setxattr_value("/docs", std::string(kAclAccessXattr), acl_value(1));
  w.setxattr_value("/small", std::string(kAclAccessXattr), acl_value(3));
}

void write_links_and_xattrs(ModelWriter& w) {
  w.create("/links/target", 7000);
  w.link("/links/target", "/links/hard1");
  w.link("/links/target", "/docs/a/hard2");
  w.symlink("/links/sym", "target");
  w.symlink("/links/symlong", std::string(900, 'x'));
  w.symlink("/links/dangling", "/nowhere/at/all");
  w.setxattr("/small", "user.a", 10);
  w.setxattr("/docs", "user.dir", 20);
  w.setxattr("/page", "user.big", max_inline_xattr_value(kDefaultPageSize, 8, true));  // inline
  w.setxattr("/page", "user.paged", 5000);                                             // two pages
  w.setxattr("/docs/readme", "user.max", kMaxXattrValue);                              // 16 pages
  for (int i = 0; i < 20; i++) w.setxattr("/links/target", "user.k" + std::to_string(i), 30);
}

// One directory big enough that the tree has internal nodes below the root.
void write_big_directory(ModelWriter& w) {
  w.mkdir("/big");
  for (int i = 0; i < kBigDirEntries; i++) {
    const std::string path = entry_name(i);
    if (i % 97 == 1) {
      w.mkdir(path);
    } else if (i % 101 == 2) {
      w.symlink(path, entry_name(0).substr(5));
    } else {
      w.create(path, i % 50 == 0 ? 3000 : 0);
    }
    if (i % 200 == 0) w.setxattr(path, "user.e", 16);
  }
}

void populate(ModelWriter& w) {
  for (const char* dir : {"/docs", "/docs/a", "/docs/a/b", "/docs/a/b/c", "/links", "/sparse"}) {
    w.mkdir(dir);
  }
  write_files(w);
  write_links_and_xattrs(w);
  write_acls(w);
  write_big_directory(w);
  w.fsync();
}

// The operations whose transactions the "journal" image leaves unreplayed.
// Each is made durable on its own, and each state is one the image may show.
void journal_phase(ModelWriter& w, Model& model, Oracle& oracle) {
  const std::vector<std::function<void()>> ops = {
      [&] { w.write("/multi", 8192, 20000); },
      [&] { w.write("/small", 100, 50); },
      [&] { w.create("/journal-new", 9000); },
      [&] { w.setxattr("/page", "user.j", 64); },
      [&] { w.rename("/truncated", "/docs/renamed"); },
      [&] { w.unlink("/punched"); },
      [&] { w.write(entry_name(50), 0, 100); },
      [&] { w.mkdir("/jdir"); },
      [&] { w.create("/jdir/f", 4096); },
      [&] { w.truncate("/frag1", 20000); },
      [&] { w.link("/small", "/jdir/small-link"); },
      [&] { w.symlink("/jdir/s", "f"); },
  };
  for (const auto& op : ops) {
    op();
    w.fsync();
    oracle.add_snapshot(model);
  }
}

std::unique_ptr<MemDevice> copy_of(const MemDevice& from) {
  auto to = std::make_unique<MemDevice>(from.size_bytes());
  std::memcpy(to->raw(), from.raw(), from.size_bytes());
  return to;
}

bool build_clean(uint64_t seed, BaseImage* base, Model* model, std::string* error) {
  base->name = "clean";
  base->device = std::make_unique<MemDevice>(kImageBytes);
  std::string message;
  if (!format_device(*base->device, FormatOptions{}, &message).ok()) {
    return *error = "format: " + message, false;
  }
  auto fs =
      FileSystem::mount(std::make_unique<FaultDevice>(*base->device, 0), build_options(), &message);
  if (!fs.ok()) return *error = "mount: " + message, false;
  model->paths["/"] = kRootInode.value;
  model->inodes[kRootInode.value].type = S_IFDIR;
  ModelWriter w(**fs, *model, seed);
  populate(w);
  if (!w.ok()) return *error = "populating: " + w.error(), false;
  if (!(*fs)->unmount().ok()) return *error = "unmount failed", false;
  base->oracle.add_snapshot(*model);
  return true;
}

bool build_journal(uint64_t seed, const BaseImage& clean, Model model, BaseImage* base,
                   std::string* error) {
  base->name = "journal";
  base->device = copy_of(*clean.device);
  base->oracle.add_snapshot(model);
  auto fault = std::make_unique<FaultDevice>(*base->device, 0);
  FaultDevice& dev = *fault;
  std::string message;
  auto fs = FileSystem::mount(std::move(fault), build_options(), &message);
  if (!fs.ok()) return *error = "remount: " + message, false;
  ModelWriter w(**fs, model, seed + 1000000);
  journal_phase(w, model, base->oracle);
  if (!w.ok()) return *error = "journal phase: " + w.error(), false;
  // The crash: nothing written after the last fsync reaches the image.
  dev.drop_writes_after(dev.write_count());
  (void)(*fs)->unmount();
  return true;
}

}  // namespace

bool build_base_images(uint64_t seed, std::vector<BaseImage>* out, std::string* error) {
  out->clear();
  out->resize(2);
  Model model;
  if (!build_clean(seed, &(*out)[0], &model, error)) return false;
  if (!build_journal(seed, (*out)[0], model, &(*out)[1], error)) return false;
  for (BaseImage& base : *out) {
    if (!map_image(*base.device, &base.map, error))
      return *error = base.name + ": " + *error, false;
  }
  if ((*out)[1].map.txns.empty()) return *error = "the journal image has no transactions", false;
  return true;
}

}  // namespace pagefs::fuzz
