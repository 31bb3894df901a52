// The operations of the model-based test: each runs one engine call on a
// random target, judges its outcome against the model and makes the model
// follow. Declared in model_harness.h.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/xattr_item.h"
#include "tests/engine/model_harness.h"

namespace pagefs::test::model {

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
// largest the format keeps inline (larger ones go to data pages), up to
// XATTR_SIZE_MAX and past it.
void ModelTest::op_setxattr() {
  static const std::vector<std::string> kValid = {
      "user.a", "user.b", "user.c", "trusted.t", "security.s", "user." + std::string(250, 'x')};
  static const std::vector<std::string> kInvalid = {"", "user.", "other.o",
                                                    std::string(XATTR_NAME_MAX + 1, 'y')};
  uint64_t ino = pick_any();
  std::string name = chance(0.9) ? pick(kValid) : pick(kInvalid);
  size_t max = max_inline_xattr_value(ps_, name.size(), true);
  size_t len = chance(0.8)   ? uniform(0, 100)
               : chance(0.7) ? uniform(0, max)
               : chance(0.5) ? max + uniform(0, 9)
               : chance(0.8) ? uniform(max, XATTR_SIZE_MAX)
                             : XATTR_SIZE_MAX + 1;
  int flags = chance(0.6) ? 0 : chance(0.5) ? XATTR_CREATE : XATTR_REPLACE;
  note("setxattr ino %" PRIu64 " %s len %zu flags %d", ino, shown(name).c_str(), len, flags);
  std::string value = random_bytes(len);
  int got = fs_->setxattr(InodeNo{ino}, name, value, flags).error();
  Node& n = model_.at(ino);
  if (!settle(got, setxattr_errors(n, name, len, flags), len + kMetaBytes)) return;
  n.xattrs[name] = value;
}

// Any value up to XATTR_SIZE_MAX is kept (in data pages when it does not fit
// inline).
Errors ModelTest::setxattr_errors(const Node& n, const std::string& name, size_t len,
                                  int flags) const {
  Errors e = xattr_name_errors(name);
  if (!e.empty()) return e;
  if (len > XATTR_SIZE_MAX) return {E2BIG};
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

}  // namespace pagefs::test::model
