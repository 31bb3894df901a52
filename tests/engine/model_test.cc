// Model-based randomized test of the FileSystem API.
//
// Random operations drawn from one printed seed run against the engine and
// against an in-memory model of the tree (directories, files as byte strings
// with holes as zeros, hard links sharing one model inode, symlinks, xattrs,
// unlinked files still held open). Every result and errno must be one the
// model predicts; at every remount the whole tree (names, types, link counts,
// sizes, bytes, holes as lseek reports them, xattrs) must match the model, and
// after the run fsck.pagefs -n must find the image clean.
//
// Environment: PAGEFS_SEED picks the seed (default: fixed; "random" for a new one; printed);
// PAGEFS_MODEL_OPS the number of operations per variant. A failure prints the
// last operations, numbered, so a run can be replayed with the same seed.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"
#include "tests/test_env.h"

namespace pagefs {
namespace {

constexpr uint64_t kMaxModelFileBytes = 12ull << 20;
constexpr uint64_t kMaxWriteBytes = 300ull << 10;
constexpr uint64_t kMetaBytes = 64ull << 10;  // what a namespace or xattr change may need
// ENOSPC is accepted when the space free before the call was within this of what it needs
// (tree pages, the allocator's metadata reserve and fragmentation all take some).
constexpr uint64_t kEnospcSlackBytes = 4ull << 20;
constexpr uint64_t kRemountEvery = 250;
constexpr uint64_t kBallastEvery = 50;
constexpr size_t kLogLines = 60;

using Errors = std::vector<int>;  // errnos the model accepts; empty: success expected

std::string errno_text(int e) {
  return e == 0 ? "success" : std::string(strerrorname_np(e));
}

std::string shown(const std::string& name) {
  return name.size() <= 24 ? name : name.substr(0, 8) + "...(" + std::to_string(name.size()) + ")";
}

void store(std::string& data, uint64_t off, std::string_view bytes) {
  if (bytes.empty()) return;
  if (data.size() < off + bytes.size()) data.resize(off + bytes.size(), '\0');
  data.replace(off, bytes.size(), bytes);
}

void zero_range(std::string& data, uint64_t off, uint64_t len) {
  if (off >= data.size()) return;
  uint64_t end = std::min<uint64_t>(data.size(), off + len);
  std::fill(data.begin() + off, data.begin() + end, '\0');
}

bool all_zero(const std::string& data, uint64_t from, uint64_t to) {
  to = std::min<uint64_t>(to, data.size());
  return from >= to ||
         std::all_of(data.begin() + from, data.begin() + to, [](char c) { return c == 0; });
}

// Offset of the first byte where a and b differ, or -1 if they are equal.
int64_t first_difference(std::string_view a, std::string_view b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (ia == a.end() && ib == b.end()) return -1;
  return ia - a.begin();
}

// ---- the model ----------------------------------------------------------------------

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

// ---- the test -----------------------------------------------------------------------

struct Variant {
  uint64_t device_bytes;
  uint64_t cache_bytes;
  uint64_t default_ops;
  uint64_t room_divisor;  // below total/room_divisor free pages, make room more often
  uint64_t full_divisor;  // if not 0, each remount fills the device to total/full_divisor free
};

class ModelTest : public ::testing::Test {
 protected:
  void run(const Variant& v);

  // Setup, remount and the final check.
  void format_and_mount(const Variant& v);
  void mount();
  void remount_and_verify();
  void add_ballast();
  void run_fsck();
  void print_log() const;

  // Randomness.
  uint64_t uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  T pick(const std::vector<T>& v) {
    return v[uniform(0, v.size() - 1)];
  }
  std::string random_bytes(size_t n);
  std::string pick_name();
  uint64_t pick_length();
  uint64_t pick_offset(uint64_t size, uint64_t len);
  uint64_t pick_dir_or_any();
  uint64_t pick_file_or_any();
  uint64_t pick_any();
  EntryRef pick_entry();

