// fsck.pagefs: checks and repairs a pagefs filesystem.
//
//   fsck.pagefs [-n | -p | -y] [-f] [-v] [-C fd] [-E zero_bad_data] DEVICE
//
// Exit codes as e2fsck's: 0 clean, 1 errors corrected, 4 errors left
// uncorrected, 8 operational error, 16 usage error.
//
// With -n nothing is written: the journal's committed transactions are laid
// over the device in memory, so the check sees what recovery would leave.
// With -p or -y the journal is replayed onto the device first; -p then fixes
// what is safe and certain and stops at anything that needs judgement, -y
// fixes everything it can (fsck/run.h). Without -n, -p or -y the check runs
// as with -n, but like -p it skips a cleanly unmounted filesystem unless -f.
#include <getopt.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "engine/file_device.h"
#include "fsck/checker.h"
#include "fsck/run.h"
#include "version.h"

namespace {

using pagefs::fsck::kExitClean;
using pagefs::fsck::kExitOperational;
using pagefs::fsck::kExitUsage;
using pagefs::fsck::Mode;

struct Args {
  pagefs::fsck::RunOptions run;
  int modes = 0;  // how many of -n, -p, -y were given
  std::string device;
};

void print_usage(FILE* out) {
  fprintf(out,
          "Usage: fsck.pagefs [-n | -p | -y] [-f] [-v] [-C fd] [-E zero_bad_data] DEVICE\n"
          "Check and repair a pagefs filesystem.\n"
          "\n"
          "  -n         check only, make no changes\n"
          "  -p, -a     preen: replay the journal and fix what is safe and certain\n"
          "             (space map, counters, link counts, a stale superblock copy);\n"
          "             stop at anything that needs judgement\n"
          "  -y         replay the journal and fix everything that can be fixed\n"
          "  -f         check even a cleanly unmounted filesystem (-p and plain runs\n"
          "             skip it otherwise; -n and -y always check)\n"
          "  -v         verbose: print statistics of each pass\n"
          "  -C fd      progress: 0 for a bar (or lines) on stdout, else e2fsck's\n"
          "             \"pass current max device\" lines on file descriptor fd\n"
          "  -E zero_bad_data\n"
          "             replace data pages that fail their checksum with zeros\n"
          "  --help     show this help\n"
          "  --version  show the version\n"
          "\n"
          "Exit status: 0 clean, 1 errors fixed (or the journal replayed), 4 errors\n"
          "left uncorrected, 8 operational error, 16 usage error.\n");
}

int usage_error(const char* fmt, const char* arg) {
  fprintf(stderr, "fsck.pagefs: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  print_usage(stderr);
  return kExitUsage;
}

// -E takes a comma-separated list of extended options.
int parse_extended(const char* list, Args* args) {
  std::string options = list;
  size_t at = 0;
  while (at <= options.size()) {
    size_t end = options.find(',', at);
    if (end == std::string::npos) end = options.size();
    std::string option = options.substr(at, end - at);
    if (option == "zero_bad_data") {
      args->run.zero_bad_data = true;
    } else {
      return usage_error("unknown extended option '%s'", option.c_str());
    }
    at = end + 1;
  }
  return -1;
}

int set_mode(Args* args, Mode mode) {
  args->run.mode = mode;
  args->modes++;
  return -1;
}

// Parses argv; returns -1 to go on, or the exit code to stop with.
int parse_args(int argc, char** argv, Args* args) {
  static const option kLongOptions[] = {
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  args->run.explicit_check = false;
  int c;
  while ((c = getopt_long(argc, argv, "nypafvC:E:", kLongOptions, nullptr)) != -1) {
    int code = -1;
    switch (c) {
      case 'n':
        code = set_mode(args, Mode::kCheck);
        args->run.explicit_check = true;
        break;
      case 'y':
        code = set_mode(args, Mode::kRepair);
        break;
      case 'p':
      case 'a':
        code = set_mode(args, Mode::kPreen);
        break;
      case 'f':
        args->run.force = true;
        break;
      case 'v':
        args->run.verbose = true;
        break;
      case 'C':
        args->run.progress_fd = atoi(optarg);
        break;
      case 'E':
        code = parse_extended(optarg, args);
        break;
      case 'h':
        print_usage(stdout);
        return kExitClean;
      case 'V':
        printf("fsck.pagefs %s\n", PAGEFS_VERSION);
        return kExitClean;
      default:
        print_usage(stderr);
        return kExitUsage;
    }
    if (code >= 0) return code;
  }
  if (optind + 1 != argc) return usage_error("expected exactly one DEVICE%s", "");
  if (args->modes > 1) return usage_error("only one of -n, -p and -y may be given%s", "");
  args->device = argv[optind];
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (int code = parse_args(argc, argv, &args); code >= 0) return code;
  const bool writes = args.run.mode != Mode::kCheck;
  std::string message;
  auto device = pagefs::FileDevice::open(
      args.device, pagefs::FileDeviceOptions{.read_only = !writes, .exclusive_lock = true},
      &message);
  if (!device.ok()) {
    if (device.error() == EBUSY) {
      fprintf(stderr, "fsck.pagefs: %s is mounted or in use; unmount it first\n",
              args.device.c_str());
    } else {
      fprintf(stderr, "fsck.pagefs: %s\n",
              message.empty() ? strerror(device.error()) : message.c_str());
    }
    return kExitOperational;
  }
  return pagefs::fsck::run_fsck(**device, args.device, args.run);
}
