// Directory listing handlers.
//
// Offsets: the kernel resumes a listing at the offset of the last entry it
// kept. "." has offset 1 and ".." offset 2; every other offset is an engine
// readdir cookie, which is always >= 256, so the three never collide.
//
// readdirplus hands the kernel a reference to every entry it returns (except
// "." and "..", sent with ino 0 so the kernel instantiates nothing). An entry
// is counted only once it is in the reply buffer, and the references are given
// back if the reply does not reach the kernel. The listing is collected first
// and the attributes fetched after the engine's readdir has returned, so no
// engine call is made from inside another.
#include <dirent.h>
#include <limits.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/fuse_ops.h"

namespace pagefs {
namespace {

constexpr off_t kDotOffset = 1;
constexpr off_t kDotDotOffset = 2;

// Where the engine listing resumes for a kernel offset.
uint64_t engine_cookie(off_t off) {
  return off <= kDotDotOffset ? 0 : static_cast<uint64_t>(off);
}

// A reply buffer being filled with directory entries.
struct DirBuffer {
  fuse_req_t req;
  char* data;
  size_t size;
  size_t used = 0;

  size_t room() const { return size - used; }

  // Adds a plain entry; false (and nothing added) if it does not fit.
  bool add(const char* name, uint64_t ino, uint32_t mode, off_t next) {
    struct stat st;
    std::memset(&st, 0, sizeof st);
    st.st_ino = ino;
    st.st_mode = mode;
    size_t need = fuse_add_direntry(req, data + used, room(), name, &st, next);
    if (need > room()) return false;
    used += need;
    return true;
  }

  bool add_plus(const char* name, const fuse_entry_param& e, off_t next) {
    size_t need = fuse_add_direntry_plus(req, data + used, room(), name, &e, next);
    if (need > room()) return false;
    used += need;
    return true;
  }
};

// Adds "." and ".." as far as `off` has not passed them. The engine does not
// resolve "..", so it carries the directory's own inode number; the kernel
// answers ".." from its dentry tree and does not use it.
bool add_dots(DirBuffer& out, fuse_ino_t dir, off_t off, bool plus) {
  const char* names[] = {".", ".."};
  const off_t offsets[] = {kDotOffset, kDotDotOffset};
  for (int i = 0; i < 2; ++i) {
    if (off >= offsets[i]) continue;
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);  // e.ino 0: no reference is handed over
    e.attr.st_ino = dir;
    e.attr.st_mode = S_IFDIR;
    bool added =
        plus ? out.add_plus(names[i], e, offsets[i]) : out.add(names[i], dir, S_IFDIR, offsets[i]);
    if (!added) return false;
  }
  return true;
}

// Copies an engine name into a NUL-terminated buffer of NAME_MAX + 1 bytes.
const char* c_name(std::string_view name, char (&buffer)[NAME_MAX + 1]) {
  size_t len = name.size() < NAME_MAX ? name.size() : NAME_MAX;
  std::memcpy(buffer, name.data(), len);
  buffer[len] = '\0';
  return buffer;
}

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) noexcept {
  fuse_reply_open(req, fi);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) noexcept {
  fuse_reply_err(req, 0);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  DirBuffer out{req, thread_buffer(size), size};
  if (out.data == nullptr || off < 0) {
    fuse_reply_err(req, off < 0 ? EINVAL : ENOMEM);
    return;
  }
  size_t engine_entries = 0;
  Status listed = ok_status();
  if (add_dots(out, ino, off, /*plus=*/false)) {
    listed = FuseAdapter::from(req).fs().readdir(
        InodeNo{ino}, engine_cookie(off), [&](const DirEntry& entry) {
          char name[NAME_MAX + 1];
          if (!out.add(c_name(entry.name, name), entry.ino, DTTOIF(entry.type), entry.cookie))
            return false;
          ++engine_entries;
          return true;
        });
  }
  // An error after some entries is reported by the next call, which resumes there.
  if (!listed.ok() && engine_entries == 0) {
    fuse_reply_err(req, listed.error());
    return;
  }
  fuse_reply_buf(req, out.data, out.used);
}