  // Judging results.
  void note(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  bool enospc_plausible(uint64_t need_bytes) const;
  bool settle(int got, const Errors& allowed, uint64_t need_bytes);
  Errors create_errors(uint64_t dir, const std::string& name) const;
  Errors data_errors(uint64_t ino, int symlink_errno) const;
  Errors rename_errors(const EntryRef& src, const EntryRef& dst, uint32_t flags) const;
  Errors xattr_name_errors(const std::string& name) const;
  Errors setxattr_errors(const Node& n, const std::string& name, size_t len, int flags) const;

  // Operations.
  void step();
  void op_create();
  void op_mkdir();
  void op_symlink();
  void op_write();
  void op_read();
  void op_truncate();
  void op_fallocate();
  void absorb_failed_zero_range(uint64_t ino, uint64_t off, uint64_t len);
  void op_copy();
  void op_link();
  void op_unlink();
  void drop_orphan_maybe(uint64_t ino);
  void release(uint64_t ino);
  void op_rmdir();
  void op_rename();
  void apply_rename(const EntryRef& src, const EntryRef& dst, uint32_t flags);
  void op_setxattr();
  void op_getxattr();
  void op_removexattr();
  void op_listxattr();
  void op_release_orphan();
  void op_release_linked();
  void op_seek();

  // Verification.
  void check_range(uint64_t ino, uint64_t off, uint64_t len);
  void verify_tree();
  void verify_dir(uint64_t dir);
  void verify_node(uint64_t ino, const Node& n);
  void verify_content(uint64_t ino, const std::string& data);
  void verify_holes(uint64_t ino, const std::string& data);
  void verify_blocks(const Attr& a, const std::string& data);
  void verify_xattrs(uint64_t ino, const Node& n);
  std::map<std::string, std::pair<uint64_t, uint32_t>> readdir_all(uint64_t dir);

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
  MountOptions options_;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;
  Model model_;
  std::deque<std::string> log_;  // the last operations, for the failure report
  uint64_t op_index_ = 0;
  uint64_t free_before_ = 0;  // data pages free before the current operation
  uint64_t total_pages_ = 0;
  uint64_t room_divisor_ = 6;
  uint64_t full_divisor_ = 0;
  uint64_t ballast_count_ = 0;
  uint64_t enospc_count_ = 0;
  uint32_t ps_ = 4096;
  Caller caller_{1000, 1000};
};

// ---- setup --------------------------------------------------------------------------

void ModelTest::format_and_mount(const Variant& v) {
  dev_ = std::make_unique<MemDevice>(v.device_bytes);
  std::string msg;
  ASSERT_TRUE(format_device(*dev_, FormatOptions{}, &msg).ok()) << msg;
  options_.cache_bytes = v.cache_bytes;
  room_divisor_ = v.room_divisor;
  full_divisor_ = v.full_divisor;
  mount();
}

void ModelTest::mount() {
  std::string msg;
  auto r = FileSystem::mount(std::make_unique<FaultDevice>(*dev_, seed_), options_, &msg);
  ASSERT_TRUE(r.ok()) << msg;
  fs_ = std::move(r).value();
  ps_ = fs_->page_size();
  total_pages_ = fs_->stats().total_pages;
}

// Orphans die with the mount: the next mount purges them.
void ModelTest::remount_and_verify() {
  note("remount");
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  mount();
  ASSERT_TRUE(fs_);
  std::vector<uint64_t> orphans(model_.orphans().begin(), model_.orphans().end());
  for (uint64_t ino : orphans) {
    EXPECT_EQ(fs_->getattr(InodeNo{ino}).error(), ENOENT) << "orphan " << ino << " survived";
    model_.forget(ino);
  }
  verify_tree();
}

// Keeps a nearly-full variant nearly full: a new file takes the room above
// the target, so that the random operations run into ENOSPC often.
void ModelTest::add_ballast() {
  if (full_divisor_ == 0 || HasFailure()) return;
  uint64_t free = fs_->stats().free_pages, target = total_pages_ / full_divisor_;
  if (free <= target) return;
  std::string name = "ballast" + std::to_string(ballast_count_++);
  uint64_t len = std::min((free - target) * ps_, kMaxModelFileBytes);
  note("ballast %s of %" PRIu64 " bytes", name.c_str(), len);
  auto a = fs_->mknod(kRootInode, name, S_IFREG | 0644, 0, caller_);
  ASSERT_TRUE(a.ok()) << errno_text(a.error());
  model_.add(kRootInode.value, name, a->ino, Node{Kind::kFile});
  std::string bytes = random_bytes(len);
  auto w = fs_->write(InodeNo{a->ino}, 0, bytes.data(), len);
  ASSERT_TRUE(w.ok() && *w == len) << errno_text(w.error());
  store(model_.at(a->ino).data, 0, bytes);
}

void ModelTest::print_log() const {
  std::ostringstream out;
  out << "seed " << seed_ << ", last operations:\n";
  for (const std::string& line : log_) out << "  " << line << "\n";
  ADD_FAILURE() << out.str();
}

void ModelTest::note(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  log_.push_back("#" + std::to_string(op_index_) + " " + buf);
  if (log_.size() > kLogLines) log_.pop_front();
}

// Writes the device image sparsely to a temp file and runs fsck.pagefs -n on it.
void ModelTest::run_fsck() {
  namespace fs = std::filesystem;
  fs::path fsck = fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "fsck.pagefs";
  if (!fs::exists(fsck)) {
    std::printf("fsck step skipped: %s not built\n", fsck.c_str());
    return;
  }
  fs::path image = fs::temp_directory_path() /
                   ("pagefs_model_" + std::to_string(getpid()) + "_" + std::to_string(seed_));
  {
    std::ofstream out(image, std::ios::binary | std::ios::trunc);
    const char* raw = reinterpret_cast<const char*>(dev_->raw());
    const std::string zeros(ps_, '\0');
    for (uint64_t off = 0; off < dev_->size_bytes(); off += ps_) {
      bool last = off + ps_ == dev_->size_bytes();
      if (!last && std::memcmp(raw + off, zeros.data(), ps_) == 0) continue;
      out.seekp(std::streamoff(off));
      out.write(raw + off, ps_);
    }
    ASSERT_TRUE(out.good());
  }
  fs::path report = image.string() + ".out";
  std::string cmd = fsck.string() + " -n " + image.string() + " > " + report.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(report);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "fsck.pagefs -n said:\n" << text;
  std::printf("fsck.pagefs -n: exit status %d\n", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
  fs::remove(image);
  fs::remove(report);
}

void ModelTest::run(const Variant& v) {
  seed_ = testenv::seed_from_env();
  uint64_t ops = testenv::env_u64("PAGEFS_MODEL_OPS", v.default_ops);
  SCOPED_TRACE("seed " + std::to_string(seed_) +
               " (rerun with PAGEFS_SEED=" + std::to_string(seed_) + ")");
  std::printf("model test: seed %" PRIu64 ", %" PRIu64 " operations\n", seed_, ops);
  rng_.seed(seed_);
  ASSERT_NO_FATAL_FAILURE(format_and_mount(v));
  add_ballast();
  for (op_index_ = 0; op_index_ < ops && !HasFailure(); op_index_++) {
    free_before_ = fs_->stats().free_pages;
    step();
    if ((op_index_ + 1) % kRemountEvery == 0 && !HasFailure()) remount_and_verify();
    if ((op_index_ + 1) % kBallastEvery == 0) add_ballast();
  }
  if (!HasFailure()) remount_and_verify();
  if (HasFailure()) return print_log();
  std::printf("model test: %zu inodes at the end, %" PRIu64 " ENOSPC\n", model_.nodes().size(),
              enospc_count_);
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  run_fsck();
}

// ---- random choices -----------------------------------------------------------------

std::string ModelTest::random_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = rng_();
    std::memcpy(s.data() + i, &w, std::min<size_t>(8, n - i));
  }
  return s;
}

// A small pool, so that names collide often, plus the longest legal name.
std::string ModelTest::pick_name() {
  static const std::vector<std::string> kNames = {"a",
                                                  "b",
                                                  "c",
                                                  "d",
                                                  "e",
                                                  "f",
                                                  "g",
                                                  "h",
                                                  "i",
                                                  "j",
                                                  "with space",
                                                  "\xc3\xbc-utf8",
                                                  std::string(255, 'n')};
  return pick(kNames);
}

// Tiny, page-sized and large writes in equal measure.
uint64_t ModelTest::pick_length() {
  switch (uniform(0, 2)) {
    case 0:
      return uniform(1, 100);
    case 1:
      return uniform(100, 3 * ps_);
    default:
      return uniform(3 * ps_, kMaxWriteBytes);
  }
}

// Inside the file, straddling a page boundary, appending, or far past the end.
uint64_t ModelTest::pick_offset(uint64_t size, uint64_t len) {
  uint64_t off = 0;
  switch (uniform(0, 4)) {
    case 0:
      off = uniform(0, size);
      break;
    case 1: {
      uint64_t boundary = uniform(1, size / ps_ + 1) * ps_;
      off = boundary - uniform(1, std::min<uint64_t>(len, ps_));
      break;
    }
    case 2:
      off = size;
      break;
    case 3:
      off = size + uniform(1, 4 << 20);
      break;
    default:
      off = uniform(0, size + (64 << 10));
  }
  if (off + len > kMaxModelFileBytes) off = uniform(0, kMaxModelFileBytes - len);
  return off;
}

// Mostly a directory; sometimes any node, to provoke ENOTDIR.
uint64_t ModelTest::pick_dir_or_any() {
  return chance(0.05) ? pick_any() : pick(model_.dirs());
}

// Mostly a regular file (0 if there is none); sometimes any node.
uint64_t ModelTest::pick_file_or_any() {
  std::vector<uint64_t> files = model_.of_kind(Kind::kFile);
  if (files.empty() || chance(0.05)) return pick_any();
  return pick(files);
}

uint64_t ModelTest::pick_any() {
  std::vector<uint64_t> all;
  for (const auto& [ino, n] : model_.nodes()) all.push_back(ino);
  return pick(all);
}

// Mostly an existing entry; sometimes a name that may not exist.
EntryRef ModelTest::pick_entry() {
  std::vector<EntryRef> entries = model_.entries();
  if (entries.empty() || chance(0.2)) return EntryRef{pick(model_.dirs()), pick_name()};
  return pick(entries);
}

// ---- judging results ----------------------------------------------------------------

bool ModelTest::enospc_plausible(uint64_t need_bytes) const {
  return free_before_ * ps_ < need_bytes + kEnospcSlackBytes;
}

// Checks the engine's outcome (0 or an errno) against the model's; true if
// the operation took effect and the model should follow.
bool ModelTest::settle(int got, const Errors& allowed, uint64_t need_bytes) {
  if (got == ENOSPC && enospc_plausible(need_bytes)) {
    enospc_count_++;
    return false;
  }
  bool ok =
      allowed.empty() ? got == 0 : std::find(allowed.begin(), allowed.end(), got) != allowed.end();
  std::string want;
  for (int e : allowed) want += errno_text(e) + " ";
  EXPECT_TRUE(ok) << log_.back() << ": got " << errno_text(got) << ", model expects "
                  << (allowed.empty() ? "success" : want);
  return ok && got == 0;
}

Errors ModelTest::create_errors(uint64_t dir, const std::string& name) const {
  if (!model_.is_dir(dir)) return {ENOTDIR};
  if (model_.child(dir, name)) return {EEXIST};
  return {};
}

// For read/write/truncate/fallocate on a node that may not be a regular file.
Errors ModelTest::data_errors(uint64_t ino, int symlink_errno) const {
  switch (model_.at(ino).kind) {
    case Kind::kDir:
      return {EISDIR};
    case Kind::kSymlink:
      return {symlink_errno};
    default:
      return {};
  }
}

// A name is a namespace prefix (user., trusted., security., system.) and
// something after it.
Errors ModelTest::xattr_name_errors(const std::string& name) const {
  if (name.empty()) return {EINVAL};
  if (name.size() > XATTR_NAME_MAX) return {ERANGE};
  for (std::string_view ns : {"user.", "trusted.", "security.", "system."}) {
    if (name.starts_with(ns)) return name.size() > ns.size() ? Errors{} : Errors{EINVAL};
  }
  return {EOPNOTSUPP};
}

// Every error that applies; the engine may report any one of them.
Errors ModelTest::rename_errors(const EntryRef& s, const EntryRef& d, uint32_t flags) const {
  uint64_t src = model_.child(s.dir, s.name), dst = model_.child(d.dir, d.name);
  if (!src) return {ENOENT};
  bool src_dir = model_.is_dir(src), dst_dir = dst && model_.is_dir(dst);
  Errors e;
  if (flags & RENAME_EXCHANGE) {
    if (!dst) return {ENOENT};
    if (src == dst) return {};
    if (src_dir && model_.in_subtree(src, d.dir)) e.push_back(EINVAL);
    if (dst_dir && model_.in_subtree(dst, s.dir)) e.push_back(EINVAL);
    return e;
  }
  if (dst && (flags & RENAME_NOREPLACE)) return {EEXIST};
  if (dst == src) return {};
  if (dst && src_dir && !dst_dir) e.push_back(ENOTDIR);
  if (dst && !src_dir && dst_dir) e.push_back(EISDIR);
  if (dst_dir && !model_.at(dst).children.empty()) e.push_back(ENOTEMPTY);
  if (src_dir && model_.in_subtree(src, d.dir)) e.push_back(EINVAL);
  return e;
}

// ---- operations ---------------------------------------------------------------------

void ModelTest::step() {
  using Op = void (ModelTest::*)();
  struct Weighted {
    int weight;
    Op op;
  };
  static const Weighted kOps[] = {
      {6, &ModelTest::op_create},         {3, &ModelTest::op_mkdir},
      {2, &ModelTest::op_symlink},        {16, &ModelTest::op_write},
      {4, &ModelTest::op_read},           {5, &ModelTest::op_truncate},
      {6, &ModelTest::op_fallocate},      {4, &ModelTest::op_copy},
      {3, &ModelTest::op_link},           {6, &ModelTest::op_unlink},
      {2, &ModelTest::op_rmdir},          {7, &ModelTest::op_rename},
      {3, &ModelTest::op_setxattr},       {2, &ModelTest::op_getxattr},
      {1, &ModelTest::op_removexattr},    {1, &ModelTest::op_listxattr},
      {2, &ModelTest::op_release_orphan}, {1, &ModelTest::op_release_linked},
      {2, &ModelTest::op_seek},
  };
  // Under space pressure, make room more often than not.
  if (free_before_ < total_pages_ / room_divisor_ && chance(0.4)) {
    return chance(0.5) ? op_unlink() : op_truncate();
  }
  int total = 0;
  for (const Weighted& w : kOps) total += w.weight;
  int x = int(uniform(0, total - 1));
  for (const Weighted& w : kOps) {
    if ((x -= w.weight) < 0) return (this->*w.op)();
  }
}

void ModelTest::op_create() {
  uint64_t dir = pick_dir_or_any();
  std::string name = pick_name();
  note("create %" PRIu64 "/%s", dir, shown(name).c_str());
  auto r = fs_->mknod(InodeNo{dir}, name, S_IFREG | 0644, 0, caller_);
  if (!settle(r.error(), create_errors(dir, name), kMetaBytes)) return;
  EXPECT_FALSE(model_.has(r->ino)) << "inode number " << r->ino << " handed out twice";
  EXPECT_EQ(r->nlink, 1u);
  EXPECT_EQ(r->size, 0u);
  model_.add(dir, name, r->ino, Node{Kind::kFile});
}

void ModelTest::op_mkdir() {
  uint64_t dir = pick_dir_or_any();
  std::string name = pick_name();
  note("mkdir %" PRIu64 "/%s", dir, shown(name).c_str());
  auto r = fs_->mkdir(InodeNo{dir}, name, 0755, caller_);
  if (!settle(r.error(), create_errors(dir, name), kMetaBytes)) return;
  EXPECT_FALSE(model_.has(r->ino)) << "inode number " << r->ino << " handed out twice";
  EXPECT_EQ(r->nlink, 2u);
  model_.add(dir, name, r->ino, Node{Kind::kDir});
}

// Targets from one byte to past PATH_MAX, some spanning pages.
void ModelTest::op_symlink() {
  uint64_t dir = pick_dir_or_any();
  std::string name = pick_name();
  size_t len = chance(0.8)   ? uniform(1, 100)
               : chance(0.8) ? uniform(100, 4095)
                             : uniform(4096, 5000);
  std::string target(len, 'x');
  for (char& c : target) c = char('a' + uniform(0, 25));
  note("symlink %" PRIu64 "/%s -> (%zu bytes)", dir, shown(name).c_str(), len);
  auto r = fs_->symlink(InodeNo{dir}, name, target, caller_);
  Errors errors = create_errors(dir, name);
  if (len >= PATH_MAX) errors.push_back(ENAMETOOLONG);
  if (!settle(r.error(), errors, len + kMetaBytes)) return;
  EXPECT_FALSE(model_.has(r->ino)) << "inode number " << r->ino << " handed out twice";
  Node n{Kind::kSymlink};
  n.data = target;
  model_.add(dir, name, r->ino, n);
  auto back = fs_->readlink(InodeNo{r->ino});
  EXPECT_TRUE(back.ok() && *back == target) << log_.back() << ": readlink differs";
}

void ModelTest::op_write() {
  uint64_t ino = pick_file_or_any();
  Node& n = model_.at(ino);
  uint64_t len = pick_length();
  uint64_t off = pick_offset(n.data.size(), len);
  std::string bytes = random_bytes(len);
  note("write ino %" PRIu64 " off %" PRIu64 " len %" PRIu64 " (size %zu)", ino, off, len,
       n.data.size());
  auto r = fs_->write(InodeNo{ino}, off, bytes.data(), bytes.size());
  if (!settle(r.error(), data_errors(ino, EINVAL), len + 2 * ps_))
    return check_range(ino, off, len);
  size_t done = *r;
  EXPECT_LE(done, len);
  EXPECT_GT(done, 0u);
  if (done < len) {
    EXPECT_TRUE(enospc_plausible(len)) << log_.back() << ": short write of " << done;
    enospc_count_++;
  }
  store(n.data, off, std::string_view(bytes).substr(0, done));
  check_range(ino, off, len);
}

void ModelTest::op_read() {
  uint64_t ino = pick_file_or_any();
  const Node& n = model_.at(ino);
  uint64_t len = pick_length();
  uint64_t off = uniform(0, n.data.size() + ps_);
  note("read ino %" PRIu64 " off %" PRIu64 " len %" PRIu64, ino, off, len);
  std::string buf(len, '\0');
  auto r = fs_->read(InodeNo{ino}, off, len, buf.data());
  Errors errors = n.kind == Kind::kDir ? Errors{EISDIR} : Errors{};
  if (n.kind == Kind::kSymlink || !settle(r.error(), errors, 0)) return;
  std::string want = off < n.data.size() ? n.data.substr(off, len) : "";
  buf.resize(*r);
  EXPECT_EQ(first_difference(buf, want), -1)
      << log_.back() << ": read " << *r << " bytes, model has " << want.size();
}

// Down to zero, down, up, or to just around a page boundary.
void ModelTest::op_truncate() {
  uint64_t ino = pick_file_or_any();
  Node& n = model_.at(ino);
  uint64_t size = n.data.size(), to = 0;
  switch (uniform(0, 3)) {
    case 0:
      to = 0;
      break;
    case 1:
      to = uniform(0, size);
      break;
    case 2:
      to = size + uniform(1, 1 << 20);
      break;
    default: {
      uint64_t boundary = uniform(0, size / ps_ + 1) * ps_;
      to = boundary + uniform(0, 2) - std::min<uint64_t>(boundary, 1);
    }
  }
  to = std::min(to, kMaxModelFileBytes);
  note("truncate ino %" PRIu64 " from %" PRIu64 " to %" PRIu64, ino, size, to);
  SetAttr change;
  change.set_size = true;
  change.size = to;
  auto r = fs_->setattr(InodeNo{ino}, change);
  if (!settle(r.error(), data_errors(ino, EINVAL), kMetaBytes)) return;
  EXPECT_EQ(r->size, to);
  n.data.resize(to, '\0');
  check_range(ino, to - std::min<uint64_t>(to, ps_ + 7), 2 * ps_);
}

void ModelTest::op_fallocate() {
  static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
  uint64_t ino = pick_file_or_any();
  Node& n = model_.at(ino);
  int mode = kModes[uniform(0, 4)];
  uint64_t len = chance(0.2) ? uniform(1, 2 << 20) : pick_length();
  uint64_t off = pick_offset(n.data.size(), std::min(len, kMaxModelFileBytes / 2));
  len = std::min(len, kMaxModelFileBytes - off);
  note("fallocate ino %" PRIu64 " mode %#x off %" PRIu64 " len %" PRIu64 " (size %zu)", ino, mode,
       off, len, n.data.size());
  int got = fs_->fallocate(InodeNo{ino}, mode, off, len).error();
  bool allocates = !(mode & FALLOC_FL_PUNCH_HOLE);
  if (!settle(got, data_errors(ino, ENODEV), allocates ? len + kMetaBytes : kMetaBytes)) {
    if (got == ENOSPC && (mode & FALLOC_FL_ZERO_RANGE)) absorb_failed_zero_range(ino, off, len);
    return check_range(ino, off, len);
  }
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) zero_range(n.data, off, len);
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > n.data.size()) n.data.resize(off + len, '\0');
  check_range(ino, off, len);
}

