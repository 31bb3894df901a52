// TreeReader: reads everything a mounted (possibly damaged) image shows and
// holds every byte that a call returned successfully against the oracle.
//
// It walks from the root: readdir, lookup and getattr of every entry,
// readlink, listxattr and getxattr of every name, and every regular file read
// whole (through read() or read_in_place(), chosen at random). A call may fail
// (EIO, ENOENT, ...): that is counted, never judged. What a call returns is
// judged by the inode number it names, against every version the oracle holds
// for that inode:
//   - file bytes equal a version's over the length both have, and any bytes
//     past that version's end are zeros (an inode's size may be damaged);
//   - a symlink target, the same way;
//   - an xattr value equals a version's value exactly, and an xattr name or
//     directory entry name is one the oracle knows.
// Anything else is wrong bytes returned without an error: a finding, unless
// the image carries a lie mutation (see mutator.h), when it is only counted.
//
// Bounds keep a damaged tree from running away: directories are entered once
// (cycles), 32 levels deep at most, 20,000 entries each, and files are read
// no further than 1 MiB past the largest file in the oracle.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "engine/filesystem.h"
#include "tests/fuzz/channel.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/oracle.h"

namespace pagefs::fuzz {

class TreeReader {
 public:
  TreeReader(FileSystem& fs, const Oracle& oracle, bool lies, Rng& rng, Channel& channel);

  void read_all();

  uint64_t errors() const { return errors_; }
  uint64_t lies() const { return lies_; }
  uint64_t files() const { return files_; }
  // The first failed call, for a finding's detail.
  const std::string& first_error() const { return first_error_; }
  // Paths where a call failed or returned wrong bytes: where the damage is.
  const std::set<std::string>& suspects() const { return suspects_; }

 private:
  void walk(uint64_t dir, const std::string& path, int depth);
  void visit(uint64_t dir, const std::string& name, const std::string& path, int depth);
  void check_file(const Attr& a, const OracleInode& o, const std::string& path);
  bool read_file(const Attr& a, const std::string& path, std::string* out);
  void check_symlink(const Attr& a, const OracleInode& o, const std::string& path);
  void check_xattrs(const Attr& a, const OracleInode* o, const std::string& path);
  bool failed(const std::string& what, int err);
  void wrong(const std::string& what);

  FileSystem& fs_;
  const Oracle& oracle_;
  const bool lies_allowed_;
  Rng& rng_;
  Channel& channel_;
  std::set<uint64_t> entered_;  // directories already walked
  std::string buf_;             // for read(); one allocation for every file
  uint64_t entries_ = 0;
  uint64_t errors_ = 0;
  uint64_t lies_ = 0;
  uint64_t files_ = 0;
  uint64_t wrong_reported_ = 0;
  std::string first_error_;
  std::string current_path_;  // of the entry being checked
  std::set<std::string> suspects_;
};

}  // namespace pagefs::fuzz