struct PendingEntry {
  std::string name;
  uint64_t ino;
  uint32_t type;
  uint64_t cookie;
  bool counted = false;  // a reference was handed to the kernel with it
};

// Lists the engine entries after `cookie` that may fit in `room` bytes of
// readdirplus records. Nothing is thrown through the engine: running out of
// memory ends the listing early (ENOMEM if it got nothing).
Status collect_entries(fuse_req_t req, fuse_ino_t dir, uint64_t cookie, size_t room,
                       std::vector<PendingEntry>& pending) {
  bool out_of_memory = false;
  Status listed =
      FuseAdapter::from(req).fs().readdir(InodeNo{dir}, cookie, [&](const DirEntry& entry) {
        char name[NAME_MAX + 1];
        size_t need = fuse_add_direntry_plus(req, nullptr, 0, c_name(entry.name, name), nullptr, 0);
        if (need > room) return false;
        try {
          pending.push_back(PendingEntry{name, entry.ino, entry.type, entry.cookie});
        } catch (const std::bad_alloc&) {
          out_of_memory = true;
          return false;
        }
        room -= need;
        return true;
      });
  if (out_of_memory && pending.empty()) return Err{ENOMEM};
  return listed;
}

// The entry for a listed name: its attributes with a reference taken, or, if
// the inode went away since the listing, only its number and type with ino 0
// (no reference).
Result<fuse_entry_param> plus_entry(FuseAdapter& adapter, const PendingEntry& entry) {
  Result<Attr> attr = adapter.fs().getattr(InodeNo{entry.ino}, Hold::kYes);
  if (attr.ok()) return adapter.entry_param(*attr);
  if (attr.error() != ENOENT) return Err{attr.error()};
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.attr.st_ino = entry.ino;
  e.attr.st_mode = DTTOIF(entry.type);
  return e;
}

// Adds the collected entries with their attributes, keeping one reference
// for each one added (and marking it); an entry that does not fit gives its
// reference back. Fails only if the first entry fails.
Status add_plus_entries(DirBuffer& out, std::vector<PendingEntry>& pending) {
  FuseAdapter& adapter = FuseAdapter::from(out.req);
  for (size_t i = 0; i < pending.size(); ++i) {
    Result<fuse_entry_param> e = plus_entry(adapter, pending[i]);
    if (!e.ok()) return i == 0 ? Status(Err{e.error()}) : ok_status();
    if (!out.add_plus(pending[i].name.c_str(), *e, static_cast<off_t>(pending[i].cookie))) {
      if (e->ino != 0) adapter.forget(e->ino, 1);
      break;
    }
    pending[i].counted = e->ino != 0;
  }
  return ok_status();
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info*) noexcept {
  DirBuffer out{req, thread_buffer(size), size};
  if (out.data == nullptr || off < 0) {
    fuse_reply_err(req, off < 0 ? EINVAL : ENOMEM);
    return;
  }
  std::vector<PendingEntry> pending;
  Status listed = ok_status();
  if (add_dots(out, ino, off, /*plus=*/true)) {
    listed = collect_entries(req, ino, engine_cookie(off), out.room(), pending);
    if (listed.ok() || !pending.empty()) listed = add_plus_entries(out, pending);
  }
  if (!listed.ok()) {
    fuse_reply_err(req, listed.error());
    return;
  }
  // A reply the kernel did not take hands it no references.
  if (fuse_reply_buf(req, out.data, out.used) != 0) {
    for (const PendingEntry& entry : pending) {
      if (entry.counted) FuseAdapter::from(req).forget(entry.ino, 1);
    }
  }
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) noexcept {
  FuseAdapter::reply_status(req, FuseAdapter::from(req).fs().fsync(InodeNo{ino}, datasync != 0));
}

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.opendir = op_opendir;
  ops.releasedir = op_releasedir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.fsyncdir = op_fsyncdir;
}

}  // namespace pagefs