// A zero-range that ran out of space may have zeroed part of its range: every
// byte there must read as before or as zero; the model takes what it reads.
void ModelTest::absorb_failed_zero_range(uint64_t ino, uint64_t off, uint64_t len) {
  std::string& data = model_.at(ino).data;
  if (off >= data.size()) return;
  len = std::min<uint64_t>(len, data.size() - off);
  std::string now(len, '\0');
  auto r = fs_->read(InodeNo{ino}, off, len, now.data());
  ASSERT_TRUE(r.ok() && *r == len);
  for (uint64_t i = 0; i < len; i++) {
    ASSERT_TRUE(now[i] == 0 || now[i] == data[off + i])
        << log_.back() << ": byte " << off + i << " neither old nor zero";
  }
  data.replace(off, len, now);
}

// Same file or another; overlapping ranges within one file are EINVAL. The
// copy may be shorter than asked: the source is as long as it was at the start.
void ModelTest::op_copy() {
  uint64_t in = pick_file_or_any();
  uint64_t out = chance(0.3) ? in : pick_file_or_any();
  if (model_.at(in).kind != Kind::kFile || model_.at(out).kind != Kind::kFile) return;
  uint64_t len = chance(0.1) ? uniform(1 << 20, 3 << 20) : pick_length();  // some span chunks
  uint64_t in_size = model_.at(in).data.size();
  uint64_t off_in = uniform(0, in_size + 100);
  uint64_t off_out = pick_offset(model_.at(out).data.size(), len);
  note("copy ino %" PRIu64 " off %" PRIu64 " -> ino %" PRIu64 " off %" PRIu64 " len %" PRIu64, in,
       off_in, out, off_out, len);
  auto r = fs_->copy_file_range(InodeNo{in}, off_in, InodeNo{out}, off_out, len);
  bool overlap = in == out && off_in < off_out + len && off_out < off_in + len;
  if (!settle(r.error(), overlap ? Errors{EINVAL} : Errors{}, len + 2 * ps_)) {
    return check_range(out, off_out, len);
  }
  uint64_t want = off_in >= in_size ? 0 : std::min(len, in_size - off_in);
  if (*r < want) {
    EXPECT_TRUE(enospc_plausible(len)) << log_.back() << ": short copy " << *r;
  }
  EXPECT_LE(*r, want);
  std::string bytes = model_.at(in).data.substr(std::min(off_in, in_size), *r);
  store(model_.at(out).data, off_out, bytes);
  check_range(out, off_out, len);
}

