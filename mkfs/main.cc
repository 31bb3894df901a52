// mkfs.pagefs: formats a file or block device as pagefs.
//
//   mkfs.pagefs [-b page_size] [-J journal_size] [-L label] [-s size]
//               [-E extended_options] [-f] [-q] DEVICE
//
// A regular file is created or extended to the given size and preallocated
// with fallocate; a block device is used whole. An existing pagefs or another
// filesystem's signature is only overwritten with -f.
//
// The root directory belongs to the user running mkfs (root, or a user
// formatting an image of their own), unless -E root_owner=UID:GID says
// otherwise; -E root_owner alone means the running user too, as in mke2fs.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "engine/file_device.h"
#include "engine/formatter.h"
#include "version.h"

namespace {

using pagefs::FileDevice;
using pagefs::FileDeviceOptions;

[[noreturn]] void die(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "mkfs.pagefs: %s\n", msg.c_str());
  std::exit(code);
}

void usage(FILE* out) {
  std::fprintf(out,
               "Usage: mkfs.pagefs [options] DEVICE\n"
               "Formats DEVICE (a file or block device) as a pagefs filesystem.\n\n"
               "  -s SIZE          size of the filesystem; creates or extends a file (K, M, G, T)\n"
               "  -b PAGE_SIZE     page size in bytes: 4096 (default) up to 65536, a power of two\n"
               "  -J JOURNAL_SIZE  journal region size (default: 1/64 of the device, 1M..256M)\n"
               "  -L LABEL         volume label (up to 63 bytes)\n"
               "  -E OPTIONS       extended options, comma-separated:\n"
               "                     root_owner[=UID:GID]  owner of the root directory\n"
               "                                           (default: the user running mkfs)\n"
               "                     resize=SIZE           room to grow up to SIZE with\n"
               "                                           pagefs resize (default: 16 times)\n"
               "  -f               overwrite an existing filesystem\n"
               "  -q               quiet\n"
               "  -h, --help       show this help\n"
               "  -V, --version    show the version\n");
}

// Parses "123", "64K", "512M", "2G", "1T".
bool parse_size(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s) return false;
  uint64_t mult = 1;
  std::string suffix(end);
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    mult = 1ull << 30;
  else if (suffix == "T" || suffix == "t" || suffix == "TiB")
    mult = 1ull << 40;
  else if (!suffix.empty())
    return false;
  if (v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

// Parses "UID:GID" (decimal ids).
bool parse_owner(std::string_view text, uint32_t* uid, uint32_t* gid) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  auto number = [](std::string_view digits, uint32_t* out) {
    if (digits.empty() || digits.size() > 10 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    uint64_t v = std::stoull(std::string(digits));
    if (v >= UINT32_MAX) return false;  // (uid_t)-1 means "no change" to chown
    *out = uint32_t(v);
    return true;
  };
  return number(text.substr(0, colon), uid) && number(text.substr(colon + 1), gid);
}

// Applies one -E option, as mke2fs spells them.
void apply_extended(std::string_view option, pagefs::FormatOptions* fo) {
  if (option == "root_owner") {
    fo->root_uid = uint32_t(getuid());
    fo->root_gid = uint32_t(getgid());
  } else if (option.starts_with("root_owner=")) {
    if (!parse_owner(option.substr(11), &fo->root_uid, &fo->root_gid)) {
      die("bad root_owner '" + std::string(option.substr(11)) + "' (expected UID:GID)");
    }
  } else if (option.starts_with("resize=")) {
    std::string value(option.substr(7));
    if (!parse_size(value.c_str(), &fo->grow_limit_bytes) || fo->grow_limit_bytes == 0) {
      die("bad resize limit '" + value + "' (expected a size such as 64G)");
    }
  } else {
    die("unknown extended option '" + std::string(option) + "' (root_owner, resize)");
  }
}

void apply_extended_list(std::string_view list, pagefs::FormatOptions* fo) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view option = list.substr(0, comma);
    if (!option.empty()) apply_extended(option, fo);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
}

// Known signatures of other filesystems, found in the first 128 KiB.
const char* foreign_signature(const unsigned char* b, size_t n) {
  if (n > 1081 && b[1080] == 0x53 && b[1081] == 0xEF) return "ext2/3/4";
  if (n > 4 && std::memcmp(b, "XFSB", 4) == 0) return "xfs";
  if (n > 0x10048 && std::memcmp(b + 0x10040, "_BHRfS_M", 8) == 0) return "btrfs";
  if (n > 0x1000 + 10 && std::memcmp(b + 0xff6, "SWAPSPACE2", 10) == 0) return "swap";
  if (n > 512 && b[510] == 0x55 && b[511] == 0xAA) return "a partition table or boot sector";
  return nullptr;
}

