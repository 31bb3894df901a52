#include "tests/fuzz/tree_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace pagefs::fuzz {
namespace {

constexpr int kMaxDepth = 32;
constexpr uint64_t kMaxEntriesPerDir = 20000;
constexpr uint64_t kMaxEntries = 100000;
constexpr size_t kReadChunk = 128 << 10;
constexpr uint64_t kReadSlack = 1 << 20;
constexpr uint64_t kMaxWrongReports = 3;  // per image; the rest are counted
constexpr size_t kNoMismatch = SIZE_MAX;

std::string errno_text(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : std::to_string(e);
}

// The name with unprintable bytes as \xNN, at most 80 bytes of it, for messages.
std::string printable(const std::string& s) {
  constexpr size_t kMax = 80;
  std::string out;
  for (unsigned char c : s.substr(0, kMax)) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return s.size() > kMax ? out + "...(" + std::to_string(s.size()) + " bytes)" : out;
}

// First offset of `got` that `want` does not explain: bytes both have must be
// equal, and bytes past the end of `want` must be zeros. kNoMismatch if none.
size_t first_mismatch(const std::string& got, const std::string& want) {
  size_t n = std::min(got.size(), want.size());
  auto diff = std::mismatch(got.begin(), got.begin() + n, want.begin());
  if (diff.first != got.begin() + n) return size_t(diff.first - got.begin());
  auto nonzero = std::find_if(got.begin() + n, got.end(), [](char c) { return c != 0; });
  return nonzero == got.end() ? kNoMismatch : size_t(nonzero - got.begin());
}

// Whether some version explains `got`; if not, `detail` describes the
// difference from the version that explains the longest prefix.
template <class Field>
bool explained(const std::string& got, const OracleInode& o, Field field, std::string* detail) {
  size_t best = 0;
  const std::string* best_want = nullptr;
  for (const Version& v : o.versions) {
    size_t at = first_mismatch(got, field(v));
    if (at == kNoMismatch) return true;
    if (best_want == nullptr || at > best) best = at, best_want = &field(v);
  }
  if (best_want == nullptr) return true;
  char buf[160];
  std::snprintf(buf, sizeof buf, "at offset %zu got 0x%02x, want 0x%02x (got %zu bytes, want %zu)",
                best, uint8_t(got[best]),
                best < best_want->size() ? uint8_t((*best_want)[best]) : 0, got.size(),
                best_want->size());
  *detail = buf;
  return false;
}

}  // namespace

TreeReader::TreeReader(FileSystem& fs, const Oracle& oracle, bool lies, Rng& rng, Channel& channel)
    : fs_(fs), oracle_(oracle), lies_allowed_(lies), rng_(rng), channel_(channel) {}

bool TreeReader::failed(const std::string& what, int err) {
  errors_++;
  suspects_.insert(current_path_);
  if (first_error_.empty()) first_error_ = what + ": " + errno_text(err);
  return false;
}

void TreeReader::wrong(const std::string& what) {
  suspects_.insert(current_path_);
  if (lies_allowed_) {
    lies_++;
  } else if (wrong_reported_++ < kMaxWrongReports) {
    size_t colon = what.find(':');
    channel_.finding(what.substr(0, colon), what.substr(colon + 2));
  }
}

void TreeReader::read_all() {
  current_path_ = "/";
  auto root = fs_.getattr(kRootInode);
  if (!root.ok()) {
    failed("getattr /", root.error());
    return;
  }
  check_xattrs(*root, oracle_.find(kRootInode.value), "/");
  walk(kRootInode.value, "/", 0);
}

void TreeReader::walk(uint64_t dir, const std::string& path, int depth) {
  if (depth > kMaxDepth || !entered_.insert(dir).second) return;
  current_path_ = path;
  std::vector<std::string> names;
  Status st = fs_.readdir(InodeNo{dir}, 0, [&](const DirEntry& e) {
    names.emplace_back(e.name);
    return names.size() < kMaxEntriesPerDir;
  });
  if (!st.ok()) failed("readdir " + path, st.error());
  for (const std::string& name : names) {
    if (++entries_ > kMaxEntries) return;
    visit(dir, name, (path == "/" ? "/" : path + "/") + name, depth);
  }
}