void ModelTest::op_link() {
  uint64_t ino = pick_any();
  uint64_t dir = pick_dir_or_any();
  std::string name = pick_name();
  note("link ino %" PRIu64 " as %" PRIu64 "/%s", ino, dir, shown(name).c_str());
  auto r = fs_->link(InodeNo{ino}, InodeNo{dir}, name);
  Errors errors = create_errors(dir, name);
  if (model_.is_dir(ino)) errors.push_back(EPERM);
  if (model_.orphans().count(ino)) errors.push_back(ENOENT);
  if (!settle(r.error(), errors, kMetaBytes)) return;
  model_.link(dir, name, ino);
  EXPECT_EQ(r->nlink, model_.nlink(ino));
}

void ModelTest::op_unlink() {
  EntryRef e = pick_entry();
  uint64_t ino = model_.child(e.dir, e.name);
  note("unlink %" PRIu64 "/%s", e.dir, shown(e.name).c_str());
  int got = fs_->unlink(InodeNo{e.dir}, e.name, caller_).error();
  Errors errors = !ino ? Errors{ENOENT} : model_.is_dir(ino) ? Errors{EISDIR} : Errors{};
  if (!settle(got, errors, kMetaBytes)) return;
  model_.unlink(e.dir, e.name);
  EXPECT_EQ(fs_->lookup(InodeNo{e.dir}, e.name).error(), ENOENT);
  drop_orphan_maybe(ino);
}

