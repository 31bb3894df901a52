#include "tests/fuzz/model_writer.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cstring>

#include "engine/posix_acl.h"
#include "tests/fuzz/fuzz_util.h"

namespace pagefs::fuzz {
namespace {

const Caller kCaller{0, 0};
constexpr size_t kWriteChunk = 64 << 10;

std::string errno_text(int e) {
  return e == 0 ? "ok" : strerrorname_np(e);
}

// Writes `data` into `file` at `off`, growing it with zeros as a write past
// the end of a file does.
void overwrite(std::string& file, uint64_t off, const std::string& data) {
  if (file.size() < off + data.size()) file.resize(off + data.size(), '\0');
  file.replace(off, data.size(), data);
}

}  // namespace

ModelWriter::ModelWriter(FileSystem& fs, Model& model, uint64_t seed)
    : fs_(fs), model_(model), seed_(seed) {}

bool ModelWriter::check(bool ok, const std::string& what, int err) {
  if (!ok && error_.empty()) error_ = what + ": " + errno_text(err);
  return ok;
}

uint64_t ModelWriter::resolve(const std::string& path) {
  auto it = model_.paths.find(path);
  check(it != model_.paths.end(), "no such path in the model: " + path, ENOENT);
  return it == model_.paths.end() ? 0 : it->second;
}

uint64_t ModelWriter::parent_of(const std::string& path, std::string* name) {
  size_t slash = path.rfind('/');
  *name = path.substr(slash + 1);
  return resolve(slash == 0 ? "/" : path.substr(0, slash));
}

// A new inode starts with the ACLs it inherited from its directory's default
// ACL, if any: they enter the model as they were stored.
void ModelWriter::add_inode(const std::string& path, uint64_t ino, uint32_t type) {
  model_.paths[path] = ino;
  model_.inodes[ino].type = type;
  for (std::string_view name : {kAclAccessXattr, kAclDefaultXattr}) {
    auto value = fs_.getxattr(InodeNo{ino}, name);
    if (value.ok()) model_.inodes[ino].now.xattrs[std::string(name)] = *value;
  }
}

void ModelWriter::mkdir(const std::string& path) {
  std::string name;
  uint64_t dir = parent_of(path, &name);
  if (!ok()) return;
  auto a = fs_.mkdir(InodeNo{dir}, name, 0755, kCaller);
  if (check(a.ok(), "mkdir " + path, a.ok() ? 0 : a.error())) add_inode(path, a->ino, S_IFDIR);
}

void ModelWriter::create(const std::string& path, size_t bytes) {
  std::string name;
  uint64_t dir = parent_of(path, &name);
  if (!ok()) return;
  auto a = fs_.mknod(InodeNo{dir}, name, S_IFREG | 0644, 0, kCaller);
  if (!check(a.ok(), "create " + path, a.ok() ? 0 : a.error())) return;
  add_inode(path, a->ino, S_IFREG);
  for (size_t off = 0; off < bytes; off += kWriteChunk) {
    write(path, off, std::min(kWriteChunk, bytes - off));
  }
}

void ModelWriter::write(const std::string& path, uint64_t off, size_t len) {
  uint64_t ino = resolve(path);
  if (!ok()) return;
  std::string data = pattern(seed_++, len);
  auto n = fs_.write(InodeNo{ino}, off, data.data(), data.size());
  if (!check(n.ok() && *n == len, "write " + path, n.ok() ? EIO : n.error())) return;
  overwrite(model_.inodes[ino].now.data, off, data);
}

void ModelWriter::truncate(const std::string& path, uint64_t size) {
  uint64_t ino = resolve(path);
  if (!ok()) return;
  SetAttr change;
  change.set_size = true;
  change.size = size;
  auto a = fs_.setattr(InodeNo{ino}, change);
  if (check(a.ok(), "truncate " + path, a.ok() ? 0 : a.error())) {
    model_.inodes[ino].now.data.resize(size, '\0');
  }
}

void ModelWriter::fallocate(const std::string& path, int mode, uint64_t off, uint64_t len) {
  uint64_t ino = resolve(path);
  if (!ok()) return;
  Status st = fs_.fallocate(InodeNo{ino}, mode, off, len);
  if (!check(st.ok(), "fallocate " + path, st.ok() ? 0 : st.error())) return;
  std::string& data = model_.inodes[ino].now.data;
  if (mode == 0 && data.size() < off + len) data.resize(off + len, '\0');
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    uint64_t end = std::min<uint64_t>(off + len, data.size());
    if (off < end) std::fill(data.begin() + off, data.begin() + end, '\0');
  }
}