void TreeReader::visit(uint64_t dir, const std::string& name, const std::string& path, int depth) {
  if (!oracle_.knows_name(dir, name)) {
    wrong("wrong-name: readdir of inode " + std::to_string(dir) + " returned \"" + printable(name) +
          "\", a name it never held");
  }
  auto a = fs_.lookup(InodeNo{dir}, name);
  if (!a.ok()) return (void)failed("lookup " + printable(path), a.error());
  auto again = fs_.getattr(InodeNo{a->ino});
  if (!again.ok()) failed("getattr " + printable(path), again.error());
  const OracleInode* o = oracle_.find(a->ino);
  if (o != nullptr && S_ISREG(a->mode) && o->type == S_IFREG) check_file(*a, *o, path);
  if (o != nullptr && S_ISLNK(a->mode) && o->type == S_IFLNK) check_symlink(*a, *o, path);
  check_xattrs(*a, o, path);
  if (S_ISDIR(a->mode)) walk(a->ino, path, depth + 1);
}

// Reads the file whole into *out; false if a call failed (*out keeps what the
// calls before it returned).
bool TreeReader::read_file(const Attr& a, const std::string& path, std::string* out) {
  const uint64_t limit = std::min<uint64_t>(a.size, oracle_.max_file_bytes() + kReadSlack);
  const bool in_place = rng_.chance(0.5);
  buf_.resize(kReadChunk);
  for (uint64_t off = 0; off < limit;) {
    size_t want = size_t(std::min<uint64_t>(kReadChunk, limit - off));
    Result<size_t> n = Err{ENOBUFS};
    if (in_place) {
      n = fs_.read_in_place(InodeNo{a.ino}, off, want, [&](std::span<const iovec> iov) {
        for (const iovec& v : iov) out->append(static_cast<const char*>(v.iov_base), v.iov_len);
      });
    }
    if (!n.ok() && n.error() == ENOBUFS) {
      n = fs_.read(InodeNo{a.ino}, off, want, buf_.data());
      if (n.ok()) out->append(buf_.data(), *n);
    }
    if (!n.ok()) return failed("read " + printable(path) + " at " + std::to_string(off), n.error());
    if (*n == 0) break;
    off += *n;
  }
  return true;
}

void TreeReader::check_file(const Attr& a, const OracleInode& o, const std::string& path) {
  files_++;
  std::string got, detail;
  read_file(a, path, &got);
  if (!explained(
          got, o, [](const Version& v) -> const std::string& { return v.data; }, &detail)) {
    wrong("wrong-bytes: read of inode " + std::to_string(a.ino) + " (" + printable(path) +
          ", size " + std::to_string(a.size) + ") " + detail);
  }
}

void TreeReader::check_symlink(const Attr& a, const OracleInode& o, const std::string& path) {
  auto target = fs_.readlink(InodeNo{a.ino});
  if (!target.ok()) return (void)failed("readlink " + printable(path), target.error());
  std::string detail;
  if (!explained(
          *target, o, [](const Version& v) -> const std::string& { return v.target; }, &detail)) {
    wrong("wrong-target: readlink of inode " + std::to_string(a.ino) + " (" + printable(path) +
          ") returned \"" + printable(*target) + "\": " + detail);
  }
}

void TreeReader::check_xattrs(const Attr& a, const OracleInode* o, const std::string& path) {
  auto names = fs_.listxattr(InodeNo{a.ino});
  if (!names.ok()) return (void)failed("listxattr " + printable(path), names.error());
  for (size_t at = 0; at < names->size();) {
    std::string name(names->c_str() + at);
    at += name.size() + 1;
    auto value = fs_.getxattr(InodeNo{a.ino}, name);
    if (!value.ok()) {
      failed("getxattr " + printable(path) + " " + printable(name), value.error());
      continue;
    }
    if (o == nullptr) continue;
    bool known = false, equal = false;
    for (const Version& v : o->versions) {
      auto it = v.xattrs.find(name);
      known = known || it != v.xattrs.end();
      equal = equal || (it != v.xattrs.end() && it->second == *value);
    }
    if (!known || !equal) {
      wrong("wrong-xattr: inode " + std::to_string(a.ino) + " (" + printable(path) + ") xattr \"" +
            printable(name) + "\" " + (known ? "has a value it never held" : "was never set") +
            " (" + std::to_string(value->size()) + " bytes)");
    }
  }
}

}  // namespace pagefs::fuzz
