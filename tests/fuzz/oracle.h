// Oracle: what a base image of the fuzzer holds, kept while it was written.
//
// The model is the tree as the fuzzer wrote it: path -> inode number, and per
// inode its type, contents, symlink target and xattrs. The oracle is built
// from snapshots of the model. It is keyed by inode number, not by path, so a
// directory entry that a mutation pointed at another live inode is still
// judged by that inode's own bytes. An image whose journal holds transactions
// not yet checkpointed may recover to the state after any of them (recovery
// stops at the first damaged record), so every inode keeps each version it
// had in those states.
//
// Thread-safety: none; built once by the parent, then only read.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pagefs::fuzz {

struct Version {
  std::string data;                           // regular files: the whole contents
  std::string target;                         // symlinks
  std::map<std::string, std::string> xattrs;  // name -> value

  bool operator==(const Version&) const = default;
};

struct ModelInode {
  uint32_t type = 0;  // S_IFREG, S_IFDIR or S_IFLNK
  Version now;
};

// The tree being written: the latest state only.
struct Model {
  std::map<std::string, uint64_t> paths;  // "/a/b" -> inode; "/" is the root
  std::map<uint64_t, ModelInode> inodes;
};

struct OracleInode {
  uint32_t type = 0;
  std::vector<Version> versions;  // every version a recovered image may show
};

class Oracle {
 public:
  // Adds the model's current state as one more state the image may show.
  void add_snapshot(const Model& model);

  // nullptr for an inode the image never held.
  const OracleInode* find(uint64_t ino) const;
  // Whether directory `dir` held an entry called `name` in some state.
  bool knows_name(uint64_t dir, const std::string& name) const {
    return names_.contains({dir, name});
  }
  // Paths of the newest state, for the writes after the checks.
  const std::map<std::string, uint64_t>& paths() const { return paths_; }
  // The largest file in any version: reads stop a little past it.
  uint64_t max_file_bytes() const { return max_file_bytes_; }
  size_t inode_count() const { return inodes_.size(); }

 private:
  std::map<uint64_t, OracleInode> inodes_;
  std::map<std::string, uint64_t> paths_;
  std::set<std::pair<uint64_t, std::string>> names_;  // (directory, entry name)
  uint64_t max_file_bytes_ = 0;
};

}  // namespace pagefs::fuzz