// The kernel forgets an unlinked inode at once, or keeps it open a while.
void ModelTest::drop_orphan_maybe(uint64_t ino) {
  if (!model_.orphans().count(ino)) return;
  auto a = fs_->getattr(InodeNo{ino});
  ASSERT_TRUE(a.ok()) << log_.back() << ": orphan " << ino << " gone before release";
  EXPECT_EQ(a->nlink, 0u);
  if (chance(0.6)) release(ino);
}

void ModelTest::release(uint64_t ino) {
  ASSERT_TRUE(fs_->release_inode(InodeNo{ino}).ok());
  EXPECT_EQ(fs_->getattr(InodeNo{ino}).error(), ENOENT) << "released inode " << ino << " lives";
  model_.forget(ino);
}

void ModelTest::op_rmdir() {
  EntryRef e = pick_entry();
  uint64_t ino = model_.child(e.dir, e.name);
  note("rmdir %" PRIu64 "/%s", e.dir, shown(e.name).c_str());
  int got = fs_->rmdir(InodeNo{e.dir}, e.name, caller_).error();
  Errors errors;
  if (!ino)
    errors = {ENOENT};
  else if (!model_.is_dir(ino))
    errors = {ENOTDIR};
  else if (!model_.at(ino).children.empty())
    errors = {ENOTEMPTY};
  if (!settle(got, errors, kMetaBytes)) return;
  model_.unlink(e.dir, e.name);
  ASSERT_TRUE(fs_->release_inode(InodeNo{ino}).ok());
  EXPECT_EQ(fs_->getattr(InodeNo{ino}).error(), ENOENT) << "removed directory lives";
}

