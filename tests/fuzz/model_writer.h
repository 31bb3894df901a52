// ModelWriter: changes a mounted filesystem and the fuzzer's model of it in
// step, by path. Used only to build base images, where nothing may fail: the
// first failure is kept (error()) and every later call does nothing, so a
// build script reads as a plain list of operations checked once at the end.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <string>

#include "engine/filesystem.h"
#include "tests/fuzz/oracle.h"

namespace pagefs::fuzz {

class ModelWriter {
 public:
  // Contents come from pattern(seed + n), n counting the writes.
  ModelWriter(FileSystem& fs, Model& model, uint64_t seed);

  void mkdir(const std::string& path);
  // Creates a regular file holding `bytes` bytes (written in 64 KiB calls).
  void create(const std::string& path, size_t bytes = 0);
  void write(const std::string& path, uint64_t off, size_t len);
  void truncate(const std::string& path, uint64_t size);
  // mode: 0, FALLOC_FL_KEEP_SIZE or FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
  void fallocate(const std::string& path, int mode, uint64_t off, uint64_t len);
  void symlink(const std::string& path, const std::string& target);
  void link(const std::string& existing, const std::string& path);
  void setxattr(const std::string& path, const std::string& name, size_t len);
  // Sets an xattr to exactly `value` (an ACL, which must be valid).
  void setxattr_value(const std::string& path, const std::string& name, const std::string& value);
  void rename(const std::string& from, const std::string& to);
  void unlink(const std::string& path);
  void fsync();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  uint64_t resolve(const std::string& path);
  uint64_t parent_of(const std::string& path, std::string* name);
  bool check(bool ok, const std::string& what, int err);
  void add_inode(const std::string& path, uint64_t ino, uint32_t type);

  FileSystem& fs_;
  Model& model_;
  uint64_t seed_;
  std::string error_;
};

}  // namespace pagefs::fuzz
