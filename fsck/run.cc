#include "fsck/run.h"

#include <memory>

#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/report.h"

namespace pagefs::fsck {
namespace {

// fsck -n checks what a mount would see: the device with the journal laid
// over it, by the code recovery runs. A device with no superblock a mount
// would accept is checked as it is (the checker says what is wrong with it);
// a journal that cannot be read fails the check, since a mount would fail
// there too and nobody can tell what it would have seen.
Status lay_journal(Device& device, std::unique_ptr<Device>* overlay, RecoveryResult* recovered,
                   std::string* message) {
  Superblock sb;
  std::string refused;
  if (!load_superblock(device, &sb, &refused).ok()) return ok_status();
  auto view = OverlayDevice::open(device, sb, recovered, message);
  if (!view.ok()) return Err{view.error()};
  *overlay = std::move(view).value();
  return ok_status();
}

}  // namespace

int run_fsck(Device& device, const std::string& name, const RunOptions& options) {
  std::string message;
  RecoveryResult recovered;
  std::unique_ptr<Device> overlay;
  Device* target = &device;
  if (options.replay) {
    Superblock sb;
    if (!recover_device(device, &sb, &recovered, &message).ok()) {
      fprintf(options.err, "fsck.pagefs: %s: %s\n", name.c_str(), message.c_str());
      return kExitOperational;
    }
  } else {
    if (!lay_journal(device, &overlay, &recovered, &message).ok()) {
      fprintf(options.err, "fsck.pagefs: %s: %s; cannot check what a mount would see\n",
              name.c_str(), message.c_str());
      return kExitUncorrected;
    }
    if (overlay) target = overlay.get();
  }
  if (recovered.transactions > 0) {
    fprintf(options.out, "%s: %s %llu journal transactions (%llu pages)\n", name.c_str(),
            options.replay ? "replayed" : "would replay (checking as replayed, in memory)",
            (unsigned long long)recovered.transactions, (unsigned long long)recovered.pages);
  }
  Report report(options.out);
  Checker checker(*target, name, CheckOptions{.verbose = options.verbose}, report);
  int code = checker.run();
  if (code == kExitClean && options.replay && recovered.transactions > 0) return 1;
  return code;
}

}  // namespace pagefs::fsck