void ModelTest::op_rename() {
  EntryRef src = pick_entry();
  EntryRef dst = chance(0.5) ? pick_entry() : EntryRef{pick(model_.dirs()), pick_name()};
  uint32_t flags = chance(0.5) ? 0 : chance(0.4) ? RENAME_NOREPLACE : RENAME_EXCHANGE;
  note("rename %" PRIu64 "/%s -> %" PRIu64 "/%s flags %u", src.dir, shown(src.name).c_str(),
       dst.dir, shown(dst.name).c_str(), flags);
  int got =
      fs_->rename(InodeNo{src.dir}, src.name, InodeNo{dst.dir}, dst.name, flags, caller_).error();
  if (!settle(got, rename_errors(src, dst, flags), kMetaBytes)) return;
  apply_rename(src, dst, flags);
}

void ModelTest::apply_rename(const EntryRef& s, const EntryRef& d, uint32_t flags) {
  uint64_t src = model_.child(s.dir, s.name), dst = model_.child(d.dir, d.name);
  if (src == dst) return;
  if (flags & RENAME_EXCHANGE) {
    model_.at(s.dir).children[s.name] = dst;
    model_.at(d.dir).children[d.name] = src;
    if (model_.is_dir(src)) model_.at(src).parent = d.dir;
    if (model_.is_dir(dst)) model_.at(dst).parent = s.dir;
    return;
  }
  if (dst) {
    bool dst_dir = model_.is_dir(dst);
    model_.unlink(d.dir, d.name);
    if (dst_dir) {
      ASSERT_TRUE(fs_->release_inode(InodeNo{dst}).ok());
    }
    drop_orphan_maybe(dst);
  }
  model_.at(s.dir).children.erase(s.name);
  model_.at(d.dir).children[d.name] = src;
  if (model_.is_dir(src)) model_.at(src).parent = d.dir;
  auto a = fs_->lookup(InodeNo{d.dir}, d.name);
  EXPECT_TRUE(a.ok() && a->ino == src) << log_.back() << ": new name does not lead to the source";
}

// Names in and out of Linux's namespaces; values up to, at and past the
// largest the format keeps inline, and past XATTR_SIZE_MAX.
void ModelTest::op_setxattr() {
  static const std::vector<std::string> kValid = {
      "user.a", "user.b", "user.c", "trusted.t", "security.s", "user." + std::string(250, 'x')};
  static const std::vector<std::string> kInvalid = {"", "user.", "other.o",
                                                    std::string(XATTR_NAME_MAX + 1, 'y')};
  uint64_t ino = pick_any();
  std::string name = chance(0.9) ? pick(kValid) : pick(kInvalid);
  size_t max = max_xattr_value(ps_, name.size());
  size_t len = chance(0.8)   ? uniform(0, 100)
               : chance(0.8) ? uniform(0, max)
               : chance(0.8) ? max + uniform(1, 9)
                             : XATTR_SIZE_MAX + 1;
  int flags = chance(0.6) ? 0 : chance(0.5) ? XATTR_CREATE : XATTR_REPLACE;
  note("setxattr ino %" PRIu64 " %s len %zu flags %d", ino, shown(name).c_str(), len, flags);
  std::string value = random_bytes(len);
  int got = fs_->setxattr(InodeNo{ino}, name, value, flags).error();
  Node& n = model_.at(ino);
  if (!settle(got, setxattr_errors(n, name, len, flags), kMetaBytes)) return;
  n.xattrs[name] = value;
}

