#include "tests/fuzz/oracle.h"

#include <algorithm>

namespace pagefs::fuzz {

void Oracle::add_snapshot(const Model& model) {
  for (const auto& [ino, inode] : model.inodes) {
    OracleInode& o = inodes_[ino];
    o.type = inode.type;
    if (std::find(o.versions.begin(), o.versions.end(), inode.now) == o.versions.end()) {
      o.versions.push_back(inode.now);
    }
    max_file_bytes_ = std::max<uint64_t>(max_file_bytes_, inode.now.data.size());
  }
  paths_ = model.paths;
  for (const auto& [path, ino] : model.paths) {
    if (path == "/") continue;
    size_t slash = path.rfind('/');
    auto parent = model.paths.find(slash == 0 ? "/" : path.substr(0, slash));
    if (parent != model.paths.end()) names_.insert({parent->second, path.substr(slash + 1)});
  }
}

const OracleInode* Oracle::find(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}

}  // namespace pagefs::fuzz