void prepare_file(const std::string& path, uint64_t size, bool size_given) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISBLK(st.st_mode)) {
    if (size_given) die("-s is for files; a block device is used whole");
    return;
  }
  if (exists && !S_ISREG(st.st_mode)) die(path + " is neither a regular file nor a block device");
  if (!exists && !size_given) die(path + " does not exist; give its size with -s (e.g. -s 2G)");
  if (!size_given) return;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) die("cannot create " + path + ": " + strerror(errno));
  if (exists && uint64_t(st.st_size) > size) {
    if (::ftruncate(fd, off_t(size)) != 0) die("cannot resize " + path + ": " + strerror(errno));
  }
  if (::fallocate(fd, 0, 0, off_t(size)) != 0) {
    if (errno == ENOSPC) die("not enough space for " + path + " of that size");
    if (errno != EOPNOTSUPP) die("cannot preallocate " + path + ": " + strerror(errno));
    if (::ftruncate(fd, off_t(size)) != 0) die("cannot size " + path + ": " + strerror(errno));
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  pagefs::FormatOptions fo;
  fo.root_uid = uint32_t(getuid());
  fo.root_gid = uint32_t(getgid());
  uint64_t size = 0;
  bool size_given = false, force = false, quiet = false;
  static const option longopts[] = {{"help", no_argument, nullptr, 'h'},
                                    {"version", no_argument, nullptr, 'V'},
                                    {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "b:J:L:s:E:fqhV", longopts, nullptr)) != -1) {
    uint64_t v = 0;
    switch (c) {
      case 'b':
        if (!parse_size(optarg, &v) || v > UINT32_MAX) die(std::string("bad page size ") + optarg);
        fo.page_size = uint32_t(v);
        break;
      case 'J':
        if (!parse_size(optarg, &v)) die(std::string("bad journal size ") + optarg);
        fo.journal_bytes = v;
        break;
      case 'L':
        if (std::strlen(optarg) > 63) die("label is longer than 63 bytes");
        fo.label = optarg;
        break;
      case 'E':
        apply_extended_list(optarg, &fo);
        break;
      case 's':
        if (!parse_size(optarg, &size) || size == 0) die(std::string("bad size ") + optarg);
        size_given = true;
        break;
      case 'f':
        force = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'h':
        usage(stdout);
        return 0;
      case 'V':
        std::printf("mkfs.pagefs %s\n", PAGEFS_VERSION);
        return 0;
      default:
        usage(stderr);
        return 1;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 1;
  }
  std::string path = argv[optind];
  if (fo.page_size < pagefs::kMinPageSize || fo.page_size > pagefs::kMaxPageSize ||
      (fo.page_size & (fo.page_size - 1))) {
    die("page size must be a power of two from 4096 to 65536");
  }
  if (size_given && size < pagefs::min_device_bytes(fo.page_size)) {
    die("size is too small; pagefs needs at least " +
        std::to_string(pagefs::min_device_bytes(fo.page_size) / 1024) + " KiB");
  }
  if (size_given) size -= size % fo.page_size;
  prepare_file(path, size, size_given);

  std::string msg;
  auto dev = FileDevice::open(path, FileDeviceOptions{}, &msg);
  if (!dev.ok()) die(msg.empty() ? "cannot open " + path : msg, 1);
  if (!force) {
    size_t n = std::min<uint64_t>((*dev)->size_bytes(), 128 << 10);
    n -= n % 4096;
    void* buf = std::aligned_alloc(4096, 128 << 10);
    if (n && (*dev)->read_at(0, buf, n).ok()) {
      if (pagefs::has_pagefs_signature(**dev)) {
        die(path + " already holds a pagefs filesystem; use -f to overwrite it");
      }
      if (const char* what = foreign_signature(static_cast<unsigned char*>(buf), n)) {
        die(path + " appears to hold " + what + "; use -f to overwrite it");
      }
    }
    std::free(buf);
  }
  pagefs::Status st = pagefs::format_device(**dev, fo, &msg);
  if (!st.ok()) die(msg.empty() ? std::string("format failed: ") + strerror(st.error()) : msg);
  if (!quiet) {
    std::printf("%s: pagefs of %llu MiB, %u-byte pages%s%s\n", path.c_str(),
                (unsigned long long)((*dev)->size_bytes() >> 20), fo.page_size,
                fo.label.empty() ? "" : ", label ", fo.label.c_str());
  }
  return 0;
}