// A value too large to keep inline is ENOSPC, as on ext4.
Errors ModelTest::setxattr_errors(const Node& n, const std::string& name, size_t len,
                                  int flags) const {
  Errors e = xattr_name_errors(name);
  if (!e.empty()) return e;
  if (len > XATTR_SIZE_MAX) return {E2BIG};
  if (len > max_xattr_value(ps_, name.size())) return {ENOSPC};
  bool exists = n.xattrs.count(name) != 0;
  if (exists && (flags & XATTR_CREATE)) return {EEXIST};
  if (!exists && (flags & XATTR_REPLACE)) return {ENODATA};
  return {};
}

void ModelTest::op_getxattr() {
  uint64_t ino = pick_any();
  const Node& n = model_.at(ino);
  std::string name = n.xattrs.empty() || chance(0.2) ? "user.a" : n.xattrs.begin()->first;
  note("getxattr ino %" PRIu64 " %s", ino, shown(name).c_str());
  auto r = fs_->getxattr(InodeNo{ino}, name);
  bool exists = n.xattrs.count(name) != 0;
  if (!settle(r.error(), exists ? Errors{} : Errors{ENODATA}, 0)) return;
  EXPECT_EQ(*r, n.xattrs.at(name)) << log_.back();
}

void ModelTest::op_removexattr() {
  uint64_t ino = pick_any();
  Node& n = model_.at(ino);
  std::string name = n.xattrs.empty() || chance(0.2) ? "user.b" : n.xattrs.rbegin()->first;
  note("removexattr ino %" PRIu64 " %s", ino, shown(name).c_str());
  int got = fs_->removexattr(InodeNo{ino}, name).error();
  bool exists = n.xattrs.count(name) != 0;
  if (!settle(got, exists ? Errors{} : Errors{ENODATA}, kMetaBytes)) return;
  n.xattrs.erase(name);
}

void ModelTest::op_listxattr() {
  uint64_t ino = pick_any();
  note("listxattr ino %" PRIu64, ino);
  verify_xattrs(ino, model_.at(ino));
}

// An open, unlinked file: still readable until the last reference goes.
void ModelTest::op_release_orphan() {
  if (model_.orphans().empty()) return;
  uint64_t ino = *model_.orphans().begin();
  note("release orphan ino %" PRIu64, ino);
  verify_content(ino, model_.at(ino).data);
  release(ino);
}

// The kernel forgetting a linked inode changes nothing.
void ModelTest::op_release_linked() {
  uint64_t ino = pick_any();
  if (model_.orphans().count(ino)) return;
  note("release linked ino %" PRIu64, ino);
  ASSERT_TRUE(fs_->release_inode(InodeNo{ino}).ok());
  auto a = fs_->getattr(InodeNo{ino});
  ASSERT_TRUE(a.ok()) << log_.back() << ": a linked inode died on release";
  EXPECT_EQ(a->nlink, model_.nlink(ino));
}

void ModelTest::op_seek() {
  std::vector<uint64_t> files = model_.of_kind(Kind::kFile);
  uint64_t ino = pick(files.empty() ? std::vector<uint64_t>{kRootInode.value} : files);
  if (!model_.has(ino) || model_.at(ino).kind != Kind::kFile) return;
  note("seek map of ino %" PRIu64, ino);
  verify_holes(ino, model_.at(ino).data);
}

// ---- verification -------------------------------------------------------------------

// Reads [off-100, off+len+100) and the size, and compares them with the model.
void ModelTest::check_range(uint64_t ino, uint64_t off, uint64_t len) {
  const Node& n = model_.at(ino);
  if (n.kind != Kind::kFile) return;
  auto a = fs_->getattr(InodeNo{ino});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, n.data.size()) << log_.back() << ": size differs";
  uint64_t from = off - std::min<uint64_t>(off, 100);
  uint64_t to = std::min<uint64_t>(off + len + 100, n.data.size());
  if (from >= to) return;
  std::string got(to - from, '\0');
  auto r = fs_->read(InodeNo{ino}, from, got.size(), got.data());
  ASSERT_TRUE(r.ok()) << log_.back() << ": read " << errno_text(r.error());
  got.resize(*r);
  int64_t at = first_difference(got, std::string_view(n.data).substr(from, to - from));
  EXPECT_EQ(at, -1) << log_.back() << ": bytes differ from offset " << from + at;
}

void ModelTest::verify_tree() {
  for (uint64_t dir : model_.dirs()) verify_dir(dir);
  for (const auto& [ino, n] : model_.nodes()) {
    verify_node(ino, n);
    if (HasFailure()) return;
  }
}

// Reads the directory a few entries at a time, resuming from cookies.
std::map<std::string, std::pair<uint64_t, uint32_t>> ModelTest::readdir_all(uint64_t dir) {
  std::map<std::string, std::pair<uint64_t, uint32_t>> out;
  uint64_t cookie = 0;
  const size_t batch = uniform(1, 8);
  for (int round = 0; round < 10000; round++) {
    size_t got = 0;
    Status st = fs_->readdir(InodeNo{dir}, cookie, [&](const DirEntry& e) {
      if (got == batch) return false;
      EXPECT_TRUE(out.emplace(std::string(e.name), std::pair(e.ino, e.type)).second)
          << "directory " << dir << " lists " << e.name << " twice";
      cookie = e.cookie;
      got++;
      return true;
    });
    EXPECT_TRUE(st.ok()) << "readdir " << dir << ": " << errno_text(st.error());
    if (got < batch) break;
  }
  return out;
}

void ModelTest::verify_dir(uint64_t dir) {
  const Node& n = model_.at(dir);
  auto listed = readdir_all(dir);
  std::set<std::string> names, want;
  for (const auto& [name, v] : listed) names.insert(name);
  for (const auto& [name, c] : n.children) want.insert(name);
  EXPECT_EQ(names, want) << "directory " << dir << " lists other names";
  for (const auto& [name, c] : n.children) {
    auto it = listed.find(name);
    if (it == listed.end()) continue;
    EXPECT_EQ(it->second.first, c) << dir << "/" << shown(name) << " names another inode";
    uint32_t type = model_.is_dir(c) ? DT_DIR : model_.at(c).kind == Kind::kFile ? DT_REG : DT_LNK;
    EXPECT_EQ(it->second.second, type) << dir << "/" << shown(name) << " has another type";
  }
  auto up = fs_->lookup(InodeNo{dir}, "..");
  EXPECT_TRUE(up.ok() && up->ino == n.parent) << "directory " << dir << ": .. is wrong";
}