void ModelWriter::symlink(const std::string& path, const std::string& target) {
  std::string name;
  uint64_t dir = parent_of(path, &name);
  if (!ok()) return;
  auto a = fs_.symlink(InodeNo{dir}, name, target, kCaller);
  if (!check(a.ok(), "symlink " + path, a.ok() ? 0 : a.error())) return;
  add_inode(path, a->ino, S_IFLNK);
  model_.inodes[a->ino].now.target = target;
}

void ModelWriter::link(const std::string& existing, const std::string& path) {
  uint64_t ino = resolve(existing);
  std::string name;
  uint64_t dir = parent_of(path, &name);
  if (!ok()) return;
  auto a = fs_.link(InodeNo{ino}, InodeNo{dir}, name);
  if (check(a.ok(), "link " + path, a.ok() ? 0 : a.error())) model_.paths[path] = ino;
}

void ModelWriter::setxattr(const std::string& path, const std::string& name, size_t len) {
  setxattr_value(path, name, pattern(seed_++, len));
}

void ModelWriter::setxattr_value(const std::string& path, const std::string& name,
                                 const std::string& value) {
  uint64_t ino = resolve(path);
  if (!ok()) return;
  Status st = fs_.setxattr(InodeNo{ino}, name, value, 0);
  if (check(st.ok(), "setxattr " + path + " " + name, st.ok() ? 0 : st.error())) {
    model_.inodes[ino].now.xattrs[name] = value;
  }
}

void ModelWriter::rename(const std::string& from, const std::string& to) {
  std::string from_name, to_name;
  uint64_t from_dir = parent_of(from, &from_name), to_dir = parent_of(to, &to_name);
  if (!ok()) return;
  Status st = fs_.rename(InodeNo{from_dir}, from_name, InodeNo{to_dir}, to_name, 0, kCaller);
  if (!check(st.ok(), "rename " + from, st.ok() ? 0 : st.error())) return;
  // Move the path and, for a directory, every path below it.
  std::map<std::string, uint64_t> moved;
  for (auto it = model_.paths.begin(); it != model_.paths.end();) {
    const std::string& p = it->first;
    if (p == from || p.starts_with(from + "/")) {
      moved[to + p.substr(from.size())] = it->second;
      it = model_.paths.erase(it);
    } else {
      ++it;
    }
  }
  model_.paths.insert(moved.begin(), moved.end());
}

void ModelWriter::unlink(const std::string& path) {
  std::string name;
  uint64_t dir = parent_of(path, &name);
  uint64_t ino = resolve(path);
  if (!ok()) return;
  Status st = fs_.unlink(InodeNo{dir}, name, kCaller);
  if (!check(st.ok(), "unlink " + path, st.ok() ? 0 : st.error())) return;
  model_.paths.erase(path);
  bool linked = std::any_of(model_.paths.begin(), model_.paths.end(),
                            [&](const auto& p) { return p.second == ino; });
  if (linked) return;
  model_.inodes.erase(ino);
  st = fs_.release_inode(InodeNo{ino});
  check(st.ok(), "release " + path, st.ok() ? 0 : st.error());
}

void ModelWriter::fsync() {
  if (!ok()) return;
  Status st = fs_.fsync(kRootInode, false);
  check(st.ok(), "fsync", st.ok() ? 0 : st.error());
}

}  // namespace pagefs::fuzz
