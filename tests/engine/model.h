// The in-memory model of a pagefs tree that the model-based test (model_test.cc)
// checks the engine against: directories, files as byte strings with holes as
// zeros, hard links sharing one model inode, symlinks, xattrs, unlinked files
// still held open.
//
// Thread-safety: none; used from the test's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/types.h"

namespace pagefs::test::model {

enum class Kind { kFile, kDir, kSymlink };

struct Node {
  Kind kind = Kind::kFile;
  std::string data;     // file bytes (holes read as zeros) or the symlink target
  uint32_t nlink = 1;   // files and symlinks; a directory's is derived from its children
  uint64_t parent = 0;  // directories only
  std::map<std::string, uint64_t> children;  // directories only
  std::map<std::string, std::string> xattrs;
};

struct EntryRef {
  uint64_t dir;
  std::string name;
};

// The expected state of the filesystem, keyed by engine inode number. Unlinked
// files that are still "open" stay here, with nlink 0, in orphans().
class Model {
 public:
  Model() {
    Node root{Kind::kDir};
    root.parent = kRootInode.value;
    nodes_[kRootInode.value] = root;
  }

  bool has(uint64_t ino) const { return nodes_.count(ino) != 0; }
  Node& at(uint64_t ino) { return nodes_.at(ino); }
  const Node& at(uint64_t ino) const { return nodes_.at(ino); }
  bool is_dir(uint64_t ino) const { return at(ino).kind == Kind::kDir; }
  const std::map<uint64_t, Node>& nodes() const { return nodes_; }
  const std::set<uint64_t>& orphans() const { return orphans_; }

  // The inode `name` names in `dir`, or 0.
  uint64_t child(uint64_t dir, const std::string& name) const {
    const Node& d = at(dir);
    auto it = d.children.find(name);
    return it == d.children.end() ? 0 : it->second;
  }

  uint32_t nlink(uint64_t ino) const {
    const Node& n = at(ino);
    if (n.kind != Kind::kDir) return n.nlink;
    uint32_t subdirs = 0;
    for (const auto& [name, c] : n.children) subdirs += is_dir(c);
    return 2 + subdirs;
  }

  // True if `dir` is `top` or lies below it.
  bool in_subtree(uint64_t top, uint64_t dir) const {
    for (;;) {
      if (dir == top) return true;
      if (dir == kRootInode.value) return false;
      dir = at(dir).parent;
    }
  }

  void add(uint64_t dir, const std::string& name, uint64_t ino, Node node) {
    if (node.kind == Kind::kDir) node.parent = dir;
    nodes_[ino] = std::move(node);
    at(dir).children[name] = ino;
  }

  void link(uint64_t dir, const std::string& name, uint64_t ino) {
    at(dir).children[name] = ino;
    at(ino).nlink++;
  }

  // Removes the entry; returns its inode. A directory is gone at once (the
  // caller releases it); a file left without links becomes an orphan.
  uint64_t unlink(uint64_t dir, const std::string& name) {
    uint64_t ino = child(dir, name);
    at(dir).children.erase(name);
    if (is_dir(ino)) {
      nodes_.erase(ino);
    } else if (--at(ino).nlink == 0) {
      orphans_.insert(ino);
    }
    return ino;
  }

  void forget(uint64_t ino) {
    nodes_.erase(ino);
    orphans_.erase(ino);
  }

  // Linked directories, root first.
  std::vector<uint64_t> dirs() const {
    std::vector<uint64_t> out{kRootInode.value};
    for (size_t i = 0; i < out.size(); i++) {
      for (const auto& [name, c] : at(out[i]).children) {
        if (is_dir(c)) out.push_back(c);
      }
    }
    return out;
  }

  std::vector<EntryRef> entries() const {
    std::vector<EntryRef> out;
    for (uint64_t d : dirs()) {
      for (const auto& [name, c] : at(d).children) out.push_back(EntryRef{d, name});
    }
    return out;
  }

  // Inodes of `kind`, linked or orphaned.
  std::vector<uint64_t> of_kind(Kind kind) const {
    std::vector<uint64_t> out;
    for (const auto& [ino, n] : nodes_) {
      if (n.kind == kind) out.push_back(ino);
    }
    return out;
  }

 private:
  std::map<uint64_t, Node> nodes_;
  std::set<uint64_t> orphans_;
};

}  // namespace pagefs::test::model
