#include "fs/resize_command.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/file_device.h"
#include "engine/resize.h"
#include "fs/mount_options.h"

namespace pagefs {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

const char kUsage[] =
    "Usage: pagefs resize DEVICE [SIZE]\n"
    "Grows the unmounted pagefs on DEVICE to SIZE (K, M, G, T suffixes), extending\n"
    "a regular file to that size first; without SIZE, to the whole file or block\n"
    "device. Shrinking is not supported.\n";

int fail(const std::string& line) {
  std::fprintf(stderr, "pagefs resize: %s\n", line.c_str());
  return kExitFailed;
}

std::string mib(uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Extends a regular file to `bytes`, preallocated; never shrinks it. Sets
// `*old_bytes` to the size it had if it extended it, else to 0.
bool extend_file(int fd, const std::string& path, uint64_t bytes, uint64_t* old_bytes) {
  struct stat st;
  *old_bytes = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_size) >= bytes) return true;
  if (::fallocate(fd, 0, 0, off_t(bytes)) != 0 &&
      (errno != EOPNOTSUPP || ::ftruncate(fd, off_t(bytes)) != 0)) {
    const int error = errno;
    // A fallocate that ran out of space may have extended the file part of
    // the way; the space it took goes back.
    (void)::ftruncate(fd, st.st_size);
    fail("cannot extend " + path + " to " + mib(bytes) + ": " + std::strerror(error));
    return false;
  }
  *old_bytes = uint64_t(st.st_size);
  return true;
}

// A resize refused before it wrote anything gives the file its old size back.
void undo_extension(int fd, uint64_t old_bytes, const Status& st) {
  bool refused = st.error() == EINVAL || st.error() == ENOSPC;
  if (old_bytes > 0 && refused) (void)::ftruncate(fd, off_t(old_bytes));
}

// The line for a resize that grow_filesystem or check_growth refused.
int refused(const std::string& path, const Status& st, const ResizeResult& result,
            std::string message) {
  if (st.error() == ENOSPC && result.max_pages > 0) {
    message += "; it can grow to at most " + mib(result.max_pages * result.page_size) +
               " (mkfs.pagefs -E resize=SIZE keeps room for more)";
  }
  return fail(path + ": " + (message.empty() ? std::strerror(st.error()) : message));
}

int grow(const std::string& path, uint64_t size, bool size_given) {
  // The lock the daemon holds while mounted, taken first and kept throughout.
  Fd lock(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (lock.get() < 0) return fail("cannot open " + path + ": " + std::strerror(errno));
  if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return fail(path +
                " is mounted or in use; unmount it first (growing a mounted pagefs is "
                "not supported)");
  }
  std::string message;
  ResizeResult result;
  if (size_given) {
    // A size the filesystem cannot take is refused before the file grows.
    auto device = FileDevice::open(
        path, FileDeviceOptions{.read_only = true, .exclusive_lock = false, .rings = 1}, &message);
    if (!device.ok()) return fail(message.empty() ? "cannot open " + path : message);
    Status st = check_growth(**device, size, &result, &message);
    if (!st.ok()) return refused(path, st, result, message);
  }
  uint64_t old_bytes = 0;
  if (size_given && !extend_file(lock.get(), path, size, &old_bytes)) return kExitFailed;
  auto device =
      FileDevice::open(path, FileDeviceOptions{.exclusive_lock = false, .rings = 1}, &message);
  if (!device.ok()) return fail(message.empty() ? "cannot open " + path : message);
  const uint64_t target = size_given ? size : (*device)->size_bytes();
  Status st = grow_filesystem(**device, target, &result, &message);
  const uint64_t ps = result.page_size;
  device->reset();
  if (!st.ok()) {
    undo_extension(lock.get(), old_bytes, st);
    return refused(path, st, result, message);
  }
  if (result.new_pages == result.old_pages) {
    std::printf("%s: already %s, nothing to do\n", path.c_str(),
                mib(result.old_pages * ps).c_str());
  } else {
    std::printf("%s: grown from %s to %s\n", path.c_str(), mib(result.old_pages * ps).c_str(),
                mib(result.new_pages * ps).c_str());
  }
  return 0;
}

}  // namespace

int resize_command(int argc, char** argv) {
  std::string device;
  std::string size_text;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg.starts_with("-") && arg.size() > 1) {
      std::fprintf(stderr, "pagefs resize: unknown option '%s'\n%s", argv[i], kUsage);
      return kExitUsage;
    }
    (device.empty() ? device : size_text) = arg;
    if (i >= 3) {
      std::fputs(kUsage, stderr);
      return kExitUsage;
    }
  }
  if (device.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  Result<uint64_t> size = size_text.empty() ? Result<uint64_t>(0) : parse_size(size_text);
  if (!size.ok() || (!size_text.empty() && *size == 0)) {
    std::fprintf(stderr, "pagefs resize: invalid size '%s' (expected e.g. 20G)\n",
                 size_text.c_str());
    return kExitUsage;
  }
  return grow(device, *size, !size_text.empty());
}

}  // namespace pagefs
