#include "tests/fuzz/write_phase.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace pagefs::fuzz {
namespace {

const Caller kCaller{1000, 1000};

class Writes {
 public:
  Writes(FileSystem& fs, const Oracle& oracle, const std::set<std::string>& suspects, Rng& rng)
      : fs_(fs), rng_(rng) {
    for (const auto& [path, ino] : oracle.paths()) {
      if (path != "/") paths_.push_back(path);
    }
    for (const std::string& path : suspects) {
      if (path != "/") suspects_.push_back(path);
    }
  }

  uint64_t failures() const { return failures_; }

  void run_one() {
    switch (rng_.below(10)) {
      case 0:
        return create_and_write();
      case 1:
      case 2:
        return overwrite();
      case 3:
        return truncate();
      case 4:
        return rename();
      case 5:
        return unlink();
      case 6:
        return mkdir_rmdir();
      case 7:
        return fallocate();
      case 8:
        return xattrs();
      default:
        return note(fs_.fsync(kRootInode, rng_.chance(0.5)));
    }
  }

 private:
  // A path to work on: a suspect half of the time, if there are any.
  const std::string& any_path() {
    return !suspects_.empty() && rng_.chance(0.5) ? rng_.pick(suspects_) : rng_.pick(paths_);
  }

  // The inode at `path`, by lookups from the root.
  Result<InodeNo> resolve(const std::string& path) {
    InodeNo ino = kRootInode;
    for (size_t at = 1; at < path.size();) {
      size_t end = std::min(path.find('/', at), path.size());
      PAGEFS_ASSIGN(Attr a, fs_.lookup(ino, path.substr(at, end - at)));
      ino = InodeNo{a.ino};
      at = end + 1;
    }
    return ino;
  }

  // A known path with its parent resolved, split into (parent, name).
  bool pick(std::string* path, InodeNo* parent, std::string* name) {
    *path = any_path();
    size_t slash = path->rfind('/');
    *name = path->substr(slash + 1);
    auto dir = resolve(slash == 0 ? "/" : path->substr(0, slash));
    if (!dir.ok()) return note(dir.error()), false;
    *parent = *dir;
    return true;
  }

  void note(int err) { failures_ += err != 0; }
  template <class T>
  void note(const Result<T>& r) {
    note(r.ok() ? 0 : r.error());
  }

  void write_bytes(InodeNo ino, uint64_t off, size_t len) {
    std::string data = pattern(rng_.next(), len);
    note(fs_.write(ino, off, data.data(), data.size()));
  }

  void create_and_write() {
    std::string name = "fz-" + std::to_string(serial_++);
    auto a = fs_.mknod(kRootInode, name, S_IFREG | 0644, 0, kCaller);
    note(a);
    if (a.ok()) write_bytes(InodeNo{a->ino}, rng_.below(64 << 10), rng_.range(1, 200 << 10));
  }

  void overwrite() {
    auto ino = resolve(any_path());
    if (!ino.ok()) return note(ino.error());
    write_bytes(*ino, rng_.below(256 << 10), rng_.range(1, 40 << 10));
  }

  void truncate() {
    auto ino = resolve(any_path());
    if (!ino.ok()) return note(ino.error());
    SetAttr change;
    change.set_size = true;
    change.size = rng_.below(300 << 10);
    note(fs_.setattr(*ino, change));
  }

  void rename() {
    std::string path, name;
    InodeNo dir;
    if (!pick(&path, &dir, &name)) return;
    if (rng_.chance(0.5)) {
      note(fs_.rename(dir, name, kRootInode, "fz-moved-" + std::to_string(serial_++), 0, kCaller));
      return;
    }
    std::string over, over_name;
    InodeNo over_dir;
    if (pick(&over, &over_dir, &over_name)) {
      note(fs_.rename(dir, name, over_dir, over_name, 0, kCaller));
    }
  }

  void unlink() {
    std::string path, name;
    InodeNo dir;
    if (!pick(&path, &dir, &name)) return;
    auto a = fs_.lookup(dir, name);
    Status st = fs_.unlink(dir, name, kCaller);
    note(st);
    // The kernel forgets an inode once its last name is gone and no one holds it.
    if (st.ok() && a.ok() && a->nlink <= 1) note(fs_.release_inode(InodeNo{a->ino}));
  }

  void mkdir_rmdir() {
    if (rng_.chance(0.5)) {
      std::string name = "fzdir-" + std::to_string(serial_++);
      auto d = fs_.mkdir(kRootInode, name, 0755, kCaller);
      note(d);
      if (d.ok()) note(fs_.mknod(InodeNo{d->ino}, "inner", S_IFREG | 0600, 0, kCaller));
      return;
    }
    std::string path, name;
    InodeNo dir;
    if (pick(&path, &dir, &name)) note(fs_.rmdir(dir, name, kCaller));
  }

  void fallocate() {
    auto ino = resolve(any_path());
    if (!ino.ok()) return note(ino.error());
    static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 FALLOC_FL_ZERO_RANGE};
    note(fs_.fallocate(*ino, kModes[rng_.below(4)], rng_.below(200 << 10),
                       rng_.range(1, 100 << 10)));
  }

  void xattrs() {
    auto ino = resolve(any_path());
    if (!ino.ok()) return note(ino.error());
    if (rng_.chance(0.3)) return note(fs_.removexattr(*ino, "user.a"));
    note(fs_.setxattr(*ino, "user.fz", pattern(rng_.next(), rng_.range(1, 300)), 0));
  }

  FileSystem& fs_;
  Rng& rng_;
  std::vector<std::string> paths_;
  std::vector<std::string> suspects_;
  uint64_t failures_ = 0;
  int serial_ = 0;
};

}  // namespace

uint64_t run_writes(FileSystem& fs, const Oracle& oracle, const std::set<std::string>& suspects,
                    Rng& rng, int count) {
  Writes w(fs, oracle, suspects, rng);
  for (int i = 0; i < count; i++) w.run_one();
  return w.failures();
}

}  // namespace pagefs::fuzz
