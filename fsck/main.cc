// fsck.pagefs: checks a pagefs filesystem.
//
//   fsck.pagefs [-n] [-y] [-p] [-f] [-v] DEVICE
//
// Exit codes as e2fsck's: 0 clean, 1 errors corrected (the journal was
// replayed), 4 errors left uncorrected, 8 operational error, 16 usage error.
//
// With -n nothing is written: the journal's committed transactions are laid
// over the device in memory, so the check sees what recovery would leave.
// With -y or -p the journal is replayed onto the device first; repairing
// other errors is not implemented yet (they are reported, exit 4). Without
// -n, -y or -p the check runs as with -n. The check is always complete, so -f
// is accepted for compatibility and changes nothing.
#include <getopt.h>

#include <cerrno>
#include <cstdio>
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

struct Args {
  bool no_changes = false;  // -n
  bool yes = false;         // -y
  bool preen = false;       // -p
  bool verbose = false;     // -v
  std::string device;
};

void print_usage(FILE* out) {
  fprintf(out,
          "Usage: fsck.pagefs [-n] [-y] [-p] [-f] [-v] DEVICE\n"
          "Check a pagefs filesystem.\n"
          "\n"
          "  -n         check only, make no changes (the default)\n"
          "  -y, -p     replay the journal onto the device, then check\n"
          "             (repair of other errors is not implemented yet)\n"
          "  -f         force a full check (the check is always full)\n"
          "  -v         verbose: print statistics of each pass\n"
          "  --help     show this help\n"
          "  --version  show the version\n"
          "\n"
          "Exit status: 0 clean, 1 journal replayed and now clean, 4 errors left\n"
          "uncorrected, 8 operational error, 16 usage error.\n");
}

// Parses argv; returns -1 to go on, or the exit code to stop with.
int parse_args(int argc, char** argv, Args* args) {
  static const option kLongOptions[] = {
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "nypfv", kLongOptions, nullptr)) != -1) {
    switch (c) {
      case 'n':
        args->no_changes = true;
        break;
      case 'y':
        args->yes = true;
        break;
      case 'p':
        args->preen = true;
        break;
      case 'f':
        break;
      case 'v':
        args->verbose = true;
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
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "fsck.pagefs: expected exactly one DEVICE\n");
    print_usage(stderr);
    return kExitUsage;
  }
  if (int(args->no_changes) + int(args->yes) + int(args->preen) > 1) {
    fprintf(stderr, "fsck.pagefs: only one of the options -n, -y and -p may be given\n");
    return kExitUsage;
  }
  args->device = argv[optind];
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (int code = parse_args(argc, argv, &args); code >= 0) return code;
  const bool replay = (args.yes || args.preen) && !args.no_changes;
  std::string message;
  auto device = pagefs::FileDevice::open(
      args.device, pagefs::FileDeviceOptions{.read_only = !replay, .exclusive_lock = true},
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
  return pagefs::fsck::run_fsck(
      **device, args.device, pagefs::fsck::RunOptions{.replay = replay, .verbose = args.verbose});
}
