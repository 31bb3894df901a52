// The fixture of the model-based test: setup, random choices, judging results
// and verification. The operations are in model_ops.cc.
#include "tests/engine/model_harness.h"

#include <dirent.h>
#include <fcntl.h>
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
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/fault_device.h"
#include "engine/formatter.h"
#include "tests/test_env.h"

namespace pagefs::test::model {
namespace {

constexpr uint64_t kMaxWriteBytes = 300ull << 10;
// ENOSPC is accepted when the space free before the call was within this of what it needs
// (tree pages, the allocator's metadata reserve and fragmentation all take some).
constexpr uint64_t kEnospcSlackBytes = 4ull << 20;
constexpr uint64_t kBallastEvery = 50;
constexpr size_t kLogLines = 60;

}  // namespace

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

int64_t first_difference(std::string_view a, std::string_view b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (ia == a.end() && ib == b.end()) return -1;
  return ia - a.begin();
}

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

}  // namespace pagefs::test::model