void ModelTest::verify_node(uint64_t ino, const Node& n) {
  auto a = fs_->getattr(InodeNo{ino});
  ASSERT_TRUE(a.ok()) << "inode " << ino << ": " << errno_text(a.error());
  uint32_t type = n.kind == Kind::kDir ? S_IFDIR : n.kind == Kind::kFile ? S_IFREG : S_IFLNK;
  EXPECT_EQ(a->mode & S_IFMT, type) << "inode " << ino;
  EXPECT_EQ(a->nlink, model_.nlink(ino)) << "inode " << ino;
  verify_xattrs(ino, n);
  if (n.kind == Kind::kSymlink) {
    auto t = fs_->readlink(InodeNo{ino});
    EXPECT_TRUE(t.ok() && *t == n.data) << "symlink " << ino << " points elsewhere";
  }
  if (n.kind != Kind::kFile) return;
  EXPECT_EQ(a->size, n.data.size()) << "file " << ino;
  verify_content(ino, n.data);
  verify_holes(ino, n.data);
  verify_blocks(*a, n.data);
}

void ModelTest::verify_content(uint64_t ino, const std::string& data) {
  constexpr uint64_t kChunk = 1 << 20;
  std::string buf;
  for (uint64_t off = 0; off <= data.size(); off += kChunk) {
    buf.assign(kChunk, '\0');
    auto r = fs_->read(InodeNo{ino}, off, kChunk, buf.data());
    ASSERT_TRUE(r.ok()) << "file " << ino << " read at " << off << ": " << errno_text(r.error());
    buf.resize(*r);
    int64_t at = first_difference(buf, std::string_view(data).substr(off, kChunk));
    ASSERT_EQ(at, -1) << "file " << ino << " differs from the model at offset " << off + at;
  }
}

// Walks data and holes with SEEK_DATA/SEEK_HOLE: no non-zero byte may lie in
// a hole, and every answer stays inside the file.
void ModelTest::verify_holes(uint64_t ino, const std::string& data) {
  const uint64_t size = data.size();
  uint64_t pos = 0;
  for (int round = 0; pos < size && round < 100000; round++) {
    auto d = fs_->lseek(InodeNo{ino}, pos, SEEK_DATA);
    if (!d.ok()) {
      ASSERT_EQ(d.error(), ENXIO) << "file " << ino << " SEEK_DATA " << pos;
      ASSERT_TRUE(all_zero(data, pos, size)) << "file " << ino << ": data after last SEEK_DATA";
      return;
    }
    ASSERT_TRUE(*d >= pos && *d < size) << "file " << ino << " SEEK_DATA " << pos << " = " << *d;
    ASSERT_TRUE(all_zero(data, pos, *d))
        << "file " << ino << ": SEEK_DATA " << pos << " skipped data before " << *d;
    auto h = fs_->lseek(InodeNo{ino}, *d, SEEK_HOLE);
    ASSERT_TRUE(h.ok() && *h > *d && *h <= size)
        << "file " << ino << " SEEK_HOLE " << *d << " = " << (h.ok() ? *h : 0);
    pos = *h;
  }
  EXPECT_EQ(fs_->lseek(InodeNo{ino}, size, SEEK_DATA).error(), ENXIO) << "file " << ino;
}

// Every page holding a non-zero byte must be allocated.
void ModelTest::verify_blocks(const Attr& a, const std::string& data) {
  uint64_t needed = 0;
  for (uint64_t off = 0; off < data.size(); off += ps_) needed += !all_zero(data, off, off + ps_);
  EXPECT_GE(a.blocks_512 * 512, needed * ps_) << "file " << a.ino << " has too few blocks";
}

void ModelTest::verify_xattrs(uint64_t ino, const Node& n) {
  auto list = fs_->listxattr(InodeNo{ino});
  ASSERT_TRUE(list.ok()) << "listxattr " << ino;
  std::multiset<std::string> names, want;
  for (size_t at = 0; at < list->size();) {
    size_t end = list->find('\0', at);
    ASSERT_NE(end, std::string::npos) << "listxattr " << ino << ": unterminated name";
    names.insert(list->substr(at, end - at));
    at = end + 1;
  }
  for (const auto& [name, value] : n.xattrs) {
    want.insert(name);
    auto v = fs_->getxattr(InodeNo{ino}, name);
    EXPECT_TRUE(v.ok() && *v == value) << "inode " << ino << " xattr " << shown(name);
  }
  EXPECT_EQ(names, want) << "inode " << ino << " lists other xattrs";
}

// ---- the variants -------------------------------------------------------------------

TEST_F(ModelTest, RandomOperationsMatchModelWithAConstantlyEvictingCache) {
  run(Variant{.device_bytes = 256ull << 20,
              .cache_bytes = 1ull << 20,
              .default_ops = 5000,
              .room_divisor = 6,
              .full_divisor = 0});
}

TEST_F(ModelTest, RandomOperationsMatchModelWithALargeCache) {
  run(Variant{.device_bytes = 256ull << 20,
              .cache_bytes = 64ull << 20,
              .default_ops = 5000,
              .room_divisor = 6,
              .full_divisor = 0});
}

TEST_F(ModelTest, RandomOperationsMatchModelOnANearlyFullDevice) {
  run(Variant{.device_bytes = 24ull << 20,
              .cache_bytes = 4ull << 20,
              .default_ops = 6000,
              .room_divisor = 1000,
              .full_divisor = 50});
}

}  // namespace
}  // namespace pagefs
